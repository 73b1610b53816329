//! Protocols through the running server: h2c from the app, h2c and h2-over-TLS upstreams,
//! TLS origination (CA file, mTLS, server name override, wrong CA) and CONNECT tunnels.

use http::Version;

use crate::support::binary::free_port;
use crate::support::client::{self, request};
use crate::support::{TestCa, TestProxy, TestUpstream, empty};

fn upstream_yaml(name: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    endpoints: [\"{endpoint}\"]\n    hosts: [{name}]\n    retry: {{ attempts: 1 }}\n{extra}"
    )
}

async fn get_host(proxy: &TestProxy, host: &str) -> http::Response<bytes::Bytes> {
    let req = request("GET", &proxy.url("/p"))
        .header("host", host)
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap()).await
}

#[tokio::test]
async fn h2c_client_to_http1_and_to_h2c_upstreams() {
    let h1 = TestUpstream::http1().await;
    let h2 = TestUpstream::h2c().await;
    let yaml = format!(
        "upstreams:\n{}{}",
        upstream_yaml("one", &h1.url(), ""),
        upstream_yaml("two", &h2.url(), "    protocol: http2\n")
    );
    let proxy = TestProxy::start(&yaml).await;

    for (name, up, version) in [
        ("one", &h1, Version::HTTP_11),
        ("two", &h2, Version::HTTP_2),
    ] {
        let req = request("GET", &proxy.url("/h2c?q=1"))
            .header("x-rampart-upstream", name)
            .body(empty())
            .unwrap();
        let resp = client::send_h2c(req).await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        let resp = client::collect(resp).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(client::header(&resp, "via"), Some("2 rampart"));
        let got = up.last();
        assert_eq!(got.version, version, "{name}");
        assert_eq!(got.uri.path_and_query().unwrap().as_str(), "/h2c?q=1");
        assert!(got.header("x-rampart-upstream").is_none());
        assert_eq!(got.header("via"), Some("2 rampart"));
    }
    // Plain HTTP/1.1 to the h2c upstream as well.
    let resp = get_host(&proxy, "two").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(h2.count(), 2);
    assert_eq!(h2.last().version, Version::HTTP_2);
}

#[tokio::test]
async fn http1_client_to_an_h2_tls_upstream_with_the_test_ca() {
    let ca = TestCa::new();
    let up = TestUpstream::tls(&ca).await;
    let tls = format!("    tls: {{ ca_file: \"{}\" }}\n", ca.ca_file().display());
    let proxy = TestProxy::start(&format!(
        "upstreams:\n{}",
        upstream_yaml("sec", &up.url(), &tls)
    ))
    .await;
    let resp = get_host(&proxy, "sec").await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(up.last().version, Version::HTTP_2, "ALPN chose h2");
    assert_eq!(client::json(&resp)["path"], "/p");
}

#[tokio::test]
async fn mtls_presents_the_client_certificate() {
    let ca = TestCa::new();
    let up = TestUpstream::mtls(&ca).await;
    let with_cert = format!(
        "    tls: {{ ca_file: \"{}\", client_cert: \"{}\", client_key: \"{}\" }}\n",
        ca.ca_file().display(),
        ca.client_cert_file().display(),
        ca.client_key_file().display()
    );
    let without_cert = format!("    tls: {{ ca_file: \"{}\" }}\n", ca.ca_file().display());
    let yaml = format!(
        "upstreams:\n{}{}",
        upstream_yaml("withcert", &up.url(), &with_cert),
        upstream_yaml("nocert", &up.url(), &without_cert),
    );
    let proxy = TestProxy::start(&yaml).await;
    let resp = get_host(&proxy, "withcert").await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(up.count(), 1);

    let resp = get_host(&proxy, "nocert").await;
    assert_eq!(resp.status(), 502, "{:?}", resp.body());
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_unavailable")
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn server_name_overrides_the_verified_name() {
    let ca = TestCa::new();
    let up = TestUpstream::tls(&ca).await;
    // The endpoint host is `127.0.0.1`; what is verified is the configured name.
    let endpoint = format!("https://127.0.0.1:{}", up.addr().port());
    let tls = |name: &str| {
        format!(
            "    tls: {{ ca_file: \"{}\", server_name: {name} }}\n",
            ca.ca_file().display()
        )
    };
    let yaml = format!(
        "upstreams:\n{}{}",
        upstream_yaml("good", &endpoint, &tls("localhost")),
        upstream_yaml("bad", &endpoint, &tls("not-in-the-cert.test")),
    );
    let proxy = TestProxy::start(&yaml).await;
    assert_eq!(get_host(&proxy, "good").await.status(), 200);
    let resp = get_host(&proxy, "bad").await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_unavailable")
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_wrong_ca_fails_with_502_upstream_unavailable() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let up = TestUpstream::tls(&ca).await;
    let tls = format!(
        "    tls: {{ ca_file: \"{}\" }}\n",
        other.ca_file().display()
    );
    let proxy = TestProxy::start(&format!(
        "upstreams:\n{}",
        upstream_yaml("sec", &up.url(), &tls)
    ))
    .await;
    let resp = get_host(&proxy, "sec").await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        client::header(&resp, "x-rampart-error"),
        Some("upstream_unavailable")
    );
    assert_eq!(client::json(&resp)["error"], "upstream_unavailable");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn connect_tunnels_to_a_matching_upstream_host() {
    let up = TestUpstream::http1().await;
    // The upstream claims host 127.0.0.1; the tunnel goes to the requested host:port, an
    // ephemeral port the connect policy must allow.
    let yaml = format!(
        "connect: {{ allowed_ports: [{}] }}\nupstreams:\n  local:\n    endpoints: [\"{}\"]\n    hosts: [\"127.0.0.1\"]\n",
        up.addr().port(),
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let tunnel = client::connect(proxy.addr, &up.authority()).await.unwrap();
    assert_eq!(tunnel.status, 200, "{}", tunnel.head);
    let req = request("GET", "/through?t=1")
        .header("host", up.authority())
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send_over(tunnel.stream, req).await.unwrap()).await;
    assert_eq!(resp.status(), 200);
    // Bytes flow untouched: no proxy headers were added inside the tunnel.
    let got = up.last();
    assert_eq!(got.uri, "/through?t=1");
    assert!(got.header("via").is_none());
    assert!(got.header("x-request-id").is_none());
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "local"), ("code", "200")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn connect_through_passthrough_carries_tls_end_to_end() {
    let ca = TestCa::new();
    let up = TestUpstream::tls(&ca).await;
    let yaml = format!(
        "passthrough: {{ enabled: true }}\nconnect: {{ allowed_ports: [{}] }}\n",
        up.addr().port()
    );
    let proxy = TestProxy::start(&yaml).await;
    let target = format!("localhost:{}", up.addr().port());
    let tunnel = client::connect(proxy.addr, &target).await.unwrap();
    assert_eq!(tunnel.status, 200, "{}", tunnel.head);
    let tls = client::tls_over(tunnel.stream, ca.client_config(), "localhost")
        .await
        .unwrap();
    let req = request("GET", "/secret")
        .header("host", &target)
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send_over(tls, req).await.unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().path(), "/secret");
}

