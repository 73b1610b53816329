//! The invariants of a chaos run, checked against what the clients got, what the fault
//! upstream received, what /metrics says and what /proc says about the proxy. Every broken
//! one is collected, so a failing run names them all.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::Rig;
use super::load::{Answer, Kind, Record};
use super::routes::{ALWAYS_FAILING, Breaker, Route};
use crate::support::Metrics;
use crate::support::binary::Process;

/// `retry.attempts` of every upstream: the most tries one request gets.
const MAX_ATTEMPTS: u32 = 3;
/// Descriptors the proxy may hold after the load beyond its post-warm-up baseline.
pub const FD_MARGIN: usize = 2;
/// RSS growth allowed after the load: this fraction of the baseline, at least `RSS_FLOOR_KIB`.
pub const RSS_GROWTH: f64 = 0.25;
pub const RSS_FLOOR_KIB: u64 = 8 * 1024;
/// How long the upstream's receipts may lag the proxy's attempt counters.
const RECEIPTS_SETTLE: Duration = Duration::from_secs(5);
/// Findings of one kind shown in full; the rest are counted.
const SHOWN: usize = 8;

/// Broken invariants, by kind.
#[derive(Debug, Default)]
pub struct Findings {
    kinds: BTreeMap<String, Vec<String>>,
}

// === impl Findings ===

impl Findings {
    fn add(&mut self, kind: &str, detail: String) {
        self.kinds.entry(kind.into()).or_default().push(detail);
    }

