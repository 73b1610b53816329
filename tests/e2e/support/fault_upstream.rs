//! `FaultUpstream`: an HTTP/1.1 upstream on raw sockets whose behaviour is chosen by the first
//! path segment (`/ok`, `/reset-head`, `/hang`...): the faults a chaos run injects, byte for
//! byte. It counts every request it reads by its `x-chaos-id` header, so a test can prove that
//! no request arrived twice and compare what arrived with what the proxy's metrics say.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The request header that identifies one client request across all of its tries.
pub const ID_HEADER: &str = "x-chaos-id";
/// Body length of a healthy answer.
pub const OK_LEN: usize = 256;
/// Length a `ResetBody` answer declares; it sends `RESET_BODY_SENT` bytes of it, then resets.
pub const RESET_BODY_LEN: usize = 4096;
const RESET_BODY_SENT: usize = 1024;
/// A `Trickle` answer: this many chunks of `TRICKLE_CHUNK` bytes, `Tuning::trickle_gap` apart.
pub const TRICKLE_CHUNKS: usize = 8;
const TRICKLE_CHUNK: usize = 128;
/// Longest request head read; anything longer ends the connection.
const MAX_HEAD: usize = 64 * 1024;

/// What the upstream does with a request, by the first segment of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 200 with `OK_LEN` bytes.
    Ok,
    /// Reads the request, then resets the connection (RST) before any response byte.
    ResetHead,
    /// Sends the head and a quarter of the declared body, then resets.
    ResetBody,
    /// Answers 200 after `Tuning::slow` for one request in four, after 20 ms otherwise.
    SlowHead,
    /// Sends the head at once, then the body in small chunks with pauses.
    Trickle,
    /// 503 every time.
    Status5xx,
    /// Healthy and resetting in turns, each `Tuning::flap_period` long.
    Flap,
    /// Answers 200 on a keep-alive connection, then shuts its write side (FIN) and keeps
    /// reading: a request sent on that connection arrives and never gets an answer.
    HalfClose,
    /// Reads the request and never answers, until the peer closes.
    Hang,
}

/// Timings of the faults.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Head delay of the slow quarter of `SlowHead` requests (make it exceed `per_try`).
    pub slow: Duration,
    /// Length of each up and down phase of `Flap`.
    pub flap_period: Duration,
    /// Pause between `Trickle` chunks.
    pub trickle_gap: Duration,
}

pub struct FaultUpstream {
    addrs: Vec<SocketAddr>,
    state: Arc<State>,
    accept: Vec<JoinHandle<()>>,
}

struct State {
    tuning: Tuning,
    started: Instant,
    /// Requests read per `x-chaos-id`.
    receipts: Mutex<HashMap<u64, u32>>,
    /// Requests read per fault (with or without an id).
    per_fault: Mutex<HashMap<Fault, u64>>,
    connections: AtomicU64,
}

/// A request head as the upstream read it.
struct Head {
    fault: Option<Fault>,
    id: Option<u64>,
}

// === impl Fault ===

impl Fault {
    pub const ALL: [Fault; 9] = [
        Fault::Ok,
        Fault::ResetHead,
        Fault::ResetBody,
        Fault::SlowHead,
        Fault::Trickle,
        Fault::Status5xx,
        Fault::Flap,
        Fault::HalfClose,
        Fault::Hang,
    ];

    /// The path segment that selects this fault (`/reset-head/...`).
    pub fn segment(self) -> &'static str {
        match self {
            Fault::Ok => "ok",
            Fault::ResetHead => "reset-head",
            Fault::ResetBody => "reset-body",
            Fault::SlowHead => "slow-head",
            Fault::Trickle => "trickle",
            Fault::Status5xx => "status-5xx",
            Fault::Flap => "flap",
            Fault::HalfClose => "half-close",
            Fault::Hang => "hang",
        }
    }

    fn from_path(path: &str) -> Option<Fault> {
        let segment = path.trim_start_matches('/').split(['/', '?']).next()?;
        Fault::ALL.into_iter().find(|f| f.segment() == segment)
    }

    /// True for the slow quarter of `SlowHead` requests (by a hash of the id, so it does not
    /// line up with how a load generator assigns ids to routes).
    pub fn slow_for(id: u64) -> bool {
        id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62 == 0
    }
}

/// The body bytes of answer `id`: `"<id>;"` repeated, cut at `len`, so a client can check
/// that the body it got is its own and complete.
pub fn body_for(id: u64, len: usize) -> Vec<u8> {
    format!("{id};").bytes().cycle().take(len).collect()
}

/// A loopback port that refuses connections for as long as the socket lives: bound (so no one
/// else gets the port) and never listening.
pub fn refusing_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

// === impl FaultUpstream ===

