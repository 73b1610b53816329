//! System calls per proxied request, through the real binary: the ones the work needs (a
//! `send` to the endpoint, a `send` to the app, the reads) and no more. Counted from `syscw`
//! in `/proc/PID/io`, which counts `write`-family calls (`write`, `writev`) but not socket
//! `send`s, so a proxied request itself counts none. Guards the heartbeat
//! (src/heartbeat.rs): without it, each request at low load also wrote to tokio's `eventfd`
//! because its per-try timer was the earliest one registered (one write per request). The
//! number of `send`s is not counted here (docs/performance.md has `perf stat` figures).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::TestUpstream;
use crate::support::binary::{free_port, rampart, wait_for_port};
use crate::support::client::read_response;

const START: Duration = Duration::from_secs(5);
const REQUESTS: u64 = 300;

/// Write-type system calls made by process `pid` so far.
fn writes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a syscw line")
}

/// Sends one GET on `stream` and reads its whole answer.
async fn exchange(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /x HTTP/1.1\r\nhost: svc\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Write calls the binary makes for `REQUESTS` sequential keep-alive requests, with
/// `runtime` (a YAML line, or nothing for the default multi-thread runtime).
async fn writes_for_requests(runtime: &str) -> u64 {
    let up = TestUpstream::http1().await;
    let (listen, admin) = (free_port(), free_port());
    // Timeouts of whole seconds, like most deployments; RAMPART_LOG=warn so no access log
    // line is written per request.
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\nadmin: {{ listen: 127.0.0.1:{admin} }}\n{runtime}upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    timeouts: {{ request: 15s, per_try: 5s }}\n",
        up.url()
    );
    let process = rampart(&["run"])
        .env("RAMPART_LOG", "warn")
        .config(&yaml)
        .spawn();
    assert!(wait_for_port(([127, 0, 0, 1], listen).into(), START).await);
    let mut stream = TcpStream::connect(("127.0.0.1", listen)).await.unwrap();
    // The first request opens the endpoint connection; count from the second.
    exchange(&mut stream).await;
    let before = writes(process.pid());
    for _ in 0..REQUESTS {
        exchange(&mut stream).await;
    }
    writes(process.pid()) - before
}

/// `syscw` counts `write` calls on this kernel, so a count of none below can fail.
fn syscw_counts_writes() {
    use std::io::Write;
    let mut file = tempfile::tempfile().unwrap();
    let before = writes(std::process::id());
    for _ in 0..50 {
        file.write_all(b"x").unwrap();
    }
    let made = writes(std::process::id()) - before;
    assert!(made >= 50, "syscw counted {made} of 50 writes");
}

#[tokio::test]
async fn a_request_at_low_load_costs_no_write_call() {
    syscw_counts_writes();
    for runtime in ["runtime: { worker_threads: 1 }\n", ""] {
        let made = writes_for_requests(runtime).await;
        // Only the heartbeat's own wake-ups, never one per request.
        assert!(
            made <= 10,
            "{runtime:?}: {made} write calls for {REQUESTS} requests"
        );
    }
}
