//! `rampart demo`: three local upstreams (healthy, flaky, rate-limited), a real proxy in
//! process on free loopback ports, steady traffic through it, and a live view read from the
//! proxy's own `/metrics`. The flaky upstream fails for a while, so its breaker opens and then
//! closes again through probes. Ends by itself with a summary.

pub mod dashboard;
pub mod flaky_upstream;
pub mod traffic;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app;
use dashboard::Snapshot;
use flaky_upstream::FlakyUpstream;

/// How often the live view samples `/metrics` (and redraws on a terminal).
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// What `rampart demo` was asked for.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Total run time; the flaky upstream fails from 20 % to 50 % of it.
    pub duration: Duration,
    /// Requests per second sent to each of the three upstreams.
    pub rate: u32,
    /// Redraw a table in place (a terminal) instead of printing plain lines.
    pub tty: bool,
}

/// Why the demo could not run or did not show what it promises.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A local upstream or the proxy could not start.
    #[error("cannot start: {0}")]
    Start(String),
    /// Writing to the terminal failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The run ended without the behaviour the demo exists to show.
    #[error("the demo did not go as planned: {0}")]
    Unexpected(String),
}

/// When the flaky upstream's breaker was seen to change, relative to the start.
#[derive(Clone, Copy, Debug, Default)]
struct BreakerStory {
    opened_at: Option<Duration>,
    closed_at: Option<Duration>,
}

/// Runs the demo, writing the live view and the summary to `out`.
pub async fn run(options: DemoOptions, out: &mut dyn Write) -> Result<(), DemoError> {
    let start_err = |e: std::io::Error| DemoError::Start(e.to_string());
    let healthy = FlakyUpstream::start(Duration::from_millis(5))
        .await
        .map_err(start_err)?;
    let flaky = FlakyUpstream::start(Duration::from_millis(5))
        .await
        .map_err(start_err)?;
    let limited = FlakyUpstream::start(Duration::from_millis(5))
        .await
        .map_err(start_err)?;
    let yaml = config(&healthy, &flaky, &limited);
    let config = crate::config::parse(&yaml, &|_| None)
        .map_err(|e| DemoError::Start(format!("demo config: {e}")))?;
    let app = app::start(config, None)
        .await
        .map_err(|e| DemoError::Start(e.to_string()))?;
    let (proxy, admin) = (app.listen_addr, app.admin_addr);

    writeln!(
        out,
        "rampart demo: proxy on {proxy}, admin API on http://{admin}/ for {:.0}s\n\
         while it runs, try: curl -s http://{admin}/admin/upstreams\n",
        options.duration.as_secs_f64()
    )?;

    let stop = CancellationToken::new();
    let client = traffic::client();
    let mut drivers = Vec::new();
    for name in ["healthy", "flaky", "limited"] {
        let driver = traffic::drive(client.clone(), proxy, name, options.rate, stop.clone());
        drivers.push(tokio::spawn(driver));
    }

    let fail_from = options.duration.mul_f64(0.2);
    let fail_until = options.duration.mul_f64(0.5);
    let plain_every = (options.duration / 10).clamp(Duration::from_secs(1), Duration::from_secs(5));
    let started = Instant::now();
    let mut story = BreakerStory::default();
    let mut previous = Snapshot::new();
    let mut last_printed = (Instant::now(), Snapshot::new());
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    if options.tty {
        write!(out, "\x1b[2J")?;
    }
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut ctrl_c => break,
        }
        let elapsed = started.elapsed();
        if elapsed >= options.duration {
            break;
        }
        flaky.set_failing(elapsed >= fail_from && elapsed < fail_until);
        let now = scrape(&client, admin).await;
        observe(&mut story, now.get("flaky"), elapsed);
        if options.tty {
            let header = format!(
                "rampart demo  {:>5.1}s of {:.0}s   proxy {proxy}   admin http://{admin}/admin/upstreams",
                elapsed.as_secs_f64(),
                options.duration.as_secs_f64()
            );
            let text = dashboard::table(
                &now,
                &previous,
                SAMPLE_EVERY,
                &header,
                &phase(&flaky, fail_from, fail_until, elapsed),
                true,
            );
            write!(out, "\x1b[H{text}\x1b[J")?;
            out.flush()?;
        } else if last_printed.0.elapsed() >= plain_every {
            let text = dashboard::line(&now, &last_printed.1, last_printed.0.elapsed(), elapsed);
            writeln!(out, "{text}")?;
            last_printed = (Instant::now(), now.clone());
        }
        previous = now;
    }
    stop.cancel();
    for driver in drivers {
        let _ = driver.await;
    }
    let last = scrape(&client, admin).await;
    let elapsed = started.elapsed();
    app.begin_shutdown();
    let _ = app.wait().await;

    summary(out, &last, story, elapsed, proxy, admin, flaky.received())?;
    check(&last, story)
}

