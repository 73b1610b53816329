//! Client-side limits through the running server: request head size and header count,
//! unparseable heads, slowloris, max_connections, request deadline, refused connects and
//! the bulkhead.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::support::binary::free_port;
use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

fn config(endpoint: &str, top: &str, extra: &str) -> String {
    format!(
        "{top}upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n{extra}"
    )
}

async fn get_svc(proxy: &TestProxy) -> http::Response<bytes::Bytes> {
    let req = request("GET", &proxy.url("/l"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap()).await
}

/// Reads until the peer closes; `None` when it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Sends a request head that never ends; asserts that the 300 ms header-read timeout cuts the
/// connection off within 2 s and not before 250 ms after `since`. Returns what came back.
async fn stall_head(stream: &mut TcpStream, since: Instant) -> String {
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: svc\r\nX-Partial: ")
        .await
        .unwrap();
    let answer = closed_within(stream, Duration::from_secs(2))
        .await
        .expect("cut off within 2s");
    let elapsed = since.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "cut after {elapsed:?}"
    );
    answer
}

#[tokio::test]
async fn an_oversized_request_head_is_431() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { max_request_header_bytes: 4KiB }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;

    // Between the limit and twice it: rampart's own JSON answer.
    let req = request("GET", &proxy.url("/big"))
        .header("host", "svc")
        .header("x-big", "a".repeat(5 * 1024))
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(resp.status(), 431);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("request_headers_too_large")
    );
    assert_eq!(client::json(&resp)["error"], "request_headers_too_large");

    // Far beyond: hyper's plain 431 (or a closed connection would also be a refusal, but
    // hyper answers 431 here).
    let head = format!(
        "GET /big HTTP/1.1\r\nHost: svc\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let _ = stream.write_all(head.as_bytes()).await;
    let answer = closed_within(&mut stream, Duration::from_secs(2))
        .await
        .expect("connection closed");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // Just under the limit is forwarded.
    let req = request("GET", &proxy.url("/ok"))
        .header("host", "svc")
        .header("x-big", "c".repeat(3 * 1024))
        .body(empty())
        .unwrap();
    assert_eq!(client::send(req).await.unwrap().status(), 200);
    assert_eq!(up.count(), 1);
}

