//! The real `rampart` binary: version, `validate`, config resolution and interpolation,
//! start-up errors, signals and exit codes, JSON logs, `probe`, and the memory a large
//! streaming upload and download cost the proxy process.

// The support items are `pub` for each other; nothing is exported.
#![allow(unreachable_pub)]

// The e2e helpers, shared; this binary uses only some of the re-exports.
#[path = "e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/reload.rs"]
mod reload;

use std::net::SocketAddr;
use std::time::Duration;

use support::binary::{Process, free_port, rampart, wait_for_port};
use support::client::{self, request};
use support::{Reply, TestUpstream, empty, generated};

const START: Duration = Duration::from_secs(5);

/// A runnable config on free ports with one upstream `svc` and the given shutdown policy.
struct Ports {
    listen: SocketAddr,
    admin: SocketAddr,
}

impl Ports {
    fn new() -> Self {
        // Both bound at once: two `free_port` calls can return the same port.
        let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (listen, admin) = (bind(), bind());
        Self {
            listen: listen.local_addr().unwrap(),
            admin: admin.local_addr().unwrap(),
        }
    }

    fn config(&self, endpoint: &str, shutdown: &str) -> String {
        format!(
            "listen: {}\nadmin: {{ listen: {} }}\nshutdown: {shutdown}\nupstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n",
            self.listen, self.admin
        )
    }
}

async fn started(process: &Process, ports: &Ports) {
    process.wait_for_line("rampart is serving", START).await;
    assert!(wait_for_port(ports.listen, START).await);
}

fn svc_get(ports: &Ports, path: &str) -> http::Request<support::Body> {
    request("GET", &format!("http://{}{path}", ports.listen))
        .header("host", "svc")
        .body(empty())
        .unwrap()
}

/// Lines of output that are not JSON log events (with `RAMPART_LOG_FORMAT=json`).
fn plain_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect()
}

