//! HTTP/2 (h2c prior knowledge) abuse with hand-written frames: the rapid-reset flood
//! (CVE-2023-44487) and header values that would inject lines once downgraded to HTTP/1.1.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BOUND, proxy_for};
use crate::support::RawUpstream;
use crate::support::client::{self, request};
use crate::support::empty;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block: `GET /` over http for `authority`, plus literal (never indexed) fields.
fn header_block(authority: &str, fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    // Static table: 0x82 :method GET, 0x84 :path /, 0x86 :scheme http.
    let mut block = vec![0x82, 0x84, 0x86];
    // Literal without indexing, name from static index 1 (:authority).
    block.push(0x01);
    literal(&mut block, authority.as_bytes());
    for (name, value) in fields {
        block.push(0x00); // literal without indexing, new name
        literal(&mut block, name);
        literal(&mut block, value);
    }
    block
}

fn literal(block: &mut Vec<u8>, bytes: &[u8]) {
    assert!(bytes.len() < 127, "short literals only");
    block.push(u8::try_from(bytes.len()).unwrap());
    block.extend_from_slice(bytes);
}

/// Frames read until GOAWAY or close: `Some(error code)` of a GOAWAY, `None` on a bare close.
async fn until_goaway(stream: &mut (impl AsyncRead + Unpin)) -> Option<u32> {
    loop {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        if head[3] == GOAWAY {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
    }
}

async fn h2c(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    stream.write_all(&hello).await.unwrap();
    stream
}

#[tokio::test]
async fn a_rapid_reset_flood_gets_goaway_and_barely_reaches_the_upstream() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    let mut stream = h2c(proxy.addr).await;
    let block = header_block("svc", &[]);
    let mut flood = Vec::new();
    for i in 0..2_000u32 {
        let id = 2 * i + 1;
        flood.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        flood.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    let (_, goaway) = tokio::time::timeout(BOUND, async {
        let (mut read, mut write) = stream.split();
        tokio::join!(write.write_all(&flood), until_goaway(&mut read))
    })
    .await
    .expect("GOAWAY or close within the bound");
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM));
    assert!(
        up.count() < 100,
        "{} of 2000 reset streams were forwarded",
        up.count()
    );

    // Other clients are still served.
    let req = request("GET", &proxy.url("/after"))
        .header("x-rampart-upstream", "svc")
        .body(empty())
        .unwrap();
    assert_eq!(client::send_h2c(req).await.unwrap().status(), 200);
}

#[tokio::test]
async fn header_values_that_would_inject_lines_in_http1_are_refused() {
    let up = RawUpstream::start().await;
    let proxy = proxy_for(&up, 1, "").await;
    let cases: [(&[u8], &[u8]); 6] = [
        (b"x-a", b"a\r\nx-injected: b"),
        (b"x-a", b"a\nx-injected: b"),
        (b"x-a", b"a\0b"),
        (b"transfer-encoding", b"chunked"),
        (b"connection", b"close"),
        (b"X-Upper", b"v"),
    ];
    for (i, (name, value)) in cases.into_iter().enumerate() {
        let mut stream = h2c(proxy.addr).await;
        let block = header_block("svc", &[(name, value)]);
        let id = 1;
        stream
            .write_all(&frame(HEADERS, END_HEADERS | END_STREAM, id, &block))
            .await
            .unwrap();
        // The stream (or the connection) is refused; a well-formed request would get a
        // HEADERS frame with :status 200 from the upstream's "ok".
        let refused = tokio::time::timeout(BOUND, refused_or_answered(&mut stream, id))
            .await
            .expect("an answer within the bound");
        assert!(
            refused,
            "case {i}: {:?} was answered",
            String::from_utf8_lossy(name)
        );
    }
    assert_eq!(up.count(), 0, "{:#?}", up.requests());
}

/// True when `id` is reset or the connection ends; false when a response HEADERS arrives.
async fn refused_or_answered(stream: &mut TcpStream, id: u32) -> bool {
    loop {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).await.is_err() {
            return true;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return true;
        }
        let on = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
        match head[3] {
            GOAWAY => return true,
            RST_STREAM if on == id => return true,
            HEADERS if on == id => return false,
            _ => {}
        }
    }
}
