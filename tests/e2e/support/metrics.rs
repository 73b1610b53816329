//! A Prometheus text-format (0.0.4) reader for assertions: samples by name and label subset,
//! sums, and `# TYPE` lines. Malformed lines panic, naming the line.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

// === impl Metrics ===

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut metrics = Self::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if let (Some("TYPE"), Some(name), Some(kind)) =
                    (words.next(), words.next(), words.next())
                {
                    metrics.types.insert(name.into(), kind.into());
                }
                continue;
            }
            let sample = parse_sample(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
            metrics.samples.push(sample);
        }
        metrics
    }

    /// GET `url` (e.g. `http://127.0.0.1:9901/metrics`) and parse it.
    pub async fn scrape(url: &str) -> Self {
        let resp = super::client::get(url).await;
        assert_eq!(resp.status(), 200, "GET {url}");
        Self::parse(super::client::text(&resp))
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Samples of `name` carrying every given label (other labels may be present).
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of the one sample matching; `None` when there is none; panics when several
    /// match (use `sum`). Histograms: `value("x_bucket", &[("le", "0.5")])`, `value("x_count", ..)`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.matching(name, labels);
        let first = found.next()?;
        assert!(
            found.next().is_none(),
            "several {name} samples match {labels:?}; use sum()"
        );
        Some(first.value)
    }

    /// The sum over every matching sample (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name) || self.types.contains_key(name)
    }

    #[track_caller]
    pub fn assert_has(&self, name: &str) {
        assert!(self.has(name), "no metric {name}; have: {:?}", self.names());
    }

    /// The `# TYPE` of a metric family: counter, gauge, histogram, summary, untyped.
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<_> = self.samples.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        names
    }
}

/// Run `promtool check metrics` on `text` and panic with its output when it objects (lint
/// problems included). False when promtool is not installed and the run is not strict.
pub async fn check_with_promtool(text: &str) -> bool {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;

    let Some(promtool) = super::binary::tool("promtool") else {
        return false;
    };
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim().to_owned();
        let quoted = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("unquoted label")?;
        let mut chars = quoted.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        s = &quoted[end + 1..];
        labels.insert(key, value);
    }
}