#[tokio::test]
async fn version_prints_the_crate_version() {
    let done = rampart(&["--version"]).run(START).await;
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(
        done.output.trim(),
        format!("rampart {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn validate_summarises_a_good_file() {
    let yaml = "listen: 127.0.0.1:15555\nupstreams:\n  payments:\n    endpoints: [\"http://10.0.0.5:8080\"]\n    hosts: [payments]\n  search:\n    endpoints: [\"http://10.0.0.6:8080\"]\n    path_prefix: /search\n";
    let done = rampart(&["validate"]).config(yaml).run(START).await;
    assert_eq!(done.status.code(), Some(0), "{}", done.output);
    assert!(
        done.output.contains("rampart.yaml: valid"),
        "{}",
        done.output
    );
    for needle in [
        "127.0.0.1:15555",
        "- payments",
        "- search",
        "http://10.0.0.5:8080",
        "upstreams   2",
    ] {
        assert!(done.output.contains(needle), "{needle}: {}", done.output);
    }
}

#[tokio::test]
async fn validate_prints_every_error_with_path_and_line() {
    let yaml = "upstreams:\n  a:\n    endpoints: []\n  b:\n    endpoints: [\"http://127.0.0.1:1\"]\n    fallback: nothere\n  c:\n    endpoints: [\"http://127.0.0.1:2\"]\n    timeouts: { request: 1s, per_try: 5s }\n";
    let done = rampart(&["validate"]).config(yaml).run(START).await;
    assert_eq!(done.status.code(), Some(1), "{}", done.output);
    for (path, line) in [
        ("upstreams.a.endpoints", "line 3"),
        ("upstreams.b.fallback", "line 6"),
        ("upstreams.c.timeouts.per_try", "line 9"),
    ] {
        let found = done
            .output
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("no error for {path}: {}", done.output));
        assert!(found.contains(line), "{found}");
    }
    assert!(done.output.contains("3 error(s)"), "{}", done.output);
}

#[tokio::test]
async fn config_resolution_order() {
    let named = |name: &str| {
        format!(
            "upstreams:\n  {name}:\n    endpoints: [\"http://127.0.0.1:9\"]\n    hosts: [{name}]\n"
        )
    };
    let (cli, env, cwd) = (named("from_cli"), named("from_env"), named("from_cwd"));

    // -c beats $RAMPART_CONFIG beats ./rampart.yaml.
    let done = rampart(&["validate", "-c", "cli.yaml"])
        .file("cli.yaml", &cli)
        .file("env.yaml", &env)
        .file("rampart.yaml", &cwd)
        .env("RAMPART_CONFIG", "env.yaml")
        .run(START)
        .await;
    assert_eq!(done.status.code(), Some(0), "{}", done.output);
    assert!(done.output.contains("cli.yaml: valid"), "{}", done.output);
    assert!(done.output.contains("- from_cli"), "{}", done.output);

    let done = rampart(&["validate"])
        .file("env.yaml", &env)
        .file("rampart.yaml", &cwd)
        .env("RAMPART_CONFIG", "env.yaml")
        .run(START)
        .await;
    assert!(done.output.contains("env.yaml: valid"), "{}", done.output);
    assert!(done.output.contains("- from_env"), "{}", done.output);

    // ./rampart.yaml in the working directory beats the embedded default.
    let done = rampart(&["validate"])
        .file("rampart.yaml", &cwd)
        .run(START)
        .await;
    assert!(
        done.output.contains("rampart.yaml: valid"),
        "{}",
        done.output
    );
    assert!(done.output.contains("- from_cwd"), "{}", done.output);

    // Nothing at all: the embedded forward proxy.
    let done = rampart(&["validate"]).run(START).await;
    assert_eq!(done.status.code(), Some(0), "{}", done.output);
    assert!(
        done.output.contains("embedded default: valid"),
        "{}",
        done.output
    );
    assert!(done.output.contains("127.0.0.1:15001"), "{}", done.output);
    assert!(done.output.contains("passthrough on"), "{}", done.output);
}

#[tokio::test]
async fn variables_are_interpolated_from_the_environment() {
    let yaml = "upstreams:\n  svc:\n    endpoints: [\"${SVC_URL}\"]\n    hosts: [\"${SVC_HOST:-svc.default}\"]\n";
    let done = rampart(&["validate"])
        .config(yaml)
        .env("SVC_URL", "http://10.9.8.7:8081")
        .run(START)
        .await;
    assert_eq!(done.status.code(), Some(0), "{}", done.output);
    assert!(
        done.output.contains("http://10.9.8.7:8081"),
        "{}",
        done.output
    );
    assert!(done.output.contains("svc.default"), "{}", done.output);

    let done = rampart(&["validate"]).config(yaml).run(START).await;
    assert_eq!(done.status.code(), Some(1), "{}", done.output);
    let line = done
        .output
        .lines()
        .find(|l| l.contains("SVC_URL"))
        .unwrap_or_else(|| panic!("the unset variable is named: {}", done.output));
    assert!(line.contains("upstreams.svc.endpoints[0]"), "{line}");
    assert!(line.contains("not set"), "{line}");
}

#[tokio::test]
async fn a_port_in_use_is_one_clear_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let yaml = format!(
        "listen: {addr}\nadmin: {{ listen: 127.0.0.1:{} }}\n",
        free_port()
    );
    let done = rampart(&["run"])
        .config(&yaml)
        .env("RAMPART_LOG_FORMAT", "json")
        .run(START)
        .await;
    assert_eq!(done.status.code(), Some(1), "{}", done.output);
    let plain = plain_lines(&done.output);
    assert_eq!(plain.len(), 1, "{}", done.output);
    assert!(plain[0].contains(&addr.to_string()), "{}", plain[0]);
    assert!(plain[0].contains("listen"), "{}", plain[0]);
    drop(taken);
}

