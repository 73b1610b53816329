//! rampart's own HTTP/1.1 loop (`server::h1`) through the binary: what it serves itself, what
//! it hands to hyper mid-connection with every byte already read, and the response framing
//! it writes for each kind of upstream body.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::TestProxy;
use crate::support::client::{raw, read_until_close};
use crate::support::raw_upstream::{RawUpstream, Script, header_lines};

async fn proxy_for(up: &RawUpstream) -> TestProxy {
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    TestProxy::start(&yaml).await
}

/// Splits what a connection received into its responses (each framed by content-length or
/// chunked, as the app would read them).
fn responses(mut wire: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(end) = wire.find("\r\n\r\n") {
        let head = wire[..end].to_owned();
        let mut rest = &wire[end + 4..];
        let body = if let Some(len) = header_lines(&head, "content-length").first() {
            let len: usize = len.parse().unwrap();
            let body = rest[..len].to_owned();
            rest = &rest[len..];
            body
        } else if header_lines(&head, "transfer-encoding") == ["chunked"] {
            let mut body = String::new();
            loop {
                let line_end = rest.find("\r\n").unwrap();
                let size = usize::from_str_radix(&rest[..line_end], 16).unwrap();
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = &rest[2..];
                    break;
                }
                body.push_str(&rest[..size]);
                rest = &rest[size + 2..];
            }
            body
        } else {
            String::new()
        };
        out.push((head, body));
        wire = rest;
    }
    out
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_across_the_hand_off_to_hyper() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up).await;
    // A GET the loop serves, a POST with a body it hands to hyper (with the GET behind it
    // already read), and that GET asking to close: three answers, in order, then the close.
    let wire = raw(
        proxy.addr,
        b"GET /one HTTP/1.1\r\nhost: svc\r\n\r\n\
          POST /two HTTP/1.1\r\nhost: svc\r\ncontent-length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let answers = responses(&wire);
    assert_eq!(answers.len(), 3, "{wire}");
    for (head, body) in &answers {
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, "ok");
    }
    assert_eq!(header_lines(&answers[2].0, "connection"), ["close"]);
    let requests = up.requests();
    let lines: Vec<_> = requests
        .iter()
        .map(|r| r.head.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "GET /one HTTP/1.1",
            "POST /two HTTP/1.1",
            "GET /three HTTP/1.1"
        ]
    );
    assert_eq!(requests[1].body, b"hello");
}

