//! Header hygiene through the running server (SPEC §3): hop-by-hop headers both ways,
//! forwarding headers, the request id, `x-rampart-*` overrides and `x-rampart-attempts`.

use std::time::Duration;

use crate::support::binary::free_port;
use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty, full};

fn config(endpoint: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 2, backoff: {{ strategy: fixed, base: 1ms, max: 1ms }} }}\n{extra}"
    )
}

/// Writes a raw HTTP/1.1 request (the test client must not tidy the hop-by-hop headers
/// away) and returns the response head and body as text.
async fn raw_request(proxy: &TestProxy, head: &str) -> String {
    client::raw(proxy.addr, head.as_bytes(), Duration::from_secs(3)).await
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;

    let head = "GET /h HTTP/1.1\r\nHost: svc\r\n\
        Connection: close, x-named-hop\r\nX-Named-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
        Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n\
        TE: gzip\r\nTrailer: x-checksum\r\nUpgrade: h2c\r\n\
        X-Rampart-Attempts: 1\r\nX-Rampart-Timeout-Ms: 5000\r\nX-Rampart-Upstream: svc\r\n\
        X-End-To-End: kept\r\n\r\n";
    let resp = raw_request(&proxy, head).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = up.last();
    for gone in [
        "connection",
        "x-named-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-rampart-attempts",
        "x-rampart-timeout-ms",
        "x-rampart-upstream",
    ] {
        assert!(got.header(gone).is_none(), "{gone} was forwarded");
    }
    assert_eq!(got.header("x-end-to-end"), Some("kept"));
    assert_eq!(got.header("host"), Some("svc"));
}

#[tokio::test]
async fn te_trailers_is_the_one_te_value_forwarded() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    let head = "GET /t HTTP/1.1\r\nHost: svc\r\nTE: trailers\r\nConnection: close, te\r\n\r\n";
    let resp = raw_request(&proxy, head).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(up.last().header("te"), Some("trailers"));
}

/// Both upstream clients: a GET goes through rampart's own HTTP/1.1 client, which leaves
/// hop-by-hop headers out as it parses; a 20 KiB PUT (over its in-memory limit) through
/// hyper's, whose response rampart cleans afterwards.
#[tokio::test]
async fn hop_by_hop_response_headers_are_not_returned() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    for (method, body) in [("GET", Vec::new()), ("PUT", vec![b'x'; 20 * 1024])] {
        up.push(
            Reply::ok("body")
                .header("x-resp-hop", "secret")
                .header("connection", "x-resp-hop")
                .header("keep-alive", "timeout=5")
                .header("proxy-authenticate", "Basic")
                .header("trailer", "x-sum")
                .header("upgrade", "h2c")
                .header("x-resp-kept", "yes"),
        );
        let req = request(method, &proxy.url("/r"))
            .header("host", "svc")
            .body(full(body))
            .unwrap();
        let resp = client::collect(client::send(req).await.unwrap()).await;
        assert_eq!(resp.status(), 200, "{method}");
        assert_eq!(resp.body().as_ref(), b"body");
        for gone in [
            "x-resp-hop",
            "keep-alive",
            "proxy-authenticate",
            "trailer",
            "upgrade",
        ] {
            assert!(
                resp.headers().get(gone).is_none(),
                "{method}: {gone} came back: {:?}",
                resp.headers()
            );
        }
        if let Some(conn) = client::header(&resp, "connection") {
            assert!(!conn.contains("x-resp-hop"), "connection: {conn}");
        }
        assert_eq!(client::header(&resp, "x-resp-kept"), Some("yes"));
        assert_eq!(client::header(&resp, "via"), Some("1.1 rampart"));
    }
    let sent: Vec<u64> = up.received().iter().map(|r| r.body_len).collect();
    assert_eq!(sent, [0, 20 * 1024]);
}