#[tokio::test]
async fn a_missing_config_file_is_one_clear_line_and_exit_1() {
    let done = rampart(&["run", "-c", "/nonexistent/rampart/config.yaml"])
        .env("RAMPART_LOG_FORMAT", "json")
        .run(START)
        .await;
    assert_eq!(done.status.code(), Some(1), "{}", done.output);
    let plain = plain_lines(&done.output);
    assert_eq!(plain.len(), 1, "{}", done.output);
    assert!(
        plain[0].contains("/nonexistent/rampart/config.yaml"),
        "{}",
        plain[0]
    );
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_and_exits_0() {
    let up = TestUpstream::http1().await;
    up.push(Reply::ok("finished").delay(Duration::from_millis(600)));
    let ports = Ports::new();
    let mut proc = rampart(&["run"])
        .config(&ports.config(&up.url(), "{ drain_delay: 0s, timeout: 5s }"))
        .spawn();
    started(&proc, &ports).await;
    let in_flight = tokio::spawn(client::send(svc_get(&ports, "/slow")));
    up.wait_for(1).await;
    proc.signal("TERM");
    let resp = client::collect(in_flight.await.unwrap().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"finished");
    let status = proc.wait_exit(START).await;
    assert_eq!(status.code(), Some(0), "{}", proc.output());
}

#[tokio::test]
async fn a_shutdown_timeout_with_requests_in_flight_exits_124() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let ports = Ports::new();
    let mut proc = rampart(&["run"])
        .config(&ports.config(&up.url(), "{ drain_delay: 0s, timeout: 300ms }"))
        .spawn();
    started(&proc, &ports).await;
    let in_flight = tokio::spawn(client::send(svc_get(&ports, "/hang")));
    up.wait_for(1).await;
    proc.signal("TERM");
    let status = proc.wait_exit(START).await;
    assert_eq!(status.code(), Some(124), "{}", proc.output());
    in_flight.abort();
}

