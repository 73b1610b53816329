//! rampart's own HTTP/1.1 client for plain-TCP upstream connections, used for requests
//! whose body is in memory and at most [`MAX_BODY`] (every `GET`, most bodies buffered for
//! replay). It runs inside the request's own future: the head and body go out in one `send`
//! (larger bodies go to hyper, which also reads an early answer while it writes), the response
//! head is parsed with httparse, and the body is read from the socket as the app's side
//! pulls it. hyper's client, used for streamed bodies, TLS and HTTP/2, drives each
//! connection from a task of its own and hands requests and responses across channels; per
//! proxied request that cost about as many instructions as everything rampart itself does
//! (docs/performance.md).

mod body;
mod chunked;
mod encode;
mod response_head;

use std::io;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use body::H1Body;
pub use encode::RequestHead;
pub use response_head::Head;

/// Largest request body this client sends; the whole request is written before the
/// response is read, so it must fit the socket's send buffer.
pub const MAX_BODY: usize = 16 * 1024;
/// Read buffer growth step; one read takes a typical response head and a small body.
const READ_CHUNK: usize = 8 * 1024;
/// Body pieces up to this size are copied (into the thread's arena chunk when small), so the
/// read buffer stays unshared and is reused; larger ones are split off it without a copy.
/// That is the bound for pieces that may be held a while: an HTTP/2 app's stream keeps a
/// piece until flow control lets it go, and a piece split off the buffer pins all of it.
const COPY_MAX: usize = 4 * 1024;
/// The bound for pieces relayed to an HTTP/1 app, which hyper copies into its write buffer
/// and drops before it asks for the next: split, the read buffer turns shared (one small
/// allocation per connection) and the next refill takes it back in place. Copying a 4 KiB
/// body cost a `malloc`, a `free` and the copy, about 900 instructions (callgrind).
const COPY_MAX_SHORT_LIVED: usize = crate::bytes_arena::MAX_PIECE;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed.
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    /// The upstream closed the connection before the response was complete.
    #[error("upstream closed the connection before the response was complete")]
    Closed,
    /// The response head is not HTTP/1.x.
    #[error("invalid response head: {0}")]
    Parse(httparse::Error),
    /// The response head exceeded the limit.
    #[error("response head too large")]
    HeadTooLarge,
    /// A status outside 100–999, or 101 (never asked for).
    #[error("invalid or unexpected response status")]
    BadStatus,
    /// A header name or value `http` rejects.
    #[error("invalid response header")]
    BadHeader,
    /// An unparsable or conflicting `Content-Length`.
    #[error("invalid content-length")]
    BadLength,
    /// Malformed chunked framing.
    #[error("invalid chunked body")]
    BadChunk,
}

/// An exchange that got no response head.
#[derive(Debug)]
pub struct SendFailure {
    /// What went wrong.
    pub error: Error,
    /// No byte of the request was written: it can go to another connection as is.
    pub unsent: bool,
}

/// One upstream HTTP/1.1 connection, used for one exchange at a time.
#[derive(Debug)]
pub struct H1Conn {
    io: TcpStream,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    /// The current exchange's [`COPY_MAX`] or [`COPY_MAX_SHORT_LIVED`].
    copy_max: usize,
}

impl H1Conn {
    /// Wraps a connected socket.
    pub fn new(io: TcpStream) -> Self {
        Self {
            io,
            read_buf: BytesMut::new(),
            write_buf: Vec::new(),
            copy_max: COPY_MAX,
        }
    }

    /// The socket, for hyper to take over (a streamed body). Only idle connections, which
    /// hold no unread bytes, are handed over.
    pub fn into_io(self) -> TcpStream {
        self.io
    }