#[tokio::test]
async fn connect_to_an_unknown_host_without_passthrough_is_404() {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let tunnel = client::connect(proxy.addr, &up.authority()).await.unwrap();
    assert_eq!(tunnel.status, 404, "{}", tunnel.head);
    assert!(
        tunnel
            .head
            .to_ascii_lowercase()
            .contains("x-rampart-error: no_route"),
        "{}",
        tunnel.head
    );
    // Nothing was tunnelled.
    assert_eq!(up.count(), 0);
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn connect_to_a_closed_port_is_502() {
    let port = free_port();
    let yaml =
        format!("passthrough: {{ enabled: true }}\nconnect: {{ allowed_ports: [{port}] }}\n");
    let proxy = TestProxy::start(&yaml).await;
    let target = format!("127.0.0.1:{port}");
    let tunnel = client::connect(proxy.addr, &target).await.unwrap();
    assert_eq!(tunnel.status, 502, "{}", tunnel.head);
    assert!(
        tunnel
            .head
            .to_ascii_lowercase()
            .contains("x-rampart-error: upstream_unavailable"),
        "{}",
        tunnel.head
    );
    // A failed tunnel set-up counts as a connect failure of the (passthrough) upstream.
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "passthrough"), ("outcome", "connect_error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "passthrough"), ("code", "502")]
        ),
        Some(1.0)
    );
}

/// An HTTP/1.0 upstream that answers one request per connection, then closes.
async fn http10_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_http10_upstream_keeps_the_apps_http11_connection_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = http10_upstream().await;
    let yaml = format!(
        "upstreams:\n{}",
        upstream_yaml("old", &format!("http://{up}"), "")
    );
    let proxy = TestProxy::start(&yaml).await;

    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    for round in 0..2 {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: old\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nok") {
            let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut buf))
                .await
                .expect("the proxy answers in time")
                .unwrap();
            assert!(
                n > 0,
                "round {round}: the proxy closed the app's connection"
            );
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
}

/// HTTP/1.0 keep-alive (`ab -k` and other old clients): an app that asks for it keeps its
/// connection across proxied answers, and one that does not gets it closed after each.
#[tokio::test]
async fn an_http10_app_keeps_its_connection_only_when_it_asks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wait = std::time::Duration::from_secs(3);
    let up = TestUpstream::http1().await;
    let yaml = format!("upstreams:\n{}", upstream_yaml("one", &up.url(), ""));
    let proxy = TestProxy::start(&yaml).await;

    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    for round in 0..2 {
        stream
            .write_all(b"GET /x HTTP/1.0\r\nHost: one\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let head = tokio::time::timeout(wait, client::read_response(&mut stream))
            .await
            .expect("the proxy answers in time")
            .to_ascii_lowercase();
        assert!(head.starts_with("http/1.0 200"), "round {round}: {head}");
        assert!(
            head.contains("\r\nconnection: keep-alive\r\n"),
            "round {round}: {head}"
        );
    }
    assert_eq!(up.connections(), 1, "one upstream connection, reused");

    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /x HTTP/1.0\r\nHost: one\r\n\r\n")
        .await
        .unwrap();
    let head = tokio::time::timeout(wait, client::read_response(&mut stream))
        .await
        .expect("an answer")
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(wait, stream.read_to_end(&mut rest))
        .await
        .expect("closed after the answer")
        .unwrap();
    assert_eq!(read, 0, "closed after the answer");
}