impl FaultUpstream {
    /// Listens on `ports` loopback ports that behave alike and share their counts (an
    /// upstream with several endpoints, for hedging).
    pub async fn start(tuning: Tuning, ports: usize) -> Self {
        let state = Arc::new(State {
            tuning,
            started: Instant::now(),
            receipts: Mutex::new(HashMap::new()),
            per_fault: Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
        });
        let (mut addrs, mut accept) = (Vec::new(), Vec::new());
        for _ in 0..ports {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(listener.local_addr().unwrap());
            accept.push(tokio::spawn(accept_loop(listener, state.clone())));
        }
        Self {
            addrs,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT` of the first port.
    pub fn url(&self) -> String {
        self.urls().remove(0)
    }

    /// `http://127.0.0.1:PORT` of every port.
    pub fn urls(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}")).collect()
    }

    /// Times each `x-chaos-id` was received.
    pub fn receipts(&self) -> HashMap<u64, u32> {
        self.state.receipts.lock().unwrap().clone()
    }

    /// Requests received for `fault`.
    pub fn received(&self, fault: Fault) -> u64 {
        let per_fault = self.state.per_fault.lock().unwrap();
        per_fault.get(&fault).copied().unwrap_or(0)
    }

    /// Requests received in all.
    pub fn total(&self) -> u64 {
        self.state.per_fault.lock().unwrap().values().sum()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultUpstream {
    fn drop(&mut self) {
        for task in &self.accept {
            task.abort();
        }
    }
}

/// Owns the connection tasks, so aborting it aborts them all.
async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                state.connections.fetch_add(1, Ordering::Relaxed);
                let _ = tcp.set_nodelay(true);
                connections.spawn(serve(BufReader::new(tcp), state.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Serves requests one after another until a fault ends the connection or the peer closes.
async fn serve(mut conn: BufReader<TcpStream>, state: Arc<State>) {
    let tuning = state.tuning;
    while let Some(head) = read_request(&mut conn, &state).await {
        let id = head.id.unwrap_or(0);
        let Some(fault) = head.fault else {
            let _ = respond(&mut conn, 404, id, b"").await;
            continue;
        };
        let answered = match fault {
            Fault::Ok => respond(&mut conn, 200, id, &body_for(id, OK_LEN)).await,
            Fault::ResetHead => return reset(conn),
            Fault::ResetBody => {
                let body = body_for(id, RESET_BODY_SENT);
                let _ = write_head(&mut conn, 200, id, RESET_BODY_LEN).await;
                let _ = conn.write_all(&body).await;
                let _ = conn.flush().await;
                // Let the bytes leave before the RST, which would discard unsent data.
                tokio::time::sleep(Duration::from_millis(5)).await;
                return reset(conn);
            }
            Fault::SlowHead => {
                let delay = if Fault::slow_for(id) {
                    tuning.slow
                } else {
                    Duration::from_millis(20)
                };
                tokio::time::sleep(delay).await;
                respond(&mut conn, 200, id, &body_for(id, OK_LEN)).await
            }
            Fault::Trickle => trickle(&mut conn, id, tuning.trickle_gap).await,
            Fault::Status5xx => respond(&mut conn, 503, id, b"down").await,
            Fault::Flap => {
                let phase = state.started.elapsed().as_nanos() / tuning.flap_period.as_nanos();
                if phase % 2 == 1 {
                    return reset(conn);
                }
                respond(&mut conn, 200, id, &body_for(id, OK_LEN)).await
            }
            Fault::HalfClose => {
                let _ = respond(&mut conn, 200, id, &body_for(id, OK_LEN)).await;
                let _ = conn.get_mut().shutdown().await;
                // Whatever still arrives is received and never answered.
                while read_request(&mut conn, &state).await.is_some() {}
                return;
            }
            Fault::Hang => {
                let mut sink = [0u8; 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        };
        if answered.is_err() {
            return;
        }
    }
}

/// Reads one request (head, and a body framed by Content-Length or chunked); `None` when the
/// peer closed or sent something unreadable. A request counts as received once its head is
/// read: a body that breaks off (the proxy's try was cut short) does not undo that.
async fn read_request(conn: &mut BufReader<TcpStream>, state: &State) -> Option<Head> {
    let mut line = String::new();
    let mut read = 0;
    let mut next_line = async |line: &mut String| {
        line.clear();
        let n = conn.read_line(line).await.ok()?;
        read += n;
        (n > 0 && read <= MAX_HEAD).then_some(())
    };
    next_line(&mut line).await?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let (mut id, mut length, mut chunked) = (None, 0usize, false);
    loop {
        next_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case(ID_HEADER) {
            id = value.parse().ok();
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let head = Head {
        fault: Fault::from_path(&path),
        id,
    };
    state.record(&head);
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).await.ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            // The chunk and its CRLF; the last chunk is followed by an empty trailer line.
            let mut skip = vec![0u8; size + 2];
            conn.read_exact(&mut skip).await.ok()?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await.ok()?;
    }
    Some(head)
}

async fn write_head(
    conn: &mut BufReader<TcpStream>,
    status: u16,
    id: u64,
    len: usize,
) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status} X\r\ncontent-length: {len}\r\n{ID_HEADER}: {id}\r\n\r\n");
    conn.write_all(head.as_bytes()).await
}

async fn respond(
    conn: &mut BufReader<TcpStream>,
    status: u16,
    id: u64,
    body: &[u8],
) -> std::io::Result<()> {
    write_head(conn, status, id, body.len()).await?;
    conn.write_all(body).await?;
    conn.flush().await
}

async fn trickle(conn: &mut BufReader<TcpStream>, id: u64, gap: Duration) -> std::io::Result<()> {
    let body = body_for(id, TRICKLE_CHUNKS * TRICKLE_CHUNK);
    write_head(conn, 200, id, body.len()).await?;
    conn.flush().await?;
    for chunk in body.chunks(TRICKLE_CHUNK) {
        tokio::time::sleep(gap).await;
        conn.write_all(chunk).await?;
        conn.flush().await?;
    }
    Ok(())
}

/// Closes with a TCP RST instead of a FIN.
fn reset(conn: BufReader<TcpStream>) {
    let _ = conn.into_inner().set_zero_linger();
}

// === impl State ===

impl State {
    fn record(&self, head: &Head) {
        if let Some(id) = head.id {
            *self.receipts.lock().unwrap().entry(id).or_default() += 1;
        }
        if let Some(fault) = head.fault {
            *self.per_fault.lock().unwrap().entry(fault).or_default() += 1;
        }
    }
}