/// Both upstream clients: a GET through rampart's own (the lines written beside the app's
/// headers), a 20 KiB PUT through hyper's (the lines added to its map).
#[tokio::test]
async fn forwarding_headers_and_via_are_set() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;

    for (method, body) in [("GET", Vec::new()), ("PUT", vec![b'x'; 20 * 1024])] {
        let req = request(method, &proxy.url("/f"))
            .header("host", "svc")
            .body(full(body.clone()))
            .unwrap();
        let resp = client::collect(client::send(req).await.unwrap()).await;
        assert_eq!(resp.status(), 200);
        let got = up.last();
        assert_eq!(got.body_len, body.len() as u64);
        assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"), "{method}");
        assert_eq!(got.header("x-forwarded-proto"), Some("http"));
        assert_eq!(got.header("via"), Some("1.1 rampart"));
        let id = client::header(&resp, "x-request-id").expect("a generated id");
        assert_eq!(got.header("x-request-id"), Some(id));
        assert_eq!(got.headers.get_all("x-request-id").iter().count(), 1);
        assert_eq!(client::header(&resp, "via"), Some("1.1 rampart"));

        // An existing chain is appended to, an existing Via is kept, the app's own
        // x-forwarded-proto and x-request-id are replaced by one line each.
        let req = request(method, &proxy.url("/f"))
            .header("host", "svc")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-proto", "https")
            .header("x-request-id", "app-id-7")
            .header("via", "1.1 edge")
            .body(full(body.clone()))
            .unwrap();
        client::collect(client::send(req).await.unwrap()).await;
        let got = up.last();
        assert_eq!(got.header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
        let all = |name: &str| -> Vec<String> {
            got.headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(all("x-forwarded-proto"), ["http"], "{method}");
        assert_eq!(all("x-request-id"), ["app-id-7"]);
        assert_eq!(all("via").join(", "), "1.1 edge, 1.1 rampart");
    }
}

#[tokio::test]
async fn every_x_forwarded_for_line_is_kept_when_appending() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    let head = "GET /xff HTTP/1.1\r\nHost: svc\r\nX-Forwarded-For: 10.0.0.1\r\n\
        X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nConnection: close\r\n\r\n";
    let resp = raw_request(&proxy, head).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = up.last();
    let xff: Vec<_> = got
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(xff.join(", "), "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1");
}

#[tokio::test]
async fn request_id_is_generated_when_absent_and_kept_when_present() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;

    let req = request("GET", &proxy.url("/id"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    let id = client::header(&resp, "x-request-id")
        .expect("generated id")
        .to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(up.last().header("x-request-id"), Some(id.as_str()));

    let req = request("GET", &proxy.url("/id"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let again = client::collect(client::send(req).await.unwrap()).await;
    assert_ne!(client::header(&again, "x-request-id"), Some(id.as_str()));

    let req = request("GET", &proxy.url("/id"))
        .header("host", "svc")
        .header("x-request-id", "app-chosen-42")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(client::header(&resp, "x-request-id"), Some("app-chosen-42"));
    assert_eq!(up.last().header("x-request-id"), Some("app-chosen-42"));

    // Generated answers carry it too.
    let req = request("GET", &proxy.url("/id"))
        .header("host", "nobody")
        .header("x-request-id", "lost-1")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(client::header(&resp, "x-request-id"), Some("lost-1"));
}

#[tokio::test]
async fn attempts_header_is_on_upstream_and_generated_answers() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    let send = |host: &'static str| {
        let req = request("GET", &proxy.url("/a"))
            .header("host", host)
            .body(empty())
            .unwrap();
        async move { client::collect(client::send(req).await.unwrap()).await }
    };
    let resp = send("svc").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("1"));

    // Generated 502: connection refused twice.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let refused = TestProxy::start(&config(&closed, "")).await;
    let req = request("GET", &refused.url("/a"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_unavailable")
    );
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("2"));

    // Generated 504: the upstream never answers within the request deadline.
    let hang = TestUpstream::http1().await;
    hang.set_default(Reply::hang());
    let timeouts = "    timeouts: { request: 200ms, per_try: 100ms }\n";
    let slow = TestProxy::start(&config(&hang.url(), timeouts)).await;
    let req = request("GET", &slow.url("/a"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(resp.status(), 504);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_timeout")
    );
    assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("2"));
    assert_eq!(client::json(&resp)["upstream"], "svc");
}