    /// False when the idle connection has been closed by the upstream (or sent something
    /// unasked). `try_read` consults the readiness the event loop already has: no system
    /// call unless the socket is flagged readable (closed or data), and no task budget.
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes the request and reads until its final response head. The body is read later,
    /// through [`H1Body`].
    pub async fn send(
        &mut self,
        head: RequestHead<'_>,
        body: Option<&Bytes>,
    ) -> Result<Head, SendFailure> {
        let method = head.method;
        // Relayed to an HTTP/1 app, the response head is dropped once written out.
        let short_lived = head
            .forwarding
            .and_then(|f| f.via)
            .is_some_and(|v| v <= http::Version::HTTP_11);
        self.copy_max = if short_lived {
            COPY_MAX_SHORT_LIVED
        } else {
            COPY_MAX
        };
        self.write_buf.clear();
        encode::request(head, body, &mut self.write_buf);
        let mut written = 0;
        while written < self.write_buf.len() {
            let error = match self.io.write(&self.write_buf[written..]).await {
                Ok(0) => Error::Closed,
                Ok(n) => {
                    written += n;
                    continue;
                }
                Err(e) => e.into(),
            };
            // An upstream may answer before reading the whole request and close (413, 401):
            // that answer, if it arrived, is the result, not the broken write.
            if written > 0
                && let Ok(mut head) = self.read_head(method, short_lived).await
            {
                head.keep_alive = false;
                return Ok(head);
            }
            return Err(failure(error, written));
        }
        self.read_head(method, short_lived)
            .await
            .map_err(|e| failure(e, written))
    }

    /// Reads until the final response head (`short_lived`: see [`response_head::parse`]).
    async fn read_head(&mut self, method: &Method, short_lived: bool) -> Result<Head, Error> {
        loop {
            if !self.read_buf.is_empty()
                && let Some(head) = response_head::parse(&mut self.read_buf, method, short_lived)?
            {
                return Ok(head);
            }
            let n = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if n == 0 {
                return Err(Error::Closed);
            }
        }
    }

    /// Reads more of the response into the read buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.io), cx, &mut self.read_buf)
    }

    /// A response whose body reads from this connection.
    pub fn response(self, head: Head) -> Response<H1Body> {
        let body = H1Body::new(self, head.framing, head.keep_alive);
        head.response.map(|()| body)
    }
}

fn failure(error: Error, written: usize) -> SendFailure {
    SendFailure {
        error,
        unsent: written == 0,
    }
}

/// The first `n` bytes of `buf` as their own `Bytes`: copied up to `copy_max` bytes (see
/// [`COPY_MAX`]), split off above.
fn take(buf: &mut BytesMut, n: usize, copy_max: usize) -> Bytes {
    if n <= copy_max {
        let piece = crate::bytes_arena::copy(&buf[..n]);
        buf.advance(n);
        piece
    } else {
        buf.split_to(n).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Uri};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpSocket;

    /// An upstream that answers after the first bytes of the request and closes without
    /// reading the rest (its unread data turns the close into a reset): the answer is the
    /// result, not the failed write. Small socket buffers keep most of the body unsent.
    #[tokio::test]
    async fn an_answer_sent_before_the_body_was_read_is_the_result() {
        let listener = TcpSocket::new_v4().unwrap();
        listener.set_recv_buffer_size(1024).unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.listen(1).unwrap();
        let upstream = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 64];
            tcp.read_exact(&mut first).await.unwrap();
            tcp.write_all(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let client = TcpSocket::new_v4().unwrap();
        client.set_send_buffer_size(1024).unwrap();
        let mut conn = H1Conn::new(client.connect(addr).await.unwrap());
        let body = Bytes::from(vec![b'x'; MAX_BODY]);
        let uri: Uri = "/upload".parse().unwrap();
        let request = RequestHead {
            method: &Method::PUT,
            uri: &uri,
            headers: &HeaderMap::new(),
            forwarding: None,
            default_host: "upstream",
        };
        let head = conn
            .send(request, Some(&body))
            .await
            .expect("the upstream's early answer");
        upstream.await.unwrap();
        assert_eq!(head.response.status(), 413);
        assert!(!head.keep_alive, "the request was not fully sent");
    }
}
