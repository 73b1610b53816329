//! HTTP/1.1 connection reuse after answers that did not need the request body (found by the
//! chaos suite): the unread body is read to its end so the connection carries the next
//! request, or, when it is too large or of unknown length, the answer says
//! `Connection: close` so the app never sends a request into a closing connection.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::client::{read_response, read_until_close};
use crate::support::raw_upstream::header_lines;
use crate::support::{TestProxy, TestUpstream};

/// `svc` (matched by host) with its breaker forced open, so every request to it is answered
/// locally without its body being read.
async fn proxy_refusing_svc() -> (TestProxy, TestUpstream) {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let (status, view) = crate::breaker::admin(
        &proxy,
        "POST",
        "/admin/upstreams/svc/breaker",
        Some(r#"{"action": "force-open"}"#),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    (proxy, up)
}

#[tokio::test]
async fn a_local_answer_before_the_body_arrived_keeps_the_connection() {
    let (proxy, up) = proxy_refusing_svc().await;
    // The breaker's 503, and a 404 for a host nothing routes: both answer at the head.
    for host in ["svc", "nowhere"] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!("POST /x HTTP/1.1\r\nhost: {host}\r\ncontent-length: 1000\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let first = read_response(&mut stream).await;
        assert!(first.starts_with("HTTP/1.1 50") || first.starts_with("HTTP/1.1 404"));
        assert!(header_lines(&first, "connection").is_empty(), "{first}");

        // The body comes after the answer, then the next request on the same connection.
        stream.write_all(&[b'x'; 1000]).await.unwrap();
        let next = format!("GET /y HTTP/1.1\r\nhost: {host}\r\n\r\n");
        stream.write_all(next.as_bytes()).await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("{host}: no answer to the second request"));
        assert_eq!(
            second.lines().next(),
            first.lines().next(),
            "{host}: {second}"
        );
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_local_answer_to_a_large_or_unsized_body_says_connection_close() {
    let (proxy, _up) = proxy_refusing_svc().await;
    for framing in ["content-length: 4194304", "transfer-encoding: chunked"] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!("POST /x HTTP/1.1\r\nhost: svc\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert_eq!(
            header_lines(&answer, "connection"),
            ["close"],
            "{framing}: {answer}"
        );
        // And the connection does close.
        let rest = read_until_close(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(rest, "", "{framing}");
    }
}
