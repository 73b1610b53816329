//! Body framing attacks (request smuggling): Content-Length with Transfer-Encoding, repeated
//! or malformed lengths, transfer codings other than chunked, invalid chunk sizes.

use super::{assert_closes, exchange, exchange_on, proxy_for};
use crate::support::RawUpstream;

/// A chunked body whose tail is a second request, for a parser that believes the length.
const SMUGGLE: &str = "5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n";

#[tokio::test]
async fn content_length_with_transfer_encoding_is_read_as_chunked_and_the_connection_closed() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    for framing in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let head = format!("POST /x HTTP/1.1\r\nHost: svc\r\n{framing}\r\n{SMUGGLE}");
        let (answer, mut stream) = exchange_on(proxy.addr, head.as_bytes()).await;
        // Transfer-Encoding wins (RFC 9112 §6.3) and the connection is not reused, so the
        // tail never becomes a request of its own.
        assert_eq!(answer.status(), Some(200), "{framing:?}: {answer:?}");
        assert_closes(&mut stream).await;
    }
    let requests = up.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for request in requests {
        assert_eq!(request.request_line(), "POST /x HTTP/1.1");
        assert_eq!(request.body, b"hello");
        let te = request.headers("transfer-encoding");
        let cl = request.headers("content-length");
        assert!(te.is_empty() ^ cl.is_empty(), "{}", request.head);
    }
    assert!(
        !String::from_utf8_lossy(&up.bytes()).contains("/smuggled"),
        "the smuggled request reached the upstream"
    );
}

#[tokio::test]
async fn repeated_content_length_is_forwarded_once_or_refused_when_values_differ() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 3, "").await;
    let same =
        "POST /same HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    let answer = exchange(proxy.addr, same.as_bytes()).await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    let forwarded = up.only_request();
    assert_eq!(forwarded.headers("content-length"), ["5"]);
    assert_eq!(forwarded.body, b"hello");

    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    ] {
        let head = format!("POST /bad HTTP/1.1\r\nHost: svc\r\n{lengths}\r\nhello!");
        exchange(proxy.addr, head.as_bytes())
            .await
            .assert_refused(400);
    }
    assert_eq!(up.count(), 1, "no request with a bad length was forwarded");
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_are_refused() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 3, "").await;
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for coding in [
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: chunked;q=1\r\n",
    ] {
        let head = format!("POST /te HTTP/1.1\r\nHost: svc\r\n{coding}\r\n{body}");
        exchange(proxy.addr, head.as_bytes())
            .await
            .assert_refused(400);
    }
    // HTTP/1.0 has no chunked coding at all.
    let old = format!("POST /te HTTP/1.0\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    exchange(proxy.addr, old.as_bytes())
        .await
        .assert_refused(400);
    assert_eq!(up.count(), 0, "{:#?}", up.requests());
}

#[tokio::test]
async fn invalid_chunk_sizes_never_reach_the_upstream_as_a_complete_request() {
    let up = RawUpstream::start().await;
    // One try streams the body; three tries buffer it first: both paths are covered.
    for attempts in [1, 3] {
        let proxy = proxy_for(&up, attempts, "").await;
        for chunk in [
            "zz\r\nhello\r\n0\r\n\r\n",
            "-5\r\nhello\r\n0\r\n\r\n",
            "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            "5 5\r\nhello\r\n0\r\n\r\n",
            "5\r\nhelloXX0\r\n\r\n",
            "\r\nhello\r\n0\r\n\r\n",
        ] {
            let head = format!(
                "POST /chunk HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"
            );
            exchange(proxy.addr, head.as_bytes())
                .await
                .assert_refused(400);
        }
        // The app's broken body is not the upstream's failure.
        let m = proxy.metrics();
        for outcome in ["reset", "connect_error", "timeout"] {
            let failures = m.value(
                "rampart_upstream_attempts_total",
                &[("upstream", "svc"), ("outcome", outcome)],
            );
            assert!(
                failures.unwrap_or(0.0) == 0.0,
                "{attempts} tries: {outcome} {failures:?}"
            );
        }
    }
    assert_eq!(up.count(), 0, "{:#?}", up.requests());
}
