//! rampart's own HTTP/1.1 upstream client (src/upstream/h1) through the running server,
//! against an upstream that writes its answers byte for byte: interim heads, chunked bodies
//! split across writes with extensions and trailers, close-delimited bodies, HTTP/1.0,
//! malformed and truncated answers, large bodies both ways, and hyper taking over a pooled
//! connection for a streamed body.

use bytes::Bytes;

use crate::support::client::{self, request};
use crate::support::raw_upstream::{RawUpstream, Script};
use crate::support::{TestProxy, empty, full};

fn config(endpoint: &str) -> String {
    format!(
        "upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 2, backoff: {{ strategy: fixed, base: 1ms }} }}\n"
    )
}

async fn call(proxy: &TestProxy, method: &str, body: Bytes) -> http::Response<Bytes> {
    let body = if body.is_empty() { empty() } else { full(body) };
    let req = request(method, &proxy.url("/p"))
        .header("host", "svc")
        .body(body)
        .unwrap();
    client::collect(client::send(req).await.unwrap()).await
}

async fn get(proxy: &TestProxy) -> http::Response<Bytes> {
    call(proxy, "GET", Bytes::new()).await
}

#[tokio::test]
async fn chunked_bodies_split_across_writes_arrive_whole_and_the_connection_is_reused() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    up.push(
        Script::new("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=\"a\"\r\nhel")
            .then("lo\r\n7\r\n, world\r\n")
            .then("1\r\n!\r\n0\r\nx-trailer: t\r\n")
            .then("\r\n"),
    );
    let resp = get(&proxy).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"hello, world!");
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    assert_eq!(up.connections(), 1, "the chunked exchange left it reusable");
}

#[tokio::test]
async fn interim_heads_are_skipped() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    up.push(
        Script::new("HTTP/1.1 100 Continue\r\n\r\n").then(
            "HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone",
        ),
    );
    let resp = call(&proxy, "PUT", Bytes::from_static(b"x")).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.body().as_ref(), b"done");
    assert_eq!(get(&proxy).await.status(), 200);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn a_close_delimited_body_is_read_to_the_close_and_its_connection_not_reused() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    up.push(
        Script::new("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ")
            .then("part two")
            .close(),
    );
    let resp = get(&proxy).await;
    assert_eq!(resp.body().as_ref(), b"part one, part two");
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn http_1_0_answers_keep_the_connection_only_with_keep_alive() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    // The upstream leaves this connection open; rampart must not reuse it anyway.
    up.push(Script::new(
        "HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\none",
    ));
    assert_eq!(get(&proxy).await.body().as_ref(), b"one");
    up.push(Script::new(
        "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 3\r\n\r\ntwo",
    ));
    assert_eq!(get(&proxy).await.body().as_ref(), b"two");
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    assert_eq!(
        up.connections(),
        2,
        "only the keep-alive answer's connection was reused"
    );
}

