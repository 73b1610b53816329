//! `RawUpstream`: an HTTP/1.1 upstream on raw sockets that records every byte it receives and
//! frames requests itself (RFC 9112 §6.3), so a test sees exactly what an origin server would
//! read: one request per head, the body by its declared framing, and any bytes left over
//! (a smuggled second request shows up there). Answers each complete request with the next
//! queued [`Script`], written byte for byte (interim heads, odd chunking, close-delimited or
//! cut-short bodies, conflicting lengths: what no server library sends), else `200 ok`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// One request as the origin framed it.
#[derive(Clone, Debug)]
pub struct RawRequest {
    /// The request line and header lines, exactly as received (CRLFs included).
    pub head: String,
    /// The body as the framing declares it (chunked: decoded).
    pub body: Vec<u8>,
}

/// The answer when no reply is queued.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// Between a script's pieces, so the proxy sees them in separate reads.
const PIECE_GAP: Duration = Duration::from_millis(5);

/// One scripted answer: pieces written one after another, then maybe a close.
#[derive(Clone, Debug, Default)]
pub struct Script {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

impl Script {
    /// An answer that starts with `bytes`.
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

pub struct RawUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// Every byte received, per connection.
    bytes: Mutex<Vec<Vec<u8>>>,
    /// Bytes of each connection that complete requests account for.
    consumed: Mutex<Vec<usize>>,
    requests: Mutex<Vec<RawRequest>>,
    count: watch::Sender<usize>,
    replies: Mutex<VecDeque<Script>>,
}

/// Why the origin stopped reading a connection.
enum Stop {
    /// The peer closed (cleanly or not) or sent an incomplete message.
    Closed,
    /// Framing the origin cannot read unambiguously (both or repeated length headers...).
    Ambiguous,
}

// === impl RawRequest ===

impl RawRequest {
    /// Header lines named `name` (case-insensitive), values trimmed.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        header_lines(&self.head, name)
    }

    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }
}

/// The values of the header lines named `name` (case-insensitive) in a raw HTTP/1.1 head
/// (start line first, CRLF-separated), trimmed.
pub fn header_lines<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

// === impl RawUpstream ===

impl RawUpstream {
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

    /// Complete requests framed so far.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        *self.state.count.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.bytes.lock().unwrap().len()
    }

    /// Queues the answer to the next request.
    pub fn push(&self, script: Script) {
        self.state.replies.lock().unwrap().push_back(script);
    }

    /// Every byte received on every connection, in order.
    pub fn bytes(&self) -> Vec<u8> {
        self.state.bytes.lock().unwrap().concat()
    }

    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.state.count.subscribe();
        rx.wait_for(|c| *c >= n).await.unwrap();
    }

    /// The one request received, after checking that nothing else arrived: no second request
    /// and no stray bytes, every line CRLF-terminated, one unambiguous body framing.
    pub fn only_request(&self) -> RawRequest {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "requests: {requests:#?}");
        let request = requests.into_iter().next().unwrap();
        let consumed: usize = self.state.consumed.lock().unwrap().iter().sum();
        let all = self.bytes();
        assert_eq!(
            all.len(),
            consumed,
            "bytes beyond the framed request: {:?}",
            String::from_utf8_lossy(&all)
        );
        let lines = request.head.trim_end_matches("\r\n");
        for line in lines.split("\r\n") {
            assert!(
                !line.contains('\n') && !line.contains('\r') && !line.contains('\0'),
                "a line with a bare CR/LF or NUL: {line:?}"
            );
        }
        let te = request.headers("transfer-encoding");
        let cl = request.headers("content-length");
        assert!(
            te.is_empty() || cl.is_empty(),
            "both framings: {}",
            request.head
        );
        assert!(cl.len() <= 1, "repeated content-length: {}", request.head);
        request
    }
}

impl Drop for RawUpstream {
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
                let index = {
                    let mut bytes = state.bytes.lock().unwrap();
                    bytes.push(Vec::new());
                    state.consumed.lock().unwrap().push(0);
                    bytes.len() - 1
                };
                connections.spawn(serve(tcp, index, state.clone()));
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Frames requests one after another and answers each; stops at close or ambiguity.
async fn serve(mut tcp: TcpStream, index: usize, state: Arc<State>) {
    tcp.set_nodelay(true).unwrap();
    let mut reader = Reader {
        tcp: &mut tcp,
        buf: Vec::new(),
        index,
        state: &state,
    };
    loop {
        match reader.request().await {
            Ok(request) => {
                let received = state.bytes.lock().unwrap()[index].len();
                state.consumed.lock().unwrap()[index] = received - reader.buf.len();
                state.requests.lock().unwrap().push(request);
                state.count.send_modify(|c| *c += 1);
                let script = state.replies.lock().unwrap().pop_front();
                let script = script.unwrap_or_else(|| Script::new(OK));
                for (i, piece) in script.pieces.iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(PIECE_GAP).await;
                    }
                    if reader.tcp.write_all(piece).await.is_err() {
                        return;
                    }
                }
                if script.close {
                    return;
                }
            }
            Err(Stop::Ambiguous) => {
                let _ = reader
                    .tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
            Err(Stop::Closed) => return,
        }
    }
}

struct Reader<'a> {
    tcp: &'a mut TcpStream,
    /// Received and not consumed yet.
    buf: Vec<u8>,
    index: usize,
    state: &'a State,
}

impl Reader<'_> {
    /// Reads more bytes into `buf`, recording them.
    async fn fill(&mut self) -> Result<(), Stop> {
        let mut chunk = [0u8; 8192];
        match self.tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => Err(Stop::Closed),
            Ok(n) => {
                self.state.bytes.lock().unwrap()[self.index].extend_from_slice(&chunk[..n]);
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Consumes through the first `needle`, returning what came before it.
    async fn until(&mut self, needle: &[u8]) -> Result<Vec<u8>, Stop> {
        loop {
            if let Some(at) = self.buf.windows(needle.len()).position(|w| w == needle) {
                let out = self.buf[..at].to_vec();
                self.buf.drain(..at + needle.len());
                return Ok(out);
            }
            self.fill().await?;
        }
    }

    async fn exactly(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn request(&mut self) -> Result<RawRequest, Stop> {
        let head = self.until(b"\r\n\r\n").await?;
        let head = format!("{}\r\n\r\n", String::from_utf8_lossy(&head));
        let probe = RawRequest {
            head,
            body: Vec::new(),
        };
        let te = probe.headers("transfer-encoding");
        let cl = probe.headers("content-length");
        let body = match (te.as_slice(), cl.as_slice()) {
            ([], []) => Vec::new(),
            ([], [len]) => {
                let len = len.parse::<usize>().map_err(|_| Stop::Ambiguous)?;
                self.exactly(len).await?
            }
            ([te], []) if te.eq_ignore_ascii_case("chunked") => self.chunked().await?,
            _ => return Err(Stop::Ambiguous),
        };
        Ok(RawRequest { body, ..probe })
    }

    async fn chunked(&mut self) -> Result<Vec<u8>, Stop> {
        let mut body = Vec::new();
        loop {
            let line = self.until(b"\r\n").await?;
            let line = String::from_utf8_lossy(&line).into_owned();
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| Stop::Ambiguous)?;
            if size == 0 {
                // Trailer lines up to the empty line.
                while !self.until(b"\r\n").await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exactly(size).await?);
            if self.exactly(2).await? != b"\r\n" {
                return Err(Stop::Ambiguous);
            }
        }
    }
}
