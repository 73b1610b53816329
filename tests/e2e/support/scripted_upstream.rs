//! `ScriptedUpstream`: answers each request with the next scripted reply, written byte for
//! byte, in pieces, then optionally closes. It sends what a server library would not: interim
//! heads, chunk extensions and trailers split across writes, close-delimited bodies,
//! conflicting lengths, a body cut short. Requests are read by head and `Content-Length`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The answer when no reply is scripted.
const DEFAULT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// Between pieces, so the proxy sees them in separate reads.
const PIECE_GAP: Duration = Duration::from_millis(5);

/// One scripted reply.
#[derive(Clone, Debug, Default)]
pub struct Script {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

impl Script {
    /// A reply that starts with `bytes`.
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        Self {
            pieces: vec![bytes.as_ref().to_vec()],
            close: false,
        }
    }

    /// Then `bytes`, in a write of their own.
    pub fn then(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.pieces.push(bytes.as_ref().to_vec());
        self
    }

    /// Then the connection closes.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }
}

/// A request as received: head text and body bytes.
#[derive(Clone, Debug)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    replies: Mutex<VecDeque<Script>>,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
}

pub struct ScriptedUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl ScriptedUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Self {
            addr,
            state,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues the reply for the next request.
    pub fn push(&self, script: Script) {
        self.state.replies.lock().unwrap().push_back(script);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                state.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve(tcp, state.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve(mut tcp: TcpStream, state: Arc<State>) {
    tcp.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut tcp, &mut buf).await else {
            return;
        };
        state.received.lock().unwrap().push(request);
        let script = state.replies.lock().unwrap().pop_front();
        let script = script.unwrap_or_else(|| Script::new(DEFAULT));
        for (i, piece) in script.pieces.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(PIECE_GAP).await;
            }
            if tcp.write_all(piece).await.is_err() {
                return;
            }
        }
        if script.close {
            return;
        }
    }
}

/// Reads one request (head, then a `Content-Length` body); `None` at close.
async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = super::raw_upstream::header_lines(&head, "content-length")
        .first()
        .map_or(0, |v| v.parse().unwrap());
    while buf.len() < end + length {
        let mut chunk = [0u8; 65536];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + length].to_vec();
    buf.drain(..end + length);
    Some(Received { head, body })
}