/// The demo's config: three upstreams on the local ports, each showing one policy.
fn config(healthy: &FlakyUpstream, flaky: &FlakyUpstream, limited: &FlakyUpstream) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin: {{ listen: 127.0.0.1:0 }}
shutdown: {{ drain_delay: 0s, timeout: 2s }}
upstreams:
  healthy:
    endpoints: ["{}"]
    hosts: [healthy]
  flaky:
    endpoints: ["{}"]
    hosts: [flaky]
    retry:
      attempts: 2
      on: [connect-failure, reset, per-try-timeout, 503]
      backoff: {{ strategy: fixed, base: 10ms, max: 10ms }}
    circuit_breaker:
      consecutive_failures: 5
      failure_rate: 50%
      minimum_calls: 10
      window: 10s
      open_for: 1s
      max_open_for: 2s
      half_open_calls: 2
      success_threshold: 2
  limited:
    endpoints: ["{}"]
    hosts: [limited]
    rate_limit: {{ rate: 10/s, burst: 5 }}
"#,
        healthy.url(),
        flaky.url(),
        limited.url()
    )
}

/// Reads the proxy's `/metrics` over HTTP, as Prometheus would; empty on failure.
async fn scrape(client: &traffic::DemoClient, admin: SocketAddr) -> Snapshot {
    let Ok(uri) = format!("http://{admin}/metrics").parse::<http::Uri>() else {
        return Snapshot::new();
    };
    let Ok(response) = client.get(uri).await else {
        return Snapshot::new();
    };
    match response.into_body().collect().await {
        Ok(body) => dashboard::parse(&String::from_utf8_lossy(&body.to_bytes())),
        Err(_) => Snapshot::new(),
    }
}

/// Notes when the flaky upstream's breaker first opened and when it closed after that.
fn observe(story: &mut BreakerStory, flaky: Option<&dashboard::UpstreamFigures>, at: Duration) {
    let Some(f) = flaky else { return };
    if story.opened_at.is_none() && (f.breaker_opened > 0.0 || f.breaker_state >= 2.0) {
        story.opened_at = Some(at);
    }
    if story.opened_at.is_some() && story.closed_at.is_none() && f.breaker_state == 0.0 {
        story.closed_at = Some(at);
    }
}

/// The line under the table that says what is happening to the flaky upstream.
fn phase(flaky: &FlakyUpstream, from: Duration, until: Duration, now: Duration) -> String {
    if flaky.is_failing() {
        format!(
            "flaky answers 503 from {:.0}s to {:.0}s: watch its breaker open and stop retries",
            from.as_secs_f64(),
            until.as_secs_f64()
        )
    } else if now < from {
        format!(
            "all upstreams healthy; flaky starts failing at {:.0}s; limited allows 10 req/s",
            from.as_secs_f64()
        )
    } else {
        "flaky has recovered: the breaker probes it (half_open) and closes".to_owned()
    }
}

fn summary(
    out: &mut dyn Write,
    last: &Snapshot,
    story: BreakerStory,
    elapsed: Duration,
    proxy: SocketAddr,
    admin: SocketAddr,
    flaky_received: u64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "\nrampart demo finished after {:.1}s",
        elapsed.as_secs_f64()
    )?;
    for (name, f) in last {
        writeln!(
            out,
            "  {name:<8} {} requests: {} 2xx, {} 429 rate_limited, {} 5xx, {} retries, breaker {} (opened {}x)",
            f.requests,
            f.ok,
            f.rate_limited,
            f.server_errors,
            f.retries,
            dashboard::breaker_word(f.breaker_state),
            f.breaker_opened
        )?;
    }
    let at =
        |t: Option<Duration>| t.map_or("never".to_owned(), |t| format!("{:.1}s", t.as_secs_f64()));
    writeln!(
        out,
        "  flaky breaker: opened at {}, closed again at {}; the flaky upstream received {flaky_received} tries",
        at(story.opened_at),
        at(story.closed_at)
    )?;
    writeln!(
        out,
        "\nThe proxy was on {proxy} with its admin API on http://{admin}/ (now stopped).\n\
         Run your own: `rampart` (embedded default, admin on 127.0.0.1:9901), then\n  \
         curl -s http://127.0.0.1:9901/admin/upstreams\n  \
         curl -s http://127.0.0.1:9901/metrics | grep rampart_circuit_breaker_state"
    )
}

/// The demo promises three things; say so when one did not happen.
fn check(last: &Snapshot, story: BreakerStory) -> Result<(), DemoError> {
    let figures = |name: &str| last.get(name).cloned().unwrap_or_default();
    if figures("healthy").ok == 0.0 {
        return Err(DemoError::Unexpected(
            "no request reached the healthy upstream".into(),
        ));
    }
    if figures("limited").rate_limited == 0.0 {
        return Err(DemoError::Unexpected(
            "the limited upstream never answered 429".into(),
        ));
    }
    match story {
        BreakerStory {
            opened_at: Some(_),
            closed_at: Some(_),
        } => Ok(()),
        BreakerStory {
            opened_at: None, ..
        } => Err(DemoError::Unexpected(
            "the flaky upstream's breaker never opened".into(),
        )),
        _ => Err(DemoError::Unexpected(
            "the flaky upstream's breaker did not close again".into(),
        )),
    }
}
