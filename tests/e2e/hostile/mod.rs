//! Hostile input over raw sockets: request smuggling attempts, malformed heads, header
//! injection, CONNECT abuse and HTTP/2 floods. Each must end in the right 4xx or a closed
//! connection, never in a forwarded request that the upstream would read differently, which
//! the raw-socket upstream (`RawUpstream`) checks byte by byte.

mod connect;
mod framing;
mod h2;
mod heads;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw_upstream::header_lines;
use crate::support::{RawUpstream, TestProxy};

/// How long any single hostile exchange may take before the test fails.
const BOUND: Duration = Duration::from_secs(5);

/// A proxy with one upstream `svc` (host `svc`) at `up`, `attempts` tries, and `top` YAML.
async fn proxy_for(up: &RawUpstream, attempts: u32, top: &str) -> TestProxy {
    TestProxy::start(&format!(
        "{top}upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    retry: {{ attempts: {attempts} }}\n",
        up.url()
    ))
    .await
}

/// One response as read off the wire.
#[derive(Debug)]
struct Answer {
    /// Status line and header lines; empty when the connection closed without an answer.
    head: String,
    body: String,
}

impl Answer {
    fn status(&self) -> Option<u16> {
        self.head.split_whitespace().nth(1)?.parse().ok()
    }

    /// Header lines named `name` (case-insensitive).
    fn headers(&self, name: &str) -> Vec<&str> {
        header_lines(&self.head, name)
    }

    /// Refused: `status` (rampart's JSON or hyper's plain one) or a connection closed
    /// without an answer.
    fn assert_refused(&self, status: u16) {
        assert!(
            self.head.is_empty() || self.status() == Some(status),
            "expected {status} or a closed connection, got {self:?}"
        );
    }

    /// rampart's own JSON answer with `code`.
    fn assert_local(&self, status: u16, code: &str) {
        assert_eq!(self.status(), Some(status), "{self:?}");
        assert_eq!(self.headers("x-rampart-error"), [code], "{self:?}");
        let body: serde_json::Value = serde_json::from_str(&self.body).expect("JSON body");
        assert_eq!(body["error"], code);
    }
}

/// Writes `bytes` on a fresh connection and reads one response (head, and a
/// content-length body); an empty head when the proxy closed without answering.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Answer {
    exchange_on(addr, bytes).await.0
}

/// Like [`exchange`], and hands back the connection for more checks.
async fn exchange_on(addr: SocketAddr, bytes: &[u8]) -> (Answer, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The proxy may refuse before reading everything: a failed write is part of the test.
    let _ = stream.write_all(bytes).await;
    let answer = read_answer(&mut stream).await;
    (answer, stream)
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = head
                    .split("\r\n")
                    .filter_map(|l| l.split_once(':'))
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return (head, body);
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return (String::from_utf8_lossy(&buf).into_owned(), String::new());
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let (head, body) = read.expect("an answer or a close within the bound");
    Answer { head, body }
}

/// Waits (within the bound) for the proxy to close `stream`, reading nothing more.
async fn assert_closes(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(BOUND, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    assert!(
        rest.is_empty(),
        "more bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
}
