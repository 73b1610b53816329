//! Chaos: the real rampart binary in front of a fault-injecting upstream (refused connections,
//! resets before headers and mid-body, slow heads, trickled bodies, 100 % 5xx, flapping,
//! half-closed connections, an endpoint that never answers, clients that give up) under
//! concurrent load and SIGHUP reloads, with every invariant of docs/reliability.md checked
//! after the run. Short by default (6 s at 300 requests/s, leaving CPU to the tests that run
//! beside it); `RAMPART_CHAOS_SECONDS=N` and `RAMPART_CHAOS_RATE=R` (0: as fast as the
//! clients go) make the long form, tests/chaos/run-long.sh.

mod invariants;
mod load;
mod rig;
mod routes;
mod soak;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use invariants::Findings;
use load::{Ids, Phase};
use rig::Rig;
use routes::{BREAKER, Mix, ROUTES};

/// Load of the short form: bounded by time and by count, whichever ends first.
const SHORT_SECONDS: u64 = 6;
/// Requests per second of the short form.
const SHORT_RATE: u64 = 300;
/// Upper bound on requests per second of an unpaced run, so the count stays bounded.
const MAX_RATE: u64 = 5_000;
const WORKERS: usize = 32;
/// Time between SIGHUPs (reloads of the unchanged config) during the load.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// `name` from the environment as a number, else `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_load_keep_every_invariant() {
    let seconds = env_or("RAMPART_CHAOS_SECONDS", SHORT_SECONDS);
    let rate = match env_or("RAMPART_CHAOS_RATE", SHORT_RATE) {
        0 => None,
        r => Some(r as f64),
    };
    let mut rig = Rig::start().await;
    let fds_at_start = rig.settle().await;
    let ids = Arc::new(Ids::default());

    // Warm-up: the same mix, briefly, so pools, buffers and allocator arenas exist.
    let warm_up = Phase {
        workers: WORKERS,
        requests: MAX_RATE,
        duration: Duration::from_secs(1),
        rate,
        mix: Mix::Chaos,
    };
    let mut records = load::run(rig.addr, ROUTES, warm_up, ids.clone()).await;
    let baseline = Baseline::take(&rig).await;

    let phase = Phase {
        workers: WORKERS,
        requests: seconds * MAX_RATE,
        duration: Duration::from_secs(seconds),
        rate,
        mix: Mix::Chaos,
    };
    let (main, hups) =
        with_reloads(&rig, RELOAD_EVERY, load::run(rig.addr, ROUTES, phase, ids)).await;
    let sent = main.len();
    records.extend(main);

    let (findings, after) = check(&mut rig, &records, hups, WORKERS, &baseline).await;
    eprintln!(
        "chaos: {} requests ({sent} in {seconds} s of load), {hups} reloads; descriptors \
         {fds_at_start} at start, {} after warm-up, {} after the load; RSS {} KiB after \
         warm-up, {} KiB after the load",
        records.len(),
        baseline.fds,
        after.fds,
        baseline.rss_kib,
        after.rss_kib,
    );
    eprintln!("{}", invariants::summary(ROUTES, &records));
    findings.assert_none();
}

/// Descriptors and RSS of the proxy with no connection open.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    pub fds: usize,
    pub rss_kib: u64,
}

impl Baseline {
    /// Waits for every connection to close, then measures.
    pub async fn take(rig: &Rig) -> Self {
        let fds = rig.settle().await;
        Self {
            fds,
            rss_kib: rig.proxy.rss_kib(),
        }
    }
}

/// Runs `load` while sending the proxy a SIGHUP (a reload of the unchanged config, which keeps
/// every upstream with its breaker, budget and pool) every `every`; returns the load's output
/// and the number of SIGHUPs sent.
pub async fn with_reloads<T>(
    rig: &Rig,
    every: Duration,
    load: impl Future<Output = T>,
) -> (T, u32) {
    let hups = AtomicU32::new(0);
    let reloads = async {
        loop {
            tokio::time::sleep(every).await;
            rig.proxy.signal("HUP");
            hups.fetch_add(1, Ordering::Relaxed);
        }
    };
    let out = tokio::select! {
        out = load => out,
        () = reloads => unreachable!(),
    };
    (out, hups.load(Ordering::Relaxed))
}

/// Checks every invariant after the load (`workers` clients, `hups` reloads), then stops the
/// proxy with SIGTERM; returns what broke and the resources measured after the load.
pub async fn check(
    rig: &mut Rig,
    records: &[load::Record],
    hups: u32,
    workers: usize,
    baseline: &Baseline,
) -> (Findings, Baseline) {
    let after = Baseline::take(rig).await;
    let mut findings = Findings::default();
    findings.answers(ROUTES, records);
    let receipts = invariants::settled_receipts(rig, ROUTES, records).await;
    findings.receipts(records, &receipts);
    let metrics = rig.scrape().await;
    findings.metrics(ROUTES, records, &receipts, &metrics);
    findings.breakers(ROUTES, records, &metrics, BREAKER, workers);
    findings.reloads(&metrics, hups);
    findings.resources((baseline.fds, after.fds), (baseline.rss_kib, after.rss_kib));
    findings.alive(&mut rig.proxy);

    rig.proxy.signal("TERM");
    let status = rig.proxy.wait_exit(Duration::from_secs(10)).await;
    findings.check(status.code() == Some(0), || {
        format!("rampart exited with {status} after SIGTERM, not 0")
    });
    findings.no_panic(&rig.proxy.output());
    (findings, after)
}
