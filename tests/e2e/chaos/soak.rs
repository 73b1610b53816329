//! The soak (benches/soak/run.sh): minutes of mostly healthy traffic with every fault mixed
//! in, at a steady rate, against the release binary; reports RSS, descriptors and latency
//! percentiles per minute and totals by status as Markdown, and checks the chaos invariants
//! at the end. Ignored by default: it runs for minutes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::load::{self, Answer, Ids, Phase, Record};
use super::rig::Rig;
use super::routes::{Mix, ROUTES};
use super::{Baseline, check, env_or, with_reloads};

const WORKERS: usize = 64;
/// Requests per second when `RAMPART_SOAK_RATE` is not set.
const DEFAULT_RATE: u64 = 500;
const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Resource samples per minute.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// What /proc said during one minute.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rss_kib: u64,
    rss_max_kib: u64,
    fds: usize,
    fds_max: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for minutes: benches/soak/run.sh"]
async fn soak() {
    let minutes: u64 = env_or("RAMPART_SOAK_MINUTES", 10);
    let rate: u64 = env_or("RAMPART_SOAK_RATE", DEFAULT_RATE);
    let mut rig = Rig::start().await;
    let ids = Arc::new(Ids::default());

    let warm_up = Phase {
        workers: WORKERS,
        requests: rate * 5,
        duration: Duration::from_secs(5),
        rate: Some(rate as f64),
        mix: Mix::Soak,
    };
    let mut records = load::run(rig.addr, ROUTES, warm_up, ids.clone()).await;
    let baseline = Baseline::take(&rig).await;

    let phase = Phase {
        workers: WORKERS,
        requests: rate * 60 * minutes,
        duration: Duration::from_secs(60 * minutes),
        rate: Some(rate as f64),
        mix: Mix::Soak,
    };
    let load = load::run(rig.addr, ROUTES, phase, ids);
    let sampled = async {
        let ((main, samples), hups) = with_reloads(&rig, RELOAD_EVERY, async {
            tokio::join!(load, sample(&rig, minutes))
        })
        .await;
        (main, samples, hups)
    };
    let (main, samples, hups) = sampled.await;
    let report = report(&main, &samples, rate, &baseline);
    records.extend(main);

    let (findings, after) = check(&mut rig, &records, hups, WORKERS, &baseline).await;
    let report = format!(
        "{report}\nOnce the connections had closed after the load: {} descriptors (baseline {}), RSS \
         {:.1} MiB (baseline {:.1} MiB). {hups} reloads (SIGHUP) during the run.\n",
        after.fds,
        baseline.fds,
        mib(after.rss_kib),
        mib(baseline.rss_kib),
    );
    println!("{report}");
    if let Ok(path) = std::env::var("RAMPART_SOAK_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    findings.assert_none();
}

/// Samples the proxy every `SAMPLE_EVERY` for `minutes`; one summary per minute.
async fn sample(rig: &Rig, minutes: u64) -> Vec<Sample> {
    let start = Instant::now();
    let mut out = vec![Sample::default(); minutes as usize];
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        // The sample taken at the end of a minute belongs to that minute.
        let minute = ((start.elapsed().as_millis() - 1) / 60_000) as usize;
        let Some(slot) = out.get_mut(minute) else {
            return out;
        };
        let (rss_kib, fds) = (rig.proxy.rss_kib(), rig.proxy.open_fds().len());
        *slot = Sample {
            rss_kib,
            rss_max_kib: slot.rss_max_kib.max(rss_kib),
            fds,
            fds_max: slot.fds_max.max(fds),
        };
    }
}

/// The Markdown report: one row per minute, then totals by status.
fn report(records: &[Record], samples: &[Sample], rate: u64, baseline: &Baseline) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} requests at {rate}/s by {WORKERS} clients over {} minute(s); baseline after warm-up: \
         RSS {:.1} MiB, {} descriptors.\n",
        records.len(),
        samples.len(),
        mib(baseline.rss_kib),
        baseline.fds,
    );
    out.push_str(
        "| minute | requests | p50 ms | p90 ms | p99 ms | `ok` p50 ms | `ok` p99 ms | RSS MiB (max) | descriptors (max) |\n",
    );
    out.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let ok = ROUTES.iter().position(|r| r.upstream == "ok").unwrap();
    for (minute, s) in samples.iter().enumerate() {
        let in_minute: Vec<&Record> = records
            .iter()
            .filter(|r| r.sent.as_secs() / 60 == minute as u64)
            .collect();
        let answered = |r: &&&Record| r.answer != Ok(Answer::Abandoned);
        let all: Vec<Duration> = in_minute
            .iter()
            .filter(answered)
            .map(|r| r.latency)
            .collect();
        let healthy: Vec<Duration> = in_minute
            .iter()
            .filter(|r| r.route == ok)
            .map(|r| r.latency)
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} ({:.1}) | {} ({}) |",
            minute + 1,
            in_minute.len(),
            ms(percentile(&all, 0.50)),
            ms(percentile(&all, 0.90)),
            ms(percentile(&all, 0.99)),
            ms(percentile(&healthy, 0.50)),
            ms(percentile(&healthy, 0.99)),
            mib(s.rss_kib),
            mib(s.rss_max_kib),
            s.fds,
            s.fds_max,
        );
    }
    out.push_str("\n| status | answer | count |\n| ---: | --- | ---: |\n");
    let mut totals: BTreeMap<(u16, String), u64> = BTreeMap::new();
    for r in records {
        let key = match &r.answer {
            Ok(Answer::Proxied(_)) => (r.status.unwrap_or(0), "upstream".to_owned()),
            Ok(Answer::Truncated(_)) => (
                r.status.unwrap_or(0),
                "upstream, body cut by a reset".to_owned(),
            ),
            Ok(Answer::Local(code)) => (r.status.unwrap_or(0), format!("`{code}`")),
            Ok(Answer::Abandoned) => (0, "none: the client gave up".to_owned()),
            Ok(Answer::Reset) => (0, "h2 stream reset (upstream reset mid-body)".to_owned()),
            Err(_) => (r.status.unwrap_or(0), "MALFORMED".to_owned()),
        };
        *totals.entry(key).or_default() += 1;
    }
    for ((status, what), n) in totals {
        let status = if status == 0 {
            "-".to_owned()
        } else {
            status.to_string()
        };
        let _ = writeln!(out, "| {status} | {what} | {n} |");
    }
    out
}

/// The `q` quantile (nearest rank) of `values`; zero when there are none.
fn percentile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