#[tokio::test]
async fn chunked_no_content_and_custom_reasons_are_framed_as_hyper_frames_them() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up).await;
    // A chunked body in two writes (relayed chunked: its length is not known up front), a
    // 204 with no body, a 304 whose content-length describes a body it does not carry, and a
    // non-standard reason phrase.
    up.push(
        Script::new("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .then("6\r\n world\r\n0\r\n\r\n"),
    );
    up.push(Script::new(
        "HTTP/1.1 204 No Content\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n",
    ));
    up.push(Script::new(
        "HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\netag: \"e\"\r\n\r\n",
    ));
    up.push(Script::new(
        "HTTP/1.1 520 Origin Error\r\ncontent-length: 3\r\n\r\nbad",
    ));
    // A fifth request after them shows the connection is still open; it asks to close.
    let wire = raw(
        proxy.addr,
        b"GET /a HTTP/1.1\r\nhost: svc\r\n\r\nGET /b HTTP/1.1\r\nhost: svc\r\n\r\n\
          GET /c HTTP/1.1\r\nhost: svc\r\n\r\nGET /d HTTP/1.1\r\nhost: svc\r\n\r\n\
          GET /e HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let answers = responses(&wire);
    assert_eq!(answers.len(), 5, "{wire}");

    let (chunked, body) = &answers[0];
    assert_eq!(
        header_lines(chunked, "transfer-encoding"),
        ["chunked"],
        "{chunked}"
    );
    assert!(header_lines(chunked, "content-length").is_empty());
    assert_eq!(body, "hello world");

    let (no_content, _) = &answers[1];
    assert!(
        no_content.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{no_content}"
    );
    assert!(
        header_lines(no_content, "content-length").is_empty(),
        "{no_content}"
    );
    assert_eq!(
        header_lines(no_content, "date"),
        ["Tue, 01 Dec 2026 10:00:00 GMT"]
    );

    let (not_modified, body) = &answers[2];
    assert!(
        not_modified.starts_with("HTTP/1.1 304 Not Modified\r\n"),
        "{not_modified}"
    );
    assert!(body.is_empty());
    assert_eq!(header_lines(not_modified, "etag"), ["\"e\""]);
    // Every answer carries a date: the upstream's, or one rampart adds.
    assert_eq!(
        header_lines(not_modified, "date").len(),
        1,
        "{not_modified}"
    );

    let (custom, body) = &answers[3];
    assert!(
        custom.starts_with("HTTP/1.1 520 Origin Error\r\n"),
        "{custom}"
    );
    assert_eq!(body, "bad");

    assert_eq!(answers[4].1, "ok");
}

#[tokio::test]
async fn an_upgrade_a_head_and_an_http10_request_go_to_hyper_and_are_answered() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up).await;
    // HEAD: the answer keeps the upstream's length but has no body; the same connection,
    // now hyper's, then serves a plain GET.
    up.push(Script::new("HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n"));
    let wire = raw(
        proxy.addr,
        b"HEAD /h HTTP/1.1\r\nhost: svc\r\n\r\nGET /g HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let (head, next) = wire.split_once("\r\n\r\n").unwrap();
    assert_eq!(header_lines(head, "content-length"), ["42"], "{wire}");
    assert!(
        next.starts_with("HTTP/1.1 200 OK\r\n") && next.ends_with("\r\n\r\nok"),
        "{wire}"
    );

    let old = raw(
        proxy.addr,
        b"GET /old HTTP/1.0\r\nhost: svc\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(old.starts_with("HTTP/1.0 200 OK\r\n"), "{old}");

    // A malformed head is hyper's to refuse, as before the loop existed.
    let bad = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nbad header: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
}

#[tokio::test]
async fn blank_lines_before_a_request_do_not_make_it_run_twice() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up).await;
    let wire = raw(
        proxy.addr,
        b"\r\n\r\n\r\nDELETE /x HTTP/1.1\r\nhost: svc\r\n\r\n\
          GET /y HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(responses(&wire).len(), 2, "{wire}");
    let lines: Vec<_> = up
        .requests()
        .iter()
        .map(|r| r.head.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(lines, ["DELETE /x HTTP/1.1", "GET /y HTTP/1.1"]);
}

#[tokio::test]
async fn bytes_that_are_no_request_get_hypers_400_at_once() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up).await;
    // A TLS ClientHello's first bytes: no blank line will ever come. The answer comes within
    // the 5 s read, long before the header timeout (30 s by default).
    let answer = raw(
        proxy.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn a_request_whose_app_half_closes_after_sending_is_still_answered_when_pipelined() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /a HTTP/1.1\r\nhost: svc\r\n\r\nGET /b HTTP/1.1\r\nhost: svc\r\n\r\n")
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let wire = read_until_close(&mut stream, Duration::from_secs(5)).await;
    let answers = responses(&wire);
    assert!(!answers.is_empty(), "{wire}");
    assert!(answers[0].0.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
}

#[tokio::test]
async fn an_app_closing_during_a_streamed_answer_ends_the_upstream_stream() {
    // An upstream that sends a chunked head and one chunk, then waits for rampart to close.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(conn.read_u8().await.unwrap());
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await
    });
    let yaml =
        format!("upstreams:\n  svc:\n    endpoints: [\"http://{addr}\"]\n    hosts: [svc]\n");
    let proxy = TestProxy::start(&yaml).await;
    let mut app = TcpStream::connect(proxy.addr).await.unwrap();
    app.write_all(b"GET /events HTTP/1.1\r\nhost: svc\r\n\r\n")
        .await
        .unwrap();
    // The head and the first chunk reach the app, then it goes away.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("hello") {
        let mut piece = [0u8; 256];
        let n = app.read(&mut piece).await.unwrap();
        assert!(n > 0, "{:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&piece[..n]);
    }
    drop(app);
    // rampart drops the body, and with it the upstream connection, once the app is gone.
    let closed = tokio::time::timeout(Duration::from_secs(5), upstream)
        .await
        .expect("rampart closed the upstream connection")
        .unwrap();
    assert!(closed.is_ok());
    assert_eq!(
        proxy
            .metrics()
            .value("rampart_requests_in_flight", &[("upstream", "svc")]),
        Some(0.0)
    );
}

/// A head the loop hands to hyper half-read (blank lines first, which httparse skips) keeps
/// the deadline it had: a client cannot restart its header timeout by handing over.
#[tokio::test]
async fn a_head_handed_over_half_read_keeps_its_header_deadline() {
    let up = RawUpstream::start().await;
    let yaml = format!(
        "limits: {{ header_read_timeout: 1s }}\nupstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let connected = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // The client pauses (part of the scenario), then, just before the deadline, sends blank
    // lines and the start of a request line: httparse sees
    // an incomplete head after an empty line, and the loop hands it to hyper.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stream.write_all(b"\r\n\r\nGET /slow HT").await.unwrap();
    read_until_close(&mut stream, Duration::from_secs(3)).await;
    let elapsed = connected.elapsed();
    // One timeout from the accept (a fresh one at the hand-off took 1.8 s).
    assert!(
        elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_millis(1500),
        "cut off after {elapsed:?}"
    );
    assert_eq!(up.count(), 0);
}