#[tokio::test]
async fn bad_override_values_and_an_invalid_host_are_400() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    for (name, value) in [
        ("x-rampart-attempts", "abc"),
        ("x-rampart-attempts", "0"),
        ("x-rampart-attempts", "-1"),
        ("x-rampart-timeout-ms", "1.5"),
        ("x-rampart-timeout-ms", "0"),
    ] {
        let req = request("GET", &proxy.url("/o"))
            .header("host", "svc")
            .header(name, value)
            .body(empty())
            .unwrap();
        let resp = client::collect(client::send(req).await.unwrap()).await;
        assert_eq!(resp.status(), 400, "{name}: {value}");
        assert_eq!(
            client::header(&resp, "x-rampart-error"),
            Some("bad_request")
        );
        assert_eq!(client::json(&resp)["error"], "bad_request");
    }
    // Valid overrides are accepted (and capped).
    let req = request("GET", &proxy.url("/o"))
        .header("host", "svc")
        .header("x-rampart-attempts", "7")
        .header("x-rampart-timeout-ms", "900000")
        .body(empty())
        .unwrap();
    assert_eq!(client::send(req).await.unwrap().status(), 200);

    let resp = raw_request(
        &proxy,
        "GET /o HTTP/1.1\r\nHost: bad host/x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("bad_request"), "{resp}");
    assert_eq!(up.count(), 1, "only the valid request was forwarded");
}

/// A request's header map is reused for a later upstream response's headers
/// (`spare_header_map`): no header of an earlier request may show up in any response. Both
/// ways the map comes back: a head kept for retries (`attempts: 2`) and one sent by value
/// on the only try (`attempts: 1`); several requests on one connection, each with headers
/// of its own.
#[tokio::test]
async fn no_request_header_shows_up_in_a_later_response() {
    let up = TestUpstream::http1().await;
    let extra = format!(
        "  once:\n    endpoints: [\"{}\"]\n    hosts: [once]\n    retry: {{ attempts: 1 }}\n",
        up.url()
    );
    let proxy = TestProxy::start(&config(&up.url(), &extra)).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut names_seen: Option<Vec<String>> = None;
    for i in 0..12 {
        let host = if i % 2 == 0 { "svc" } else { "once" };
        up.push(Reply::ok("ok").header("x-reply", &i.to_string()));
        let head = format!(
            "GET /r/{i} HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: req-{i}\r\n\
             X-App-Only-{i}: secret-{i}\r\nX-App-Common: common-{i}\r\nAccept: */*\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
            .await
            .unwrap();
        let resp = client::read_response(&mut stream).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let lower = resp.to_ascii_lowercase();
        assert!(
            !lower.contains("x-app-"),
            "a request header came back: {resp}"
        );
        assert!(
            !lower.contains("secret-"),
            "a request header came back: {resp}"
        );
        let reply = i.to_string();
        let id = format!("req-{i}");
        for (name, want) in [("x-reply", reply.as_str()), ("x-request-id", id.as_str())] {
            assert_eq!(
                crate::support::raw_upstream::header_lines(&resp, name),
                [want],
                "{resp}"
            );
        }
        // The same header names every time: nothing left over from an earlier exchange.
        let mut names: Vec<String> = lower
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect();
        names.sort();
        match &names_seen {
            None => names_seen = Some(names),
            Some(first) => assert_eq!(&names, first, "{resp}"),
        }
    }
    assert_eq!(up.count(), 12);
}

/// An upstream's own `x-request-id` and `x-rampart-attempts` (another rampart in front of
/// it, an app echoing the id) are replaced by this request's, one line each, through both
/// clients: rampart's own for a GET (which leaves them out as it parses) and hyper's for a
/// 20 KiB PUT (over the own client's in-memory limit).
#[tokio::test]
async fn an_upstreams_request_id_and_attempts_are_replaced_by_ramparts() {
    let up = TestUpstream::http1().await;
    let proxy = TestProxy::start(&config(&up.url(), "")).await;
    for (method, body) in [("GET", Vec::new()), ("PUT", vec![b'x'; 20 * 1024])] {
        up.push(
            Reply::ok("body")
                .header("x-request-id", "upstream-id")
                .header("X-Rampart-Attempts", "7")
                .header("x-rampart-attempts", "9"),
        );
        let req = request(method, &proxy.url("/id"))
            .header("host", "svc")
            .header("x-request-id", "app-id-1")
            .body(full(body))
            .unwrap();
        let resp = client::collect(client::send(req).await.unwrap()).await;
        assert_eq!(resp.status(), 200, "{method}");
        let values = |name: &str| -> Vec<&str> {
            resp.headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(values("x-request-id"), ["app-id-1"], "{method}");
        assert_eq!(values("x-rampart-attempts"), ["1"], "{method}");
    }
}
