//! Leaves series out of rendered Prometheus text: one pass over the exporter's output that
//! asks a predicate about every sample with a non-empty `upstream` label, compacting the
//! buffer in place. The recorder's registrations are not touched.

use std::borrow::Cow;
use std::ops::Range;

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
pub(super) fn retain(text: &mut String, keep: impl Fn(&Series<'_>) -> bool) {
    let kept = kept_ranges(text, keep);
    let mut bytes = std::mem::take(text).into_bytes();
    let mut write = 0;
    for range in kept {
        let len = range.len();
        bytes.copy_within(range, write);
        write += len;
    }
    bytes.truncate(write);
    *text = String::from_utf8(bytes).expect("whole lines of UTF-8 text were kept");
}

/// The byte ranges of `text` to keep, in order, adjacent ones merged.
fn kept_ranges(text: &str, keep: impl Fn(&Series<'_>) -> bool) -> Vec<Range<usize>> {
    let mut kept: Vec<Range<usize>> = Vec::new();
    let mut push = |range: Range<usize>| match kept.last_mut() {
        Some(last) if last.end == range.start => last.end = range.end,
        _ => kept.push(range),
    };
    // The HELP/TYPE lines of the current family, not kept until one of its samples is.
    let mut header: Option<Range<usize>> = None;
    let mut family_kept = false;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let range = start..start + line.len();
        start = range.end;
        if line.starts_with('#') {
            // A family's HELP and TYPE lines are adjacent; anything else starts a new family.
            header = match header {
                Some(h) if h.end == range.start => Some(h.start..range.end),
                _ => Some(range),
            };
            family_kept = false;
        } else if line == "\n" {
            if family_kept {
                push(range);
            }
            header = None;
            family_kept = false;
        } else if sample_kept(line, &keep) {
            if !family_kept && let Some(h) = header.take() {
                push(h);
            }
            family_kept = true;
            push(range);
        }
    }
    kept
}

fn sample_kept(line: &str, keep: &impl Fn(&Series<'_>) -> bool) -> bool {
    let Some(open) = line.find('{') else {
        return true;
    };
    match label(line, open, "upstream=\"") {
        Some(upstream) if !upstream.is_empty() => keep(&Series {
            metric: &line[..open],
            upstream: unescape(upstream),
            endpoint: label(line, open, "endpoint=\"").map(unescape),
        }),
        _ => true,
    }
}

/// The still-escaped value of the label that `key` (`name="`) starts, in the label set that
/// opens at `open`. Inside a value every `"` is escaped, so an unescaped `name="` preceded by
/// `{` or `,` can only be a label.
fn label<'a>(line: &'a str, open: usize, key: &str) -> Option<&'a str> {
    let at = line[open..]
        .match_indices(key)
        .map(|(i, _)| open + i)
        .find(|&i| matches!(line.as_bytes()[i - 1], b'{' | b','))?;
    let value = &line[at + key.len()..];
    let mut i = 0;
    loop {
        i += value.get(i..)?.find(['"', '\\'])?;
        match value.as_bytes()[i] {
            b'"' => return Some(&value[..i]),
            _ => i += 2,
        }
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
        let mut text = TEXT.to_owned();
        retain(&mut text, keep);
        text
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
    fn a_label_name_inside_another_or_a_dangling_escape_is_no_label() {
        let line = "m{my_upstream=\"x\",upstream=\"a\\\"b\"} 1\n";
        assert_eq!(label(line, 1, "upstream=\""), Some("a\\\"b"));
        assert_eq!(label("m{upstream=\"a\\", 1, "upstream=\""), None);
        assert_eq!(label("m{other=\"1\"} 1", 1, "upstream=\""), None);
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
