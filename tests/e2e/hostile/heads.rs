//! Malformed and oversized request heads, header injection, credentials in the target, and
//! values echoed into generated answers.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{BOUND, exchange, proxy_for};
use crate::support::RawUpstream;

#[tokio::test]
async fn obs_fold_nul_and_bare_cr_in_header_lines_are_refused() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    for header in [
        "X-Folded: one\r\n two\r\n",
        "X-Folded: one\r\n\ttwo\r\n",
        "X-Nul: a\0b\r\n",
        "X-Cr: a\rX-Injected: b\r\n",
        "X-Space : v\r\n",
        " X-Leading: v\r\n",
        "X-Ctl: a\x01b\r\n",
        "X Bad Name: v\r\n",
    ] {
        let head = format!("GET /h HTTP/1.1\r\nHost: svc\r\n{header}\r\n");
        exchange(proxy.addr, head.as_bytes())
            .await
            .assert_refused(400);
    }
    assert_eq!(up.count(), 0, "{:#?}", up.requests());
}

#[tokio::test]
async fn a_bare_lf_ends_a_header_line_the_same_way_on_both_sides() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    let head = "GET /lf HTTP/1.1\r\nHost: svc\r\nX-One: a\nX-Two: b\r\n\r\n";
    let answer = exchange(proxy.addr, head.as_bytes()).await;
    // hyper reads two header lines; the upstream gets two CRLF-terminated lines, so it reads
    // exactly what rampart read (no line of it is hidden inside another).
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    let got = up.only_request();
    assert_eq!(got.headers("x-one"), ["a"]);
    assert_eq!(got.headers("x-two"), ["b"]);
}

#[tokio::test]
async fn more_than_one_host_or_a_host_with_credentials_is_400() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    for host in [
        "Host: svc\r\nHost: evil.example\r\n",
        "Host: svc\r\nHost: svc\r\n",
        "Host: user:secret@svc\r\n",
        "Host: svc, evil.example\r\n",
    ] {
        let head = format!("GET /h HTTP/1.1\r\n{host}\r\n");
        let answer = exchange(proxy.addr, head.as_bytes()).await;
        answer.assert_local(400, "bad_request");
        assert!(!answer.body.contains("secret"), "{answer:?}");
    }
    assert_eq!(up.count(), 0, "{:#?}", up.requests());
}

#[tokio::test]
async fn an_absolute_form_target_with_credentials_is_400_and_never_forwarded() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "passthrough: { enabled: true }\n").await;
    for target in [
        "http://user:hunter2@svc/x",
        "http://hunter2@svc/x",
        "http://user:hunter2@evil.example:8080/x",
        "http://@svc/x",
    ] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: svc\r\n\r\n");
        let answer = exchange(proxy.addr, head.as_bytes()).await;
        answer.assert_local(400, "bad_request");
        assert!(!answer.head.contains("hunter2") && !answer.body.contains("hunter2"));
    }
    assert_eq!(up.count(), 0, "{:#?}", up.requests());
    // Without credentials the same target is routed and forwarded.
    let answer = exchange(
        proxy.addr,
        b"GET http://svc/x HTTP/1.1\r\nHost: svc\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    assert_eq!(up.only_request().request_line(), "GET /x HTTP/1.1");
}

#[tokio::test]
async fn an_oversized_request_line_is_refused() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "limits: { max_request_header_bytes: 4KiB }\n").await;
    // Over the limit but within hyper's buffer: rampart's JSON 431.
    let head = format!(
        "GET /{} HTTP/1.1\r\nHost: svc\r\n\r\n",
        "a".repeat(6 * 1024)
    );
    exchange(proxy.addr, head.as_bytes())
        .await
        .assert_local(431, "request_headers_too_large");
    // Far over: hyper refuses on its own (431 or 414), or closes.
    let head = format!(
        "GET /{} HTTP/1.1\r\nHost: svc\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let answer = exchange(proxy.addr, head.as_bytes()).await;
    assert!(
        answer.head.is_empty() || matches!(answer.status(), Some(414 | 431)),
        "{answer:?}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_million_tiny_headers_are_cut_off_quickly() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = stream.split();
    let writer = async {
        let _ = write
            .write_all(b"GET /many HTTP/1.1\r\nHost: svc\r\n")
            .await;
        let batch = "a:b\r\n".repeat(10_000);
        // 1,000,000 header lines, 5 MB: the proxy must refuse long before the end.
        for _ in 0..100 {
            if write.write_all(batch.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = write.write_all(b"\r\n").await;
    };
    let reader = read_answer_from(&mut read);
    let (_, answer) = tokio::time::timeout(BOUND, async { tokio::join!(writer, reader) })
        .await
        .expect("refused within the bound");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:?}"
    );
    assert!(started.elapsed() < BOUND);
    assert_eq!(up.count(), 0);
}

/// Everything the proxy sends until it closes.
async fn read_answer_from(read: &mut tokio::net::tcp::ReadHalf<'_>) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn echoed_request_ids_cannot_inject_headers_or_break_the_json() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    let id = r#"x"},"error":"forged\\u0000","a":{"#;
    let head = format!("GET /x HTTP/1.1\r\nHost: nowhere\r\nX-Request-Id: {id}\r\n\r\n");
    let answer = exchange(proxy.addr, head.as_bytes()).await;
    answer.assert_local(404, "no_route");
    assert_eq!(answer.headers("x-request-id"), [id]);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["error", "message"], "{body}");

    // The same id on a forwarded request reaches the upstream as one header line.
    let head = format!("GET /x HTTP/1.1\r\nHost: svc\r\nX-Request-Id: {id}\r\n\r\n");
    let answer = exchange(proxy.addr, head.as_bytes()).await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    assert_eq!(answer.headers("x-request-id"), [id]);
    assert_eq!(up.only_request().headers("x-request-id"), [id]);
    // A generated 502 names the upstream from config, never from the request.
    drop(up);
    let head = "GET /x HTTP/1.1\r\nHost: svc\r\nX-Rampart-Upstream: svc\r\n\r\n";
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(proxy.addr, head.as_bytes()),
    )
    .await
    .unwrap();
    answer.assert_local(502, "upstream_unavailable");
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["upstream"], "svc");
}

#[tokio::test]
async fn an_asterisk_form_target_is_forwarded_as_is() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    let answer = exchange(proxy.addr, b"OPTIONS * HTTP/1.1\r\nHost: svc\r\n\r\n").await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    assert_eq!(up.only_request().request_line(), "OPTIONS * HTTP/1.1");
}