#[tokio::test]
async fn a_malformed_answer_is_a_502_and_the_next_request_is_served() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    // Both tries get a conflicting length; then a head that is not HTTP.
    for _ in 0..2 {
        up.push(Script::new(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
        ));
    }
    let resp = get(&proxy).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("2"));
    for _ in 0..2 {
        up.push(Script::new("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
    }
    assert_eq!(get(&proxy).await.status(), 502);
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    let resets = proxy.metrics().value(
        "rampart_upstream_attempts_total",
        &[("upstream", "svc"), ("outcome", "reset")],
    );
    assert_eq!(resets, Some(4.0));
}

#[tokio::test]
async fn a_body_cut_short_fails_that_answer_only() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    // The head in a write of its own, so it reaches the app before the body breaks.
    up.push(
        Script::new("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
            .then("only ten..")
            .close(),
    );
    let req = request("GET", &proxy.url("/p"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::send(req).await.unwrap();
    assert_eq!(resp.status(), 200, "the head was already on its way");
    assert!(
        client::body_len(resp).await.is_err(),
        "the app sees the body end early"
    );
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn large_bodies_pass_intact_both_ways() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    // 12 KiB goes out in one send by rampart's client; 60 KiB (still buffered for replay)
    // by hyper's. Either way the answer is 1 MiB in two writes.
    let answer: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    for size in [12 * 1024, 60 * 1024] {
        let sent: Bytes = (0..size).map(|i| (i % 251) as u8).collect();
        let mut script = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        script.extend_from_slice(&answer[..100_000]);
        up.push(Script::new(script).then(&answer[100_000..]));
        let resp = call(&proxy, "PUT", sent.clone()).await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.body().as_ref() == answer.as_slice(),
            "the answer changed"
        );
        let received = up.requests().pop().unwrap();
        assert!(received.body == sent, "the request body changed");
        assert_eq!(
            crate::support::raw_upstream::header_lines(&received.head, "content-length"),
            [size.to_string()]
        );
    }
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    assert_eq!(up.connections(), 1);
}

/// Body pieces above 512 bytes (for an HTTP/1 app) or 4 KiB (for an HTTP/2 app, whose
/// streams may hold them) are split off the connection's read buffer, which then turns
/// shared and is taken back for the next answer; smaller ones are copied. Every body still
/// arrives byte for byte, to both kinds of app, over one upstream connection.
#[tokio::test]
async fn mid_size_bodies_split_off_the_read_buffer_arrive_intact() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    let mut n = 0u8;
    for h2 in [false, true] {
        for size in [512, 513, 600, 4096, 3000, 4097, 7000, 4096] {
            n = n.wrapping_add(1);
            let body: Vec<u8> = (0..size).map(|i| (i % 241) as u8 ^ n).collect();
            let mut head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n").into_bytes();
            // Half the answers in one write with their head, half with the body in two.
            let script = if size % 2 == 0 {
                head.extend_from_slice(&body);
                Script::new(head)
            } else {
                head.extend_from_slice(&body[..size / 3]);
                Script::new(head).then(&body[size / 3..])
            };
            up.push(script);
            // HTTP/2 takes its authority from the URL: the upstream is named instead.
            let req = request("GET", &proxy.url("/p"))
                .header("x-rampart-upstream", "svc")
                .body(empty())
                .unwrap();
            let resp = if h2 {
                client::send_h2c(req).await
            } else {
                client::send(req).await
            };
            let resp = client::collect(resp.unwrap()).await;
            assert_eq!(resp.status(), 200, "{size} bytes, h2 {h2}");
            assert!(
                resp.body().as_ref() == body.as_slice(),
                "{size} bytes, h2 {h2}: the body changed"
            );
        }
    }
    assert_eq!(
        up.connections(),
        1,
        "every answer left the connection reusable"
    );
}

#[tokio::test]
async fn a_non_standard_reason_phrase_reaches_the_app() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    up.push(Script::new(
        "HTTP/1.1 520 Origin Error\r\ncontent-length: 0\r\n\r\n",
    ));
    let mut app = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut app, b"GET /p HTTP/1.1\r\nhost: svc\r\n\r\n")
        .await
        .unwrap();
    let head = client::read_response(&mut app).await;
    assert!(head.starts_with("HTTP/1.1 520 Origin Error\r\n"), "{head}");
}

#[tokio::test]
async fn chunked_with_a_content_length_is_read_by_the_chunks_and_not_reused() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    up.push(Script::new(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n4\r\nfour\r\n0\r\n\r\n",
    ));
    let resp = get(&proxy).await;
    assert_eq!(resp.body().as_ref(), b"four");
    assert_eq!(client::header(&resp, "content-length"), None);
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    assert_eq!(
        up.connections(),
        2,
        "a smuggling-shaped answer ends its connection"
    );
}

#[tokio::test]
async fn a_streamed_body_takes_over_a_pooled_connection() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    // Over retry.max_body_bytes: streamed, so hyper's client sends it, on the same socket.
    let big: Bytes = (0..100 * 1024).map(|i| (i % 249) as u8).collect();
    assert_eq!(call(&proxy, "PUT", big.clone()).await.status(), 200);
    assert_eq!(get(&proxy).await.body().as_ref(), b"ok");
    let received = up.requests();
    assert_eq!(received.len(), 3);
    assert!(received[1].body == big);
    assert_eq!(up.connections(), 1, "one connection served both clients");
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_used_again() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&config(&up.url())).await;
    // A keep-alive answer, then the upstream closes the connection anyway (its idle timeout).
    for _ in 0..5 {
        up.push(Script::new("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbye").close());
        assert_eq!(get(&proxy).await.body().as_ref(), b"bye");
    }
    assert_eq!(up.connections(), 5);
    let m = proxy.metrics();
    let failed = m.value(
        "rampart_upstream_attempts_total",
        &[("upstream", "svc"), ("outcome", "reset")],
    );
    assert_eq!(failed, Some(0.0), "no try went to a closed connection");
    assert_eq!(up.requests().len(), 5);
}
