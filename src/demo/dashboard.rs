//! The demo's view: per-upstream figures read from a `/metrics` scrape, and their rendering as
//! a table redrawn in place on a terminal or as throttled plain lines otherwise. Pure text in,
//! text out; the demo driver does the scraping and printing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What one scrape says about one upstream (counters are totals since start).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpstreamFigures {
    /// `rampart_requests_total`, every code.
    pub requests: f64,
    /// 2xx answers.
    pub ok: f64,
    /// 429 answers.
    pub rate_limited: f64,
    /// 5xx answers (the upstream's own or generated).
    pub server_errors: f64,
    /// `rampart_retries_total`.
    pub retries: f64,
    /// `rampart_circuit_breaker_state`: 0 closed, 1 half-open, 2 open.
    pub breaker_state: f64,
    /// `rampart_circuit_breaker_opened_total`.
    pub breaker_opened: f64,
}

/// Figures per upstream name.
pub type Snapshot = BTreeMap<String, UpstreamFigures>;

/// Reads the demo's figures from Prometheus text; series of other metrics are ignored.
pub fn parse(text: &str) -> Snapshot {
    let mut snapshot = Snapshot::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let Some(upstream) = label(labels, "upstream") else {
            continue;
        };
        if upstream.is_empty() {
            continue;
        }
        let figures = snapshot.entry(upstream.to_owned()).or_default();
        match name {
            "rampart_requests_total" => {
                figures.requests += value;
                match label(labels, "code").unwrap_or("").as_bytes() {
                    [b'2', ..] => figures.ok += value,
                    b"429" => figures.rate_limited += value,
                    [b'5', ..] => figures.server_errors += value,
                    _ => {}
                }
            }
            "rampart_retries_total" => figures.retries += value,
            "rampart_circuit_breaker_state" => figures.breaker_state = value,
            "rampart_circuit_breaker_opened_total" => figures.breaker_opened += value,
            _ => {}
        }
    }
    snapshot
}

/// Splits `name{labels} value` (labels may be absent).
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, rest)) => Some((name, rest.strip_suffix('}')?, value)),
        None => Some((series, "", value)),
    }
}

/// The value of `key` in `a="x",b="y"` (our label values hold no quotes or commas).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.trim_matches('"'))
    })
}

/// The breaker state word for a gauge value.
pub fn breaker_word(state: f64) -> &'static str {
    match state as u8 {
        0 => "closed",
        1 => "half_open",
        _ => "open",
    }
}

/// One redraw: a header, one row per upstream with its request rate over `interval` (from
/// `previous`), and the story line. `colour` adds ANSI colours for a terminal.
pub fn table(
    now: &Snapshot,
    previous: &Snapshot,
    interval: Duration,
    header: &str,
    story: &str,
    colour: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>9} {:>7} {:>6} {:>6} {:>8}  breaker",
        "upstream", "req/s", "requests", "2xx", "429", "5xx", "retries"
    );
    for (name, f) in now {
        let word = breaker_word(f.breaker_state);
        let breaker = match (colour, word) {
            (false, _) => word.to_owned(),
            (true, "closed") => format!("\x1b[32m{word}\x1b[0m"),
            (true, "half_open") => format!("\x1b[33m{word}\x1b[0m"),
            (true, _) => format!("\x1b[1;31m{word}\x1b[0m"),
        };
        let _ = writeln!(
            out,
            "{:<10} {:>7.1} {:>9} {:>7} {:>6} {:>6} {:>8}  {breaker} (opened {}x)",
            name,
            rate(f, previous.get(name), interval),
            f.requests,
            f.ok,
            f.rate_limited,
            f.server_errors,
            f.retries,
            f.breaker_opened,
        );
    }
    let _ = writeln!(out, "\n{story}");
    out
}

/// One plain line for logs and pipes: `t=5s healthy 40.0/s 2xx=200 ... | flaky ...`.
pub fn line(now: &Snapshot, previous: &Snapshot, interval: Duration, elapsed: Duration) -> String {
    let rows: Vec<String> = now
        .iter()
        .map(|(name, f)| {
            format!(
                "{name} {:.1}/s 2xx={} 429={} 5xx={} retries={} breaker={}",
                rate(f, previous.get(name), interval),
                f.ok,
                f.rate_limited,
                f.server_errors,
                f.retries,
                breaker_word(f.breaker_state),
            )
        })
        .collect();
    format!("t={:.1}s {}", elapsed.as_secs_f64(), rows.join(" | "))
}

fn rate(now: &UpstreamFigures, previous: Option<&UpstreamFigures>, interval: Duration) -> f64 {
    let before = previous.map_or(0.0, |p| p.requests);
    let secs = interval.as_secs_f64();
    if secs > 0.0 {
        (now.requests - before).max(0.0) / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# TYPE rampart_requests_total counter
rampart_requests_total{upstream=\"flaky\",code=\"200\"} 30
rampart_requests_total{upstream=\"flaky\",code=\"503\"} 5
rampart_requests_total{upstream=\"limited\",code=\"429\"} 7
rampart_requests_total{upstream=\"\",code=\"404\"} 1
rampart_retries_total{upstream=\"flaky\",reason=\"status_503\"} 4
rampart_retries_total{upstream=\"flaky\",reason=\"reset\"} 1
rampart_circuit_breaker_state{upstream=\"flaky\"} 2
rampart_circuit_breaker_opened_total{upstream=\"flaky\",reason=\"consecutive_failures\"} 1
rampart_build_info{version=\"0.1.0\"} 1
";

    #[test]
    fn a_scrape_becomes_figures_per_upstream() {
        let s = parse(SCRAPE);
        assert_eq!(
            s.len(),
            2,
            "unrouted and label-less series are left out: {s:?}"
        );
        let flaky = &s["flaky"];
        assert_eq!(flaky.requests, 35.0);
        assert_eq!(flaky.ok, 30.0);
        assert_eq!(flaky.server_errors, 5.0);
        assert_eq!(flaky.retries, 5.0);
        assert_eq!(breaker_word(flaky.breaker_state), "open");
        assert_eq!(flaky.breaker_opened, 1.0);
        assert_eq!(s["limited"].rate_limited, 7.0);
    }

    #[test]
    fn rates_come_from_the_difference_over_the_interval() {
        let now = parse(SCRAPE);
        let mut before = now.clone();
        before.get_mut("flaky").unwrap().requests = 15.0;
        let text = line(
            &now,
            &before,
            Duration::from_secs(2),
            Duration::from_secs(8),
        );
        assert!(text.starts_with("t=8.0s flaky 10.0/s 2xx=30"), "{text}");
        assert!(text.contains("breaker=open"), "{text}");
        let drawn = table(&now, &before, Duration::from_secs(2), "head", "story", true);
        assert!(drawn.contains("\x1b[1;31mopen\x1b[0m"), "{drawn}");
        assert!(drawn.ends_with("story\n"), "{drawn}");
    }
}
