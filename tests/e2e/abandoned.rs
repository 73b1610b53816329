//! A request whose app goes away while rampart waits on the upstream still gets counted and
//! logged, through the real binary: `rampart_requests_total{code="499"}` (nginx's convention)
//! and one access-log line with `error="client_closed"`. Before, hyper dropped the handler
//! and the request vanished from both, often the slow request an operator was looking for.

use std::time::Duration;

use crate::support::binary::{Process, free_port, rampart, wait_for_port};
use crate::support::client::{self, request};
use crate::support::{Body, Metrics, Reply, TestUpstream, empty};

const START: Duration = Duration::from_secs(5);

struct Running {
    process: Process,
    listen: u16,
    admin: u16,
}

async fn start(upstream: &TestUpstream) -> Running {
    let (listen, admin) = (free_port(), free_port());
    let yaml = format!(
        "listen: 127.0.0.1:{listen}\nadmin: {{ listen: 127.0.0.1:{admin} }}\nshutdown: {{ drain_delay: 0s, timeout: 2s }}\nupstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        upstream.url()
    );
    let process = rampart(&["run"])
        .env("RAMPART_LOG", "info")
        .env("RAMPART_LOG_FORMAT", "json")
        .config(&yaml)
        .spawn();
    process.wait_for_line("rampart is serving", START).await;
    assert!(wait_for_port(([127, 0, 0, 1], listen).into(), START).await);
    Running {
        process,
        listen,
        admin,
    }
}

async fn scrape(r: &Running) -> Metrics {
    Metrics::scrape(&format!("http://127.0.0.1:{}/metrics", r.admin)).await
}

fn hanging_request(r: &Running) -> http::Request<Body> {
    request("GET", &format!("http://127.0.0.1:{}/slow", r.listen))
        .header("x-rampart-upstream", "svc")
        .header("x-request-id", "gone-1")
        .body(empty())
        .unwrap()
}

/// The app sends, the endpoint holds the request, the app gives up; returns the access line.
async fn abandon(r: &Running, up: &TestUpstream, h2: bool) -> String {
    let req = hanging_request(r);
    let sent = if h2 {
        tokio::spawn(client::send_h2c(req))
    } else {
        tokio::spawn(client::send(req))
    };
    tokio::time::timeout(START, up.wait_for(1))
        .await
        .expect("the request reached the endpoint");
    sent.abort();
    r.process
        .wait_for_line("client_closed", Duration::from_secs(5))
        .await
}

async fn check(h2: bool) {
    let up = TestUpstream::auto().await;
    up.set_default(Reply::hang());
    let r = start(&up).await;
    let line = abandon(&r, &up, h2).await;
    let event: serde_json::Value = serde_json::from_str(line.trim()).expect(&line);
    let fields = &event;
    assert_eq!(fields["status"], 499, "{line}");
    assert_eq!(fields["upstream"], "svc", "{line}");
    assert_eq!(fields["request_id"], "gone-1", "{line}");
    assert_eq!(fields["error"], "client_closed", "{line}");

    let m = scrape(&r).await;
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "svc"), ("code", "499")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("rampart_requests_in_flight", &[("upstream", "svc")]),
        Some(0.0)
    );

    // The proxy keeps serving: the next request is answered and counted as usual.
    up.set_default(Reply::ok("fine"));
    let req = request("GET", &format!("http://127.0.0.1:{}/ok", r.listen))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let m = scrape(&r).await;
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "svc"), ("code", "200")]
        ),
        Some(1.0)
    );
    let output = r.process.output();
    assert_eq!(output.matches("client_closed").count(), 1, "{output}");
}

#[tokio::test]
async fn an_http1_app_that_closes_its_connection_is_logged_and_counted_as_499() {
    check(false).await;
}

#[tokio::test]
async fn an_h2_app_that_resets_its_stream_is_logged_and_counted_as_499() {
    check(true).await;
}