    /// Records `what()` under its own name when `ok` is false.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let what = what();
            self.add(&what, what.clone());
        }
    }

    /// Every request got one well-formed answer of a kind its route allows.
    pub fn answers(&mut self, routes: &[Route], records: &[Record]) {
        for r in records {
            if let Err(why) = &r.answer {
                let route = routes[r.route].upstream;
                self.add(
                    &format!("malformed or missing answers on {route}"),
                    format!("id {} {:?} h2={}: {why}", r.id, r.kind, r.h2),
                );
            }
        }
    }

    /// No request reached the upstream more often than it was tried, and no POST without an
    /// Idempotency-Key reached it twice.
    pub fn receipts(&mut self, records: &[Record], receipts: &HashMap<u64, u32>) {
        let mut unknown: HashMap<u64, u32> = receipts.clone();
        for r in records {
            let got = unknown.remove(&r.id).unwrap_or(0);
            if r.answer == Ok(Answer::Abandoned) && got > 1 {
                self.add(
                    "a request was tried again after its client had gone",
                    format!("id {}: received {got} times", r.id),
                );
            }
            if r.kind == Kind::Post && got > 1 {
                self.add(
                    "a POST without Idempotency-Key reached the upstream twice",
                    format!("id {}: received {got} times", r.id),
                );
            }
            if r.kind == Kind::BigPost && got > 1 {
                self.add(
                    "a body too large to replay reached the upstream twice",
                    format!("id {}: received {got} times", r.id),
                );
            }
            if let Some(tries) = r.attempts
                && got > tries
            {
                self.add(
                    "the upstream received a request more often than it was tried",
                    format!("id {}: {got} receipts, x-rampart-attempts {tries}", r.id),
                );
            }
        }
        for (id, n) in unknown {
            self.add(
                "the upstream received requests no client sent",
                format!("id {id}: {n} receipts"),
            );
        }
    }

    /// Per upstream, /metrics agrees with the clients and with the upstream's receipts.
    pub fn metrics(
        &mut self,
        routes: &[Route],
        records: &[Record],
        receipts: &HashMap<u64, u32>,
        m: &Metrics,
    ) {
        for (i, route) in routes.iter().enumerate() {
            let name = route.upstream;
            let up = [("upstream", name)];
            let outcome = |o| {
                m.sum(
                    "rampart_upstream_attempts_total",
                    &[("upstream", name), ("outcome", o)],
                )
            };
            let mine: Vec<&Record> = records.iter().filter(|r| r.route == i).collect();
            let t = Totals::of(&mine, receipts);
            let in_flight = m.sum("rampart_requests_in_flight", &up);
            self.equal(name, "requests_in_flight after the load", in_flight, 0);

            // Tries that reached the upstream for sure, and those that may have (a cancelled
            // try was dropped at some point on its way).
            let attempts = m.sum("rampart_upstream_attempts_total", &up);
            let (connect, cancelled) = (outcome("connect_error"), outcome("cancelled"));
            let (sure, maybe) = (attempts - connect - cancelled, attempts - connect);
            if !(sure..=maybe).contains(&(t.receipts as f64)) {
                self.add(
                    "metrics disagree: attempts_total{outcome!=connect_error} vs receipts",
                    format!("{name}: {} receipts, {sure} to {maybe} tries", t.receipts),
                );
            }
            // Only a lost hedge or a departed app cancels a try.
            let hedged = route.upstream == "hedge";
            if !hedged && route.patience.is_none() {
                self.equal(name, "attempts_total{outcome=cancelled}", cancelled, 0);
            }
            if route.patience.is_some() {
                // No response: no status or x-rampart-attempts to compare.
                continue;
            }

            let counted = m.sum("rampart_requests_total", &up);
            self.equal(name, "requests_total", counted, mine.len() as u64);
            let mut by_code: BTreeMap<u16, u64> = BTreeMap::new();
            for status in mine.iter().filter_map(|r| r.status) {
                *by_code.entry(status).or_default() += 1;
            }
            for (code, n) in by_code {
                let counted = m.sum(
                    "rampart_requests_total",
                    &[("upstream", name), ("code", &code.to_string())],
                );
                // Answers whose head an h2 client never saw (`t.unheard`) have some code.
                if !(n..=n + t.unheard).contains(&(counted as u64)) {
                    self.add(
                        &format!("metrics disagree: requests_total{{code={code}}}"),
                        format!(
                            "{name}: /metrics {counted}, clients saw {n} (+{} unheard)",
                            t.unheard
                        ),
                    );
                }
            }
            let low = t.attempts + t.unheard;
            let high = t.attempts + t.unheard * u64::from(MAX_ATTEMPTS);
            if !(low..=high).contains(&(attempts as u64)) {
                self.add(
                    "metrics disagree: attempts_total vs x-rampart-attempts",
                    format!("{name}: /metrics {attempts}, clients saw {low} to {high}"),
                );
            }
            // Every try after a request's first is a retry or a hedge.
            let retries = m.sum("rampart_retries_total", &up) + m.sum("rampart_hedges_total", &up);
            let first_tries = t.tried + t.unheard;
            let what = "retries_total + hedges_total vs attempts - requests tried";
            self.equal(name, what, retries, attempts as u64 - first_tries);
        }
    }

    fn equal(&mut self, upstream: &str, what: &str, metric: f64, expected: u64) {
        if metric != expected as f64 {
            self.add(
                &format!("metrics disagree: {what}"),
                format!("{upstream}: /metrics {metric}, expected {expected}"),
            );
        }
    }

    /// Always-failing upstreams opened their breaker, never closed it, and got no tries while
    /// it was open beyond `half_open_calls` probes per half-open period (plus what was in
    /// flight when it opened: one try per client at most).
    pub fn breakers(
        &mut self,
        routes: &[Route],
        records: &[Record],
        m: &Metrics,
        breaker: Breaker,
        workers: usize,
    ) {
        for name in ALWAYS_FAILING {
            let i = routes.iter().position(|r| r.upstream == *name).unwrap();
            let up = [("upstream", *name)];
            let opened = m.sum("rampart_circuit_breaker_opened_total", &up);
            let pair = |from, to| {
                m.sum(
                    "rampart_circuit_breaker_transitions_total",
                    &[("upstream", name), ("from", from), ("to", to)],
                )
            };
            let half_opened = pair("open", "half_open");
            let closed = pair("half_open", "closed");
            let tries = m.sum("rampart_upstream_attempts_total", &up);
            let rejected = m.sum("rampart_circuit_breaker_rejected_total", &up);
            let refused = records
                .iter()
                .filter(|r| r.route == i && r.answer == Ok(Answer::Local("circuit_open")))
                .count();
            let bound = f64::from(breaker.consecutive_failures)
                + workers as f64
                + half_opened * f64::from(breaker.half_open_calls);
            self.check(opened > 0.0, || {
                format!("the breaker of {name} never opened")
            });
            self.check(closed == 0.0, || {
                format!(
                    "the breaker of {name} closed {closed} times on an upstream that always fails"
                )
            });
            self.check(tries <= bound, || {
                format!(
                    "{name} got {tries} tries; at most {bound} fit {half_opened} half-open periods"
                )
            });
            self.check(rejected >= refused as f64, || {
                format!("{name}: {refused} circuit_open answers but rejected_total {rejected}")
            });
        }
    }

    /// Every SIGHUP reloaded the config.
    pub fn reloads(&mut self, m: &Metrics, hups: u32) {
        let ok = m.sum("rampart_config_reloads_total", &[("result", "success")]);
        let failed = m.sum("rampart_config_reloads_total", &[("result", "failure")]);
        self.check(ok == f64::from(hups) && failed == 0.0, || {
            format!("{hups} SIGHUPs, {ok} reloads, {failed} failed")
        });
    }

    /// Descriptors and RSS came back near their baseline after the load.
    pub fn resources(&mut self, (fds_base, fds): (usize, usize), (rss_base, rss): (u64, u64)) {
        self.check(fds <= fds_base + FD_MARGIN, || {
            format!("open descriptors: {fds} after the load, {fds_base} before")
        });
        let allowed = rss_base + ((rss_base as f64 * RSS_GROWTH) as u64).max(RSS_FLOOR_KIB);
        self.check(rss <= allowed, || {
            format!("RSS {rss} KiB after the load, {rss_base} KiB before (allowed {allowed})")
        });
    }

    /// The proxy is still running.
    pub fn alive(&mut self, proxy: &mut Process) {
        let running = proxy.is_running();
        self.check(running, || {
            format!("rampart exited during the run:\n{}", proxy.output())
        });
    }

    /// Nothing in the proxy's output says a thread panicked.
    pub fn no_panic(&mut self, output: &str) {
        for line in output.lines().filter(|l| l.contains("panicked")) {
            self.add("rampart panicked", line.to_owned());
        }
    }

    /// Panics listing every finding (the first few of each kind in full).
    #[track_caller]
    pub fn assert_none(&self) {
        if self.kinds.is_empty() {
            return;
        }
        let mut report = String::from("chaos invariants broken:\n");
        for (kind, details) in &self.kinds {
            report.push_str(&format!("- {kind} ({}):\n", details.len()));
            for d in details.iter().take(SHOWN) {
                report.push_str(&format!("    {d}\n"));
            }
        }
        panic!("{report}");
    }
}

