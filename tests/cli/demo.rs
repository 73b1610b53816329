//! `rampart demo` run non-interactively through the real binary: plain throttled lines (no
//! terminal escapes), the breaker opening and closing again, 429s, a summary, exit 0.

use std::time::Duration;

use super::support::binary::rampart;

#[tokio::test]
async fn the_demo_shows_a_breaker_trip_and_recover_and_rate_limiting_then_ends() {
    let run = rampart(&["demo", "--duration", "10s", "--rate", "20"])
        .run(Duration::from_secs(40))
        .await;
    let out = &run.output;
    assert_eq!(run.status.code(), Some(0), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no terminal escapes on a pipe: {out}"
    );

    let live: Vec<&str> = out.lines().filter(|l| l.starts_with("t=")).collect();
    assert!(
        (3..=12).contains(&live.len()),
        "plain lines are throttled (one per second for a 10 s run): {live:#?}"
    );
    assert!(
        live.iter()
            .any(|l| l.contains("flaky") && l.contains("breaker=open")),
        "a live line shows the flaky breaker open: {out}"
    );

    assert!(out.contains("rampart demo finished after"), "{out}");
    let summary = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name) && l.contains(" requests: "))
            .unwrap_or_else(|| panic!("a summary line for {name}: {out}"))
    };
    let number_before = |line: &str, what: &str| -> f64 {
        let head = &line[..line
            .find(what)
            .unwrap_or_else(|| panic!("{what} in {line}"))];
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    assert_eq!(number_before(summary("healthy"), " 5xx"), 0.0);
    assert!(number_before(summary("limited"), " 429 rate_limited") > 0.0);
    assert!(summary("flaky").contains("breaker closed"), "{out}");
    let story = out
        .lines()
        .find(|l| l.contains("flaky breaker: opened at"))
        .expect("the breaker story line");
    assert!(!story.contains("never"), "{story}");
    assert!(
        out.contains("/admin/upstreams"),
        "the admin URL to try: {out}"
    );
}
