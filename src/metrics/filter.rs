//! Leaves series out of rendered Prometheus text: one pass over the exporter's output that
//! asks a predicate about every sample with a non-empty `upstream` label, compacting the
//! buffer in place. The recorder's registrations are not touched.

use std::borrow::Cow;

/// A sample as the predicate sees it (label values unescaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series<'a> {
    /// The sample's name as rendered (histograms carry `_bucket`, `_sum`, `_count`).
    pub metric: &'a str,
    /// The `upstream` label; never empty here.
    pub upstream: Cow<'a, str>,
    /// The `endpoint` label, when the sample has one.
    pub endpoint: Option<Cow<'a, str>>,
}

/// Removes the samples `keep` refuses, and the `# HELP`/`# TYPE` lines and blank separator
/// of a family left without samples. Samples without an `upstream` label, or with an empty one
/// (unrouted requests), always stay. Only whole lines are removed, so UTF-8 stays valid.
pub(super) fn retain(text: &mut Vec<u8>, keep: impl Fn(&Series<'_>) -> bool) {
    let mut write = 0;
    // The HELP/TYPE lines of the current family, not written until one of its samples is.
    let mut header: Option<(usize, usize)> = None;
    let mut family_kept = false;
    let mut read = 0;
    while read < text.len() {
        let end = text[read..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| read + i + 1);
        let line = &text[read..end];
        let emit = if line.starts_with(b"#") {
            // A family's HELP and TYPE lines are adjacent; anything else starts a new family.
            header = match header {
                Some((start, stop)) if stop == read => Some((start, end)),
                _ => Some((read, end)),
            };
            family_kept = false;
            false
        } else if line == b"\n" {
            let was_kept = family_kept;
            header = None;
            family_kept = false;
            was_kept
        } else if sample_kept(line, &keep) {
            if !family_kept && let Some((start, stop)) = header.take() {
                text.copy_within(start..stop, write);
                write += stop - start;
            }
            family_kept = true;
            true
        } else {
            false
        };
        if emit {
            text.copy_within(read..end, write);
            write += end - read;
        }
        read = end;
    }
    text.truncate(write);
}

fn sample_kept(line: &[u8], keep: &impl Fn(&Series<'_>) -> bool) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return true;
    };
    let Some(open) = line.find('{') else {
        return true;
    };
    let (mut upstream, mut endpoint) = (None, None);
    for (key, value) in Labels(&line[open + 1..]) {
        match key {
            "upstream" => upstream = Some(value),
            "endpoint" => endpoint = Some(value),
            _ => {}
        }
    }
    match upstream {
        Some(upstream) if !upstream.is_empty() => keep(&Series {
            metric: &line[..open],
            upstream: unescape(upstream),
            endpoint: endpoint.map(unescape),
        }),
        _ => true,
    }
}

/// `key="value",...}` of one sample, values still escaped; stops at `}` or malformed text.
struct Labels<'a>(&'a str);

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_start_matches(',');
        let (key, after) = rest.split_once("=\"")?;
        if key.contains('}') {
            return None;
        }
        let mut escaped = false;
        let close = after.char_indices().find_map(|(i, c)| match c {
            _ if escaped => {
                escaped = false;
                None
            }
            '\\' => {
                escaped = true;
                None
            }
            '"' => Some(i),
            _ => None,
        })?;
        self.0 = &after[close + 1..];
        Some((key, &after[..close]))
    }
}

/// Undoes the exporter's label escaping (`\\`, `\"`, `\n`); borrows when there is none.
fn unescape(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP a_total A.
# TYPE a_total counter
a_total{upstream=\"gone\",code=\"200\"} 3
a_total{upstream=\"live\",code=\"200\"} 1
a_total{upstream=\"\",code=\"404\"} 2

# HELP b B.
# TYPE b gauge
b{upstream=\"gone\"} 2

# TYPE c gauge
c{upstream=\"live\",endpoint=\"http://x/\\\"q\\\\\"} 0
c{upstream=\"live\",endpoint=\"http://old/\"} 2

build_info{version=\"1\"} 1
";

    fn filtered(keep: impl Fn(&Series<'_>) -> bool) -> String {
        let mut buf = TEXT.as_bytes().to_vec();
        retain(&mut buf, keep);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn refused_samples_and_emptied_families_go_unrouted_and_unlabelled_stay() {
        let text =
            filtered(|s| s.upstream == "live" && s.endpoint.as_deref() != Some("http://old/"));
        assert_eq!(
            text,
            "\
# HELP a_total A.
# TYPE a_total counter
a_total{upstream=\"live\",code=\"200\"} 1
a_total{upstream=\"\",code=\"404\"} 2

# TYPE c gauge
c{upstream=\"live\",endpoint=\"http://x/\\\"q\\\\\"} 0

build_info{version=\"1\"} 1
"
        );
    }

    #[test]
    fn keeping_everything_changes_nothing_and_values_arrive_unescaped() {
        let seen = std::cell::RefCell::new(Vec::new());
        let text = filtered(|s| {
            seen.borrow_mut().push((
                s.metric.to_owned(),
                s.endpoint.as_deref().map(str::to_owned),
            ));
            true
        });
        assert_eq!(text, TEXT);
        let seen = seen.into_inner();
        assert_eq!(
            seen.len(),
            5,
            "the unrouted and unlabelled samples are not asked about"
        );
        assert!(
            seen.contains(&("c".into(), Some("http://x/\"q\\".into()))),
            "{seen:?}"
        );
    }
}
