//! CONNECT abuse: ports outside `connect.allowed_ports`, targets the routed upstream does not
//! name, credentials and missing ports in the target.

use std::net::TcpListener;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{exchange, proxy_for};
use crate::support::client;
use crate::support::{RawUpstream, TestProxy};

/// A listening port that records whether anything connected to it.
struct Target {
    listener: TcpListener,
}

impl Target {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self { listener }
    }

    fn authority(&self) -> String {
        self.listener.local_addr().unwrap().to_string()
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// True when a connection is waiting: a dial completes its handshake before the
    /// proxy could answer, so this is decided by the time the answer arrives.
    fn was_dialled(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

#[tokio::test]
async fn passthrough_connect_is_limited_to_the_allowed_ports() {
    let target = Target::new();
    let proxy = TestProxy::start("passthrough: { enabled: true }\n").await;
    let tunnel = client::connect(proxy.addr, &target.authority())
        .await
        .unwrap();
    assert_eq!(tunnel.status, 403, "{}", tunnel.head);
    assert!(
        tunnel
            .head
            .to_ascii_lowercase()
            .contains("x-rampart-error: forbidden"),
        "{}",
        tunnel.head
    );
    assert!(!target.was_dialled(), "the refused port was dialled");
    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "passthrough"), ("code", "403")]
        ),
        Some(1.0)
    );

    // Once the port is allowed, the same CONNECT tunnels.
    let yaml = format!(
        "passthrough: {{ enabled: true }}\nconnect: {{ allowed_ports: [443, {}] }}\n",
        target.port()
    );
    let proxy = TestProxy::start(&yaml).await;
    let tunnel = client::connect(proxy.addr, &target.authority())
        .await
        .unwrap();
    assert_eq!(tunnel.status, 200, "{}", tunnel.head);
    assert!(target.was_dialled());
}

#[tokio::test]
async fn a_hosts_entry_with_its_port_allows_that_port_and_only_for_its_host() {
    let up = RawUpstream::start().await;
    let port = up.url().rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let yaml = format!(
        "upstreams:\n  db:\n    endpoints: [\"{}\"]\n    hosts: [\"127.0.0.1:{port}\"]\n  any:\n    endpoints: [\"http://127.0.0.1:1\"]\n    hosts: [localhost]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let tunnel = client::connect(proxy.addr, &format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(tunnel.status, 200, "{}", tunnel.head);
    let mut stream = tunnel.stream;
    stream
        .write_all(b"GET /through HTTP/1.1\r\nHost: db\r\n\r\n")
        .await
        .unwrap();
    let mut ok = [0u8; 40];
    let n = stream.read(&mut ok).await.unwrap();
    assert!(ok[..n].starts_with(b"HTTP/1.1 200"));
    assert_eq!(up.only_request().request_line(), "GET /through HTTP/1.1");

    // A hosts entry without a port only allows the allowed ports.
    let tunnel = client::connect(proxy.addr, &format!("localhost:{port}"))
        .await
        .unwrap();
    assert_eq!(tunnel.status, 403, "{}", tunnel.head);
}

#[tokio::test]
async fn a_connect_routed_by_name_must_target_one_of_that_upstreams_hosts() {
    let target = Target::new();
    let up = RawUpstream::start().await;
    let proxy = proxy_for(
        &up,
        1,
        &format!("connect: {{ allowed_ports: [{}] }}\n", target.port()),
    )
    .await;
    let head = format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nX-Rampart-Upstream: svc\r\n\r\n",
        target.authority()
    );
    exchange(proxy.addr, head.as_bytes())
        .await
        .assert_local(403, "forbidden");
    assert!(
        !target.was_dialled(),
        "a host svc does not name was dialled"
    );
}

#[tokio::test]
async fn connect_targets_with_credentials_or_without_a_port_are_400() {
    let target = Target::new();
    let yaml = format!(
        "passthrough: {{ enabled: true }}\nconnect: {{ allowed_ports: [{}] }}\n",
        target.port()
    );
    let proxy = TestProxy::start(&yaml).await;
    for authority in [
        format!("user:hunter2@{}", target.authority()),
        "127.0.0.1".to_string(),
    ] {
        let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        let answer = exchange(proxy.addr, head.as_bytes()).await;
        answer.assert_local(400, "bad_request");
        assert!(!answer.body.contains("hunter2"));
    }
    assert!(!target.was_dialled());
}