/// The limit counts the head as the app sent it: the request line and every header line
/// with their CRLFs (the blank line that ends the head is not counted). At the limit the
/// request goes on; one byte over, rampart answers 431.
#[tokio::test]
async fn the_header_limit_counts_the_head_as_sent() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { max_request_header_bytes: 4KiB }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;
    let head = |pad: usize| {
        format!(
            "GET /edge HTTP/1.1\r\nHost: svc\r\nConnection: close\r\nX-Pad: {}\r\n",
            "p".repeat(pad)
        )
    };
    let fill = 4096 - head(0).len();

    let at_limit = head(fill) + "\r\n";
    let answer = client::raw(proxy.addr, at_limit.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    let over = head(fill + 1) + "\r\n";
    let answer = client::raw(proxy.addr, over.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(answer.contains("request_headers_too_large"), "{answer:?}");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn too_many_headers_is_431() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { max_request_headers: 10 }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;
    let mut head = String::from("GET /many HTTP/1.1\r\nHost: svc\r\n");
    for i in 0..20 {
        head.push_str(&format!("X-H{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let answer = client::raw(proxy.addr, head.as_bytes(), Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert_eq!(up.count(), 0);

    // Within the limit is fine.
    let mut req = request("GET", &proxy.url("/few")).header("host", "svc");
    for i in 0..5 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let resp = client::send(req.body(empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_garbage_request_line_gets_400_or_a_closed_connection() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "", "")).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"\x16\x03\x01 this is not http\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut stream, Duration::from_secs(2))
        .await
        .expect("the connection is closed");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_after_header_read_timeout() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { header_read_timeout: 300ms }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let answer = stall_head(&mut stream, Instant::now()).await;
    assert!(!answer.contains(" 200 "), "{answer:?}");
    assert_eq!(up.count(), 0);
    // A normal client on another connection is served meanwhile and afterwards.
    assert_eq!(get_svc(&proxy).await.status(), 200);
}

/// The first head's time counts from the connection's accept, not from the end of rampart's
/// wait for its first bytes: a silent client, or one whose first byte comes late, is cut off
/// one `header_read_timeout` after it was accepted (it used to get nearly twice that).
#[tokio::test]
async fn the_first_head_read_timeout_counts_from_the_accept() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { header_read_timeout: 1s }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;

    let silent = async {
        let connected = Instant::now();
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        closed_within(&mut stream, Duration::from_secs(3))
            .await
            .expect("the silent client is cut off");
        connected.elapsed()
    };
    let late = async {
        let connected = Instant::now();
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        // The client's own pause before its first byte: part of the scenario.
        tokio::time::sleep(Duration::from_millis(900)).await;
        stream.write_all(b"G").await.unwrap();
        closed_within(&mut stream, Duration::from_secs(3))
            .await
            .expect("the late client is cut off");
        connected.elapsed()
    };
    let (silent, late) = tokio::join!(silent, late);
    for (who, elapsed) in [("silent", silent), ("late", late)] {
        // One timeout (1 s) from the accept, which comes after `connected`; the old
        // behaviour took 2 s for the silent one and 1.9 s for the late one.
        assert!(
            elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_millis(1700),
            "{who} client cut off after {elapsed:?}"
        );
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn each_request_head_on_a_kept_connection_has_its_own_header_read_timeout() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { header_read_timeout: 300ms }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // Three requests, each head sent 200 ms after the last answer: every one within its own
    // 300 ms, though the connection outlives the first deadline by far.
    let mut last_answer = Instant::now();
    for _ in 0..3 {
        stream
            .write_all(b"GET /k HTTP/1.1\r\nHost: svc\r\n\r\n")
            .await
            .unwrap();
        let head = client::read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        last_answer = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then a head that never ends: cut off 300 ms after the last answer, not sooner.
    stall_head(&mut stream, last_answer).await;
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn max_connections_makes_a_third_client_wait_for_a_free_slot() {
    let up = TestUpstream::http1().await;
    let limits = "limits: { max_connections: 2 }\n";
    let proxy = TestProxy::start(&config(&up.url(), limits, "")).await;
    let head = b"GET /c HTTP/1.1\r\nHost: svc\r\n\r\n";

    // Two keep-alive connections, each served once and left open.
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    let mut second = TcpStream::connect(proxy.addr).await.unwrap();
    for stream in [&mut first, &mut second] {
        stream.write_all(head).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(up.count(), 2);

    // The third connects (kernel backlog) but is not served while both slots are taken.
    let (answered_tx, mut answered) = oneshot::channel();
    let addr = proxy.addr;
    let third = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /c HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let _ = answered_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
    });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut answered).await;
    assert!(early.is_err(), "served while both slots were taken");
    assert_eq!(up.count(), 2);

    // Closing one of the first two frees a slot: the third is served now.
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(2), answered)
        .await
        .expect("served after a slot freed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(up.count(), 3);
    third.await.unwrap();
    drop(second);
}

#[tokio::test]
async fn the_request_deadline_gives_504_upstream_timeout() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let timeouts = "    timeouts: { request: 300ms, per_try: 300ms }\n";
    let proxy = TestProxy::start(&config(&up.url(), "", timeouts)).await;
    let started = Instant::now();
    let resp = get_svc(&proxy).await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_timeout")
    );
    assert_eq!(client::json(&resp)["error"], "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_refused_connect_gives_502_upstream_unavailable() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let proxy = TestProxy::start(&config(&closed, "", "")).await;
    let resp = get_svc(&proxy).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_unavailable")
    );
    let body = client::json(&resp);
    assert_eq!(body["error"], "upstream_unavailable");
    assert_eq!(body["upstream"], "svc");
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "svc"), ("outcome", "connect_error")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_bulkhead_answers_503_overloaded_beyond_max_requests() {
    let up = TestUpstream::http1().await;
    up.push(Reply::hang());
    let bulkhead = "    concurrency: { max_requests: 1 }\n";
    let proxy = TestProxy::start(&config(&up.url(), "", bulkhead)).await;
    let url = proxy.url("/held");
    let held = tokio::spawn(async move {
        let req = request("GET", &url)
            .header("host", "svc")
            .body(empty())
            .unwrap();
        client::send(req).await
    });
    up.wait_for(1).await;

    let resp = get_svc(&proxy).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(client::header(&resp, "x-rampart-error"), Some("overloaded"));
    assert_eq!(client::json(&resp)["error"], "overloaded");
    assert_eq!(
        up.count(),
        1,
        "the second request never reached the upstream"
    );
    let m = proxy.metrics();
    assert_eq!(
        m.value("rampart_concurrency_rejected_total", &[("upstream", "svc")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("rampart_requests_in_flight", &[("upstream", "svc")]),
        Some(1.0)
    );

    // Once the held request goes away, the slot is free again.
    held.abort();
    let _ = held.await;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let resp = get_svc(&proxy).await;
        if resp.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