/// Per-route sums over the client records.
struct Totals {
    /// Σ x-rampart-attempts.
    attempts: u64,
    /// Requests that got at least one try, by x-rampart-attempts.
    tried: u64,
    /// Requests answered by the proxy whose head the client never saw (h2 resets): tried,
    /// with an unknown number of tries.
    unheard: u64,
    /// Σ receipts at the upstream of this route's requests.
    receipts: u64,
}

impl Totals {
    fn of(records: &[&Record], receipts: &HashMap<u64, u32>) -> Self {
        let attempts = |r: &&&Record| u64::from(r.attempts.unwrap_or(0));
        Self {
            attempts: records.iter().map(|r| attempts(&r)).sum(),
            tried: records.iter().filter(|r| attempts(r) > 0).count() as u64,
            unheard: records
                .iter()
                .filter(|r| r.answer == Ok(Answer::Reset))
                .count() as u64,
            receipts: records
                .iter()
                .map(|r| u64::from(receipts.get(&r.id).copied().unwrap_or(0)))
                .sum(),
        }
    }
}

/// The upstream's receipts once they have caught up with the proxy's attempt counters: a try
/// the proxy gave up on may still be read by the upstream a moment later. Bounded wait.
pub async fn settled_receipts(
    rig: &Rig,
    routes: &[Route],
    records: &[Record],
) -> HashMap<u64, u32> {
    let deadline = Instant::now() + RECEIPTS_SETTLE;
    loop {
        let receipts = rig.upstream.receipts();
        let m = rig.scrape().await;
        let caught_up = routes.iter().enumerate().all(|(i, route)| {
            let mine: Vec<&Record> = records.iter().filter(|r| r.route == i).collect();
            let up = [("upstream", route.upstream)];
            let outcome = |o| {
                m.sum(
                    "rampart_upstream_attempts_total",
                    &[("upstream", route.upstream), ("outcome", o)],
                )
            };
            let sure = m.sum("rampart_upstream_attempts_total", &up)
                - outcome("connect_error")
                - outcome("cancelled");
            Totals::of(&mine, &receipts).receipts as f64 >= sure
        });
        if caught_up || Instant::now() >= deadline {
            return receipts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One line per route: requests and how they were answered.
pub fn summary(routes: &[Route], records: &[Record]) -> String {
    let mut out = String::new();
    for (i, route) in routes.iter().enumerate() {
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        let mut n = 0;
        for r in records.iter().filter(|r| r.route == i) {
            n += 1;
            let key = match &r.answer {
                Ok(Answer::Proxied(s)) => format!("{s}"),
                Ok(Answer::Truncated(s)) => format!("{s} truncated"),
                Ok(Answer::Local(code)) => (*code).to_owned(),
                Ok(Answer::Abandoned) => "abandoned".to_owned(),
                Ok(Answer::Reset) => "h2 reset".to_owned(),
                Err(_) => "MALFORMED".to_owned(),
            };
            *answers.entry(key).or_default() += 1;
        }
        out.push_str(&format!("  {:<11} {n:>5}: {answers:?}\n", route.upstream));
    }
    out
}
