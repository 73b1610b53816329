//! The support helpers against each other (client → test server directly, no proxy), so the
//! end-to-end tests built on them start from known-good pieces.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use http::{StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::binary::{self, Cmd, rampart};
use crate::support::client::{self, request};
use crate::support::metrics::check_with_promtool;
use crate::support::{
    Metrics, Reply, TestCa, TestRedis, TestUpstream, empty, full, generated, init_tracing,
};

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn http1_records_requests_and_echoes_them() {
    init_tracing();
    init_tracing();
    let up = TestUpstream::http1().await;
    let req = request("POST", &format!("{}/a/b?q=1", up.url()))
        .header("x-test", "one")
        .body(full("hello"))
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;

    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_11);
    let echo = client::json(&resp);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/a/b?q=1");
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["x-test"], "one");
    assert_eq!(echo["body_len"], 5);

    assert_eq!(up.count(), 1);
    let got = up.last();
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri, "/a/b?q=1");
    assert_eq!(got.version, Version::HTTP_11);
    assert_eq!(got.header("x-test"), Some("one"));
    assert_eq!(got.body_len, 5);
    assert_eq!(got.body_text(), "hello");
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn h2c_only_speaks_http2_prior_knowledge() {
    let up = TestUpstream::h2c().await;
    let req = request("GET", &format!("{}/h2", up.url()))
        .body(empty())
        .unwrap();
    let resp = client::send_h2c(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(up.last().version, Version::HTTP_2);

    let h1 = client::send(request("GET", &up.url()).body(empty()).unwrap()).await;
    assert!(
        h1.is_err(),
        "HTTP/1.1 must be refused by an h2c-only upstream"
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn auto_serves_http1_and_h2c_on_one_port() {
    let up = TestUpstream::auto().await;
    let h1 = client::get(&up.url()).await;
    let h2 = client::send_h2c(request("GET", &up.url()).body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (h1.status(), h1.version()),
        (StatusCode::OK, Version::HTTP_11)
    );
    assert_eq!(
        (h2.status(), h2.version()),
        (StatusCode::OK, Version::HTTP_2)
    );
    let versions: Vec<_> = up.received().iter().map(|r| r.version).collect();
    assert_eq!(versions, [Version::HTTP_11, Version::HTTP_2]);
}

#[tokio::test]
async fn scripted_replies_come_first_then_the_default() {
    let up = TestUpstream::http1().await;
    up.push(Reply::status(503).header("retry-after", "1"));
    up.push(Reply::ok("scripted").header("x-a", "1").header("x-a", "2"));

    let first = client::get(&up.url()).await;
    assert_eq!(first.status(), 503);
    assert_eq!(client::header(&first, "retry-after"), Some("1"));
    assert!(first.body().is_empty());

    let second = client::get(&up.url()).await;
    assert_eq!(client::text(&second), "scripted");
    let values: Vec<_> = second.headers().get_all("x-a").iter().collect();
    assert_eq!(values, ["1", "2"]);

    let third = client::get(&up.url()).await;
    assert_eq!(client::json(&third)["method"], "GET");

    up.set_default(Reply::status(418));
    assert_eq!(client::get(&up.url()).await.status(), 418);
    assert_eq!(up.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn delay_waits_on_tokio_time() {
    let up = TestUpstream::http1().await;
    up.push(
        Reply::ok("late")
            .with_status(201)
            .delay(Duration::from_secs(30)),
    );
    let start = tokio::time::Instant::now();
    let resp = client::get(&up.url()).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(client::text(&resp), "late");
    assert!(start.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn streams_a_large_download_chunk_by_chunk() {
    let up = TestUpstream::http1().await;
    up.push(Reply::stream(32 * MIB));
    let resp = client::send(request("GET", &up.url()).body(empty()).unwrap())
        .await
        .unwrap();
    let expected = (32 * MIB).to_string();
    assert_eq!(client::header(&resp, "content-length"), Some(&*expected));
    assert_eq!(client::body_len(resp).await.unwrap(), 32 * MIB);
}

#[tokio::test]
async fn counts_a_large_upload_without_keeping_it() {
    let up = TestUpstream::http1().await;
    let req = request("PUT", &up.url()).body(generated(64 * MIB)).unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(client::json(&resp)["body_len"], 64 * MIB);
    let got = up.last();
    assert_eq!(got.body_len, 64 * MIB);
    assert!(got.body.is_none());
}

#[tokio::test]
async fn reset_drops_the_connection_with_rst() {
    let up = TestUpstream::http1().await;
    up.push(Reply::reset());
    let err = client::send(request("GET", &up.url()).body(empty()).unwrap()).await;
    assert!(err.is_err(), "reset must fail the request");
    assert_eq!(client::get(&up.url()).await.status(), 200);

    up.push(Reply::reset());
    let mut stream = TcpStream::connect(up.addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = stream.read(&mut buf).await;
    assert_eq!(
        read.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionReset
    );
    assert_eq!(up.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn hang_accepts_and_never_answers() {
    let up = TestUpstream::http1().await;
    up.push(Reply::hang());
    let pending = client::send(request("GET", &up.url()).body(empty()).unwrap());
    let outcome = tokio::time::timeout(Duration::from_secs(3600), pending).await;
    assert!(outcome.is_err(), "a hung request must not be answered");
    up.wait_for(1).await;
    assert_eq!(client::get(&up.url()).await.status(), 200);
}

#[tokio::test]
async fn tls_with_the_right_ca_negotiates_h2() {
    let ca = TestCa::new();
    let up = TestUpstream::tls(&ca).await;
    assert!(up.url().starts_with("https://localhost:"));
    let req = request("GET", &format!("{}/secure", up.url()))
        .body(empty())
        .unwrap();
    let resp = client::send_tls(req, ca.client_config()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(up.last().path(), "/secure");

    for file in [ca.ca_file(), ca.server_cert_file(), ca.client_cert_file()] {
        assert!(
            std::fs::read_to_string(file)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }
    for file in [ca.server_key_file(), ca.client_key_file()] {
        assert!(
            std::fs::read_to_string(file)
                .unwrap()
                .contains("PRIVATE KEY")
        );
    }
}

#[tokio::test]
async fn tls_with_the_wrong_ca_fails_the_handshake() {
    let (ca, other) = (TestCa::new(), TestCa::new());
    let up = TestUpstream::tls(&ca).await;
    let req = request("GET", &up.url()).body(empty()).unwrap();
    assert!(client::send_tls(req, other.client_config()).await.is_err());
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    let (ca, other) = (TestCa::new(), TestCa::new());
    let up = TestUpstream::mtls(&ca).await;
    let get = || request("GET", &up.url()).body(empty()).unwrap();

    assert!(client::send_tls(get(), ca.client_config()).await.is_err());
    let foreign = ca.client_config_with_cert(&other);
    assert!(client::send_tls(get(), foreign).await.is_err());
    assert_eq!(up.count(), 0);

    let resp = client::send_tls(get(), ca.client_config_with_cert(&ca))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn via_proxy_sends_absolute_form() {
    let up = TestUpstream::http1().await;
    let req = request("GET", "http://payments.test:8080/charge?id=7")
        .body(empty())
        .unwrap();
    let resp = client::via_proxy(up.addr(), req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = up.last();
    assert_eq!(got.uri, "http://payments.test:8080/charge?id=7");
    assert_eq!(got.header("host"), Some("payments.test:8080"));
}

/// A CONNECT proxy in miniature: answers `status` to one CONNECT, then (on 200) splices the
/// connection to `target`.
async fn fake_connect_proxy(target: SocketAddr, status: &'static str) -> SocketAddr {
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut inbound, _) = proxy.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(inbound.read_u8().await.unwrap());
        }
        assert!(head.starts_with(b"CONNECT "));
        let answer = format!("HTTP/1.1 {status}\r\n\r\n");
        inbound.write_all(answer.as_bytes()).await.unwrap();
        if status.starts_with("200") {
            let mut outbound = TcpStream::connect(target).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
    });
    addr
}

#[tokio::test]
async fn connect_opens_a_tunnel_for_plain_http() {
    let up = TestUpstream::http1().await;
    let proxy = fake_connect_proxy(up.addr(), "200 Connection established").await;
    let tunnel = client::connect(proxy, &up.authority()).await.unwrap();
    assert_eq!(tunnel.status, 200);
    assert!(tunnel.head.starts_with("HTTP/1.1 200"));
    let req = request("GET", "/through").body(empty()).unwrap();
    let resp = client::send_over(tunnel.stream, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().uri, "/through");
}

#[tokio::test]
async fn connect_carries_tls_to_the_upstream() {
    let ca = TestCa::new();
    let up = TestUpstream::tls(&ca).await;
    let proxy = fake_connect_proxy(up.addr(), "200 OK").await;
    let tunnel = client::connect(proxy, &up.authority()).await.unwrap();
    let tls = client::tls_over(tunnel.stream, ca.client_config(), "localhost")
        .await
        .unwrap();
    let req = request("GET", "/secret")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    let resp = client::send_over(tls, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().path(), "/secret");
}

#[tokio::test]
async fn connect_reports_a_refusal() {
    let up = TestUpstream::http1().await;
    let proxy = fake_connect_proxy(up.addr(), "404 Not Found").await;
    let tunnel = client::connect(proxy, "nowhere.test:443").await.unwrap();
    assert_eq!(tunnel.status, 404);
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn raw_returns_what_the_server_said_before_closing() {
    let up = TestUpstream::http1().await;
    let answer = client::raw(
        up.addr(),
        b"NOT HTTP AT ALL\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(up.count(), 0);
}

const SAMPLE: &str = r#"
# HELP rampart_requests_total Responses sent to the app.
# TYPE rampart_requests_total counter
rampart_requests_total{upstream="payments",code="200"} 7
rampart_requests_total{upstream="payments",code="503"} 2
rampart_requests_total{upstream="",code="404"} 1
rampart_requests_total{upstream="odd\"name\\x",code="200"} 3 1700000000000
# TYPE rampart_circuit_breaker_state gauge
rampart_circuit_breaker_state{upstream="payments"} 0
# TYPE rampart_request_duration_seconds histogram
rampart_request_duration_seconds_bucket{upstream="payments",le="0.1"} 5
rampart_request_duration_seconds_bucket{upstream="payments",le="+Inf"} 9
rampart_request_duration_seconds_sum{upstream="payments"} 1.5e-1
rampart_request_duration_seconds_count{upstream="payments"} 9
rampart_build_info{version="0.1.0"} 1
up NaN
"#;

#[test]
fn metrics_parser_reads_labels_histograms_and_types() {
    let m = Metrics::parse(SAMPLE);
    let ok = [("upstream", "payments"), ("code", "200")];
    assert_eq!(m.value("rampart_requests_total", &ok), Some(7.0));
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("code", "404"), ("upstream", "")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("rampart_requests_total", &[("upstream", "odd\"name\\x")]),
        Some(3.0)
    );
    assert_eq!(
        m.value("rampart_requests_total", &[("upstream", "nope")]),
        None
    );
    assert_eq!(
        m.sum("rampart_requests_total", &[("upstream", "payments")]),
        9.0
    );
    assert_eq!(m.sum("rampart_requests_total", &[]), 13.0);
    assert_eq!(m.sum("rampart_retries_total", &[]), 0.0);

    let p = [("upstream", "payments")];
    let inf = [("upstream", "payments"), ("le", "+Inf")];
    assert_eq!(
        m.value("rampart_request_duration_seconds_bucket", &inf),
        Some(9.0)
    );
    assert_eq!(
        m.value("rampart_request_duration_seconds_sum", &p),
        Some(0.15)
    );
    assert_eq!(
        m.value("rampart_request_duration_seconds_count", &p),
        Some(9.0)
    );
    assert_eq!(m.value("rampart_circuit_breaker_state", &p), Some(0.0));
    assert!(m.value("up", &[]).unwrap().is_nan());

    assert_eq!(m.kind("rampart_requests_total"), Some("counter"));
    assert_eq!(
        m.kind("rampart_request_duration_seconds"),
        Some("histogram")
    );
    m.assert_has("rampart_build_info");
    m.assert_has("rampart_request_duration_seconds");
    assert!(!m.has("rampart_hedges_total"));
}

#[test]
#[should_panic(expected = "use sum()")]
fn metrics_value_refuses_an_ambiguous_match() {
    Metrics::parse(SAMPLE).value("rampart_requests_total", &[("upstream", "payments")]);
}

#[test]
#[should_panic(expected = "no metric rampart_hedges_total")]
fn metrics_assert_has_names_the_missing_metric() {
    Metrics::parse(SAMPLE).assert_has("rampart_hedges_total");
}

#[tokio::test]
async fn metrics_scrape_reads_from_a_url() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::ok(SAMPLE).header("content-type", "text/plain; version=0.0.4"));
    let m = Metrics::scrape(&format!("{}/metrics", up.url())).await;
    assert_eq!(
        m.value("rampart_build_info", &[("version", "0.1.0")]),
        Some(1.0)
    );
    assert_eq!(up.last().path(), "/metrics");
}

#[tokio::test]
async fn the_rampart_binary_runs() {
    let done = rampart(&["--version"]).run(Duration::from_secs(10)).await;
    assert!(done.status.success(), "{done:?}");
}

#[tokio::test]
async fn process_output_lines_and_signals() {
    let mut p = Cmd::new(
        "sh",
        &["-c", "echo starting; echo ready >&2; exec sleep 30"],
    )
    .spawn();
    let line = p.wait_for_line("ready", Duration::from_secs(5)).await;
    assert_eq!(line, "ready");
    assert!(p.output().contains("starting"));
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.signal(), Some(15));
}

#[tokio::test]
async fn process_gets_its_config_file_and_env() {
    let script = r#"cat "$2"; echo "home=$RAMPART_TEST_VAR cfg=${RAMPART_CONFIG:-unset}"; exit 3"#;
    let done = Cmd::new("sh", &["-c", script, "sh"])
        .config("listen: 127.0.0.1:1\n")
        .env("RAMPART_TEST_VAR", "yes")
        .run(Duration::from_secs(5))
        .await;
    assert_eq!(done.status.code(), Some(3));
    assert!(done.output.contains("listen: 127.0.0.1:1"), "{done:?}");
    assert!(done.output.contains("home=yes cfg=unset"), "{done:?}");
}

#[tokio::test]
async fn wait_for_port_sees_a_listener_and_times_out_without_one() {
    let port = binary::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(!binary::wait_for_port(addr, Duration::from_millis(100)).await);
    let _listener = TcpListener::bind(addr).await.unwrap();
    assert!(binary::wait_for_port(addr, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn promtool_accepts_good_exposition_and_rejects_bad() {
    let good = "# HELP rampart_requests_total Responses.\n# TYPE rampart_requests_total counter\n\
                rampart_requests_total{upstream=\"a\",code=\"200\"} 1\n";
    if !check_with_promtool(good).await {
        return;
    }
    let bad = "rampart_requests_total{upstream=\"a\" 1\n";
    let rejected = tokio::spawn(check_with_promtool(bad)).await;
    assert!(
        rejected.unwrap_err().is_panic(),
        "promtool must reject {bad:?}"
    );
}

#[tokio::test]
async fn test_redis_answers_ping() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    assert!(redis.url().starts_with("redis://127.0.0.1:"));
    let pong = client::raw(redis.addr(), b"PING\r\nQUIT\r\n", Duration::from_secs(2)).await;
    assert_eq!(pong, "+PONG\r\n+OK\r\n");
}