#[tokio::test]
async fn a_second_sigterm_during_the_drain_exits_1_at_once() {
    let ports = Ports::new();
    let mut proc = rampart(&["run"])
        .config(&ports.config("http://127.0.0.1:9", "{ drain_delay: 10s, timeout: 10s }"))
        .spawn();
    started(&proc, &ports).await;
    proc.signal("TERM");
    proc.wait_for_line("/readyz is 503", START).await;
    let readyz = client::get(&format!("http://{}/readyz", ports.admin)).await;
    assert_eq!(readyz.status(), 503);
    let before = tokio::time::Instant::now();
    proc.signal("TERM");
    let status = proc.wait_exit(Duration::from_secs(2)).await;
    assert_eq!(status.code(), Some(1), "{}", proc.output());
    assert!(before.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn sigint_behaves_like_sigterm() {
    let up = TestUpstream::http1().await;
    up.push(Reply::ok("finished").delay(Duration::from_millis(400)));
    let ports = Ports::new();
    let mut proc = rampart(&["run"])
        .config(&ports.config(&up.url(), "{ drain_delay: 0s, timeout: 5s }"))
        .spawn();
    started(&proc, &ports).await;
    let in_flight = tokio::spawn(client::send(svc_get(&ports, "/slow")));
    up.wait_for(1).await;
    proc.signal("INT");
    let resp = client::collect(in_flight.await.unwrap().unwrap()).await;
    assert_eq!(resp.status(), 200);
    let status = proc.wait_exit(START).await;
    assert_eq!(status.code(), Some(0), "{}", proc.output());
    assert!(proc.output().contains("SIGINT"), "{}", proc.output());
}

#[tokio::test]
async fn json_logs_have_one_access_event_per_request() {
    let up = TestUpstream::http1().await;
    let ports = Ports::new();
    let mut proc = rampart(&["run"])
        .config(&ports.config(&up.url(), "{ drain_delay: 0s, timeout: 2s }"))
        .env("RAMPART_LOG_FORMAT", "json")
        .spawn();
    started(&proc, &ports).await;
    let req = request("POST", &format!("http://{}/logged", ports.listen))
        .header("host", "svc")
        .header("x-request-id", "cli-log-test-1")
        .body(empty())
        .unwrap();
    assert_eq!(client::send(req).await.unwrap().status(), 200);
    let line = proc.wait_for_line("cli-log-test-1", START).await;
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON access log");
    assert_eq!(event["request_id"], "cli-log-test-1");
    assert_eq!(event["method"], "POST");
    assert_eq!(event["upstream"], "svc");
    assert_eq!(event["status"], 200);
    assert_eq!(event["attempts"], 1);
    assert!(event["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(event["level"], "INFO");

    proc.signal("TERM");
    assert_eq!(proc.wait_exit(START).await.code(), Some(0));
    let output = proc.output();
    assert!(output.lines().count() >= 3, "{output}");
    assert!(plain_lines(&output).is_empty(), "{output}");
}

#[tokio::test]
async fn probe_exits_0_on_healthz_and_1_on_a_closed_port() {
    let ports = Ports::new();
    // No subcommand means `run`; with stdout not a terminal, logs default to JSON.
    let mut proc = rampart(&[])
        .config(&ports.config("http://127.0.0.1:9", "{ drain_delay: 0s, timeout: 1s }"))
        .spawn();
    started(&proc, &ports).await;
    let healthz = format!("http://{}/healthz", ports.admin);
    let done = rampart(&["probe", &healthz]).run(START).await;
    assert_eq!(done.status.code(), Some(0), "{}", done.output);

    let closed = format!("http://127.0.0.1:{}/healthz", free_port());
    let done = rampart(&["probe", &closed]).run(START).await;
    assert_eq!(done.status.code(), Some(1), "{}", done.output);
    assert!(done.output.contains("rampart probe"), "{}", done.output);

    proc.signal("TERM");
    assert_eq!(proc.wait_exit(START).await.code(), Some(0));
    let output = proc.output();
    assert!(plain_lines(&output).is_empty(), "{output}");
}

/// Peak resident memory (VmHWM) of `pid` in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_without_growing_the_proxy() {
    const MIB: u64 = 1024 * 1024;
    const UPLOAD: u64 = 64 * MIB;
    const DOWNLOAD: u64 = 32 * MIB;
    let up = TestUpstream::http1().await;
    let ports = Ports::new();
    let mut proc = rampart(&["run"])
        .config(&ports.config(&up.url(), "{ drain_delay: 0s, timeout: 2s }"))
        .spawn();
    started(&proc, &ports).await;
    let post = |len: u64| {
        request("POST", &format!("http://{}/up", ports.listen))
            .header("host", "svc")
            .body(generated(len))
            .unwrap()
    };

    // Warm up every buffer and pool on small bodies first.
    up.set_default(Reply::stream(MIB));
    let resp = client::send(post(MIB)).await.unwrap();
    assert_eq!(client::body_len(resp).await.unwrap(), MIB);
    let baseline = peak_rss(proc.pid());

    up.set_default(Reply::status(204));
    let resp = client::send(post(UPLOAD)).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(up.last().body_len, UPLOAD, "upload arrived complete");

    up.set_default(Reply::stream(DOWNLOAD));
    let resp = client::send(svc_get(&ports, "/down")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        client::body_len(resp).await.unwrap(),
        DOWNLOAD,
        "download complete"
    );

    let growth = peak_rss(proc.pid()).saturating_sub(baseline);
    eprintln!(
        "proxy peak RSS: baseline {} KiB, growth {} KiB",
        baseline / 1024,
        growth / 1024
    );
    assert!(
        growth < 16 * MIB,
        "peak RSS grew by {} KiB (baseline {} KiB) for a 64 MiB upload and a 32 MiB download",
        growth / 1024,
        baseline / 1024
    );
    proc.signal("TERM");
    assert_eq!(proc.wait_exit(START).await.code(), Some(0));
}

#[tokio::test]
async fn sighup_reloads_and_an_invalid_file_keeps_the_old_config() {
    let up = TestUpstream::http1().await;
    let other = TestUpstream::http1().await;
    let ports = Ports::new();
    let shutdown = "{ drain_delay: 0s, timeout: 5s }";
    let proc = rampart(&["run"])
        .env("RAMPART_LOG_FORMAT", "json")
        .config(&ports.config(&up.url(), shutdown))
        .spawn();
    started(&proc, &ports).await;
    let extra = |host: &str| {
        request("GET", &format!("http://{}/x", ports.listen))
            .header("host", host)
            .body(empty())
            .unwrap()
    };
    assert_eq!(
        client::collect(client::send(extra("extra")).await.unwrap())
            .await
            .status(),
        404
    );

    // A valid file adding an upstream: routed after SIGHUP.
    let added = format!(
        "{}  extra:\n    endpoints: [\"{}\"]\n    hosts: [extra]\n",
        ports.config(&up.url(), shutdown),
        other.url()
    );
    proc.write_config(&added);
    proc.signal("HUP");
    proc.wait_for_line("config reloaded", START).await;
    assert_eq!(
        client::collect(client::send(extra("extra")).await.unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(other.count(), 1);

    // An invalid file: refused, logged, and the process keeps serving the last good config.
    proc.write_config("upstreams:\n  extra:\n    endpoints: []\n");
    proc.signal("HUP");
    proc.wait_for_line("config reload refused", START).await;
    assert_eq!(
        client::collect(client::send(extra("extra")).await.unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(
        client::collect(client::send(svc_get(&ports, "/still")).await.unwrap())
            .await
            .status(),
        200
    );
}
