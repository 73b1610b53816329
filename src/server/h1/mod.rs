//! rampart's own HTTP/1.1 server loop for the requests apps send most: an HTTP/1.1 head with
//! no body (`GET`, `DELETE`, ...), answered on the same connection, pipelining included. The
//! first head it does not serve (a body, an upgrade, `Expect`, `HEAD`, HTTP/1.0, anything
//! malformed or too large) goes to hyper with every byte already read, and hyper serves the
//! rest of the connection as it serves every other one.
//!
//! Why: hyper's server spent about 10,500 of the 26,100 instructions a proxied request cost
//! (callgrind, docs/performance.md): its dispatcher, its parse into a fresh head, a clock
//! read per poll for its `date` cache, its timer per head, its write queue. The loop parses
//! with the same httparse, slices header values from the read buffer as hyper does, and
//! writes head and body with one `send`.

pub mod request;
pub mod response;
pub mod rewind;

use std::future::poll_fn;
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Response};
use http_body::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::proxy::Handler;
use crate::proxy::body::ResponseBody;
use crate::server::{DrainSignal, DrainWatch};
use request::Parsed;
use response::{BodyLen, Framing};

/// Read buffer size, and the step it grows by: one read takes a typical head.
const READ_CHUNK: usize = 8 * 1024;
/// Body bytes copied behind the head (or a chunk's size line) to go out in the same `send`;
/// a larger piece is written from where it is.
const COALESCE: usize = 16 * 1024;
/// A write buffer grown past this by a large head is not kept for the next response.
const KEEP_OUT: usize = 64 * 1024;

/// The limits the loop applies, from `limits`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `limits.header_read_timeout`: for each head, counted from when the loop starts
    /// waiting for it (keep-alive idle time included, as hyper counts it).
    pub header_read_timeout: Duration,
    /// Bytes of an incomplete head after which hyper takes it (and answers 431).
    pub max_buf: usize,
    /// `limits.max_request_headers`.
    pub max_headers: usize,
}

/// How the loop left the connection.
#[derive(Debug)]
pub enum Ended {
    /// Closed: by the app, a timeout, draining, an error, or `Connection: close`.
    Closed,
    /// hyper is to serve it from here, reading `read` first.
    HandOff {
        /// The socket.
        stream: TcpStream,
        /// What the loop read and did not serve.
        read: Bytes,
        /// When the head hyper reads first must be complete: the one the loop was timing
        /// (a head handed over half-read gets no fresh timeout).
        head_by: Instant,
    },
}

/// Serves `stream` until it closes or a head goes to hyper. `first_by`: the first head's
/// deadline (the header timeout counted from the accept).
pub(super) async fn serve(
    stream: TcpStream,
    handler: &Handler,
    settings: Settings,
    first_by: Instant,
    signal: &DrainSignal,
) -> Ended {
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
        rest: Bytes::new(),
        scanned: 0,
        out: Vec::new(),
        map: None,
    };
    let mut deadline = pin!(tokio::time::sleep_until(first_by));
    let mut drain = DrainWatch::new(signal);
    loop {
        let (request, asked_close) = loop {
            if !conn.rest.is_empty() {
                match request::parse(&conn.rest, settings.max_headers, &mut conn.map) {
                    Parsed::Simple {
                        request,
                        close,
                        len,
                    } => {
                        conn.rest.advance(len);
                        if conn.rest.is_empty() {
                            // An emptied slice would still share the read buffer, which could
                            // then not be reclaimed in place.
                            conn.rest = Bytes::new();
                        }
                        break (request, close);
                    }
                    Parsed::Other => return conn.hand_off(deadline.deadline()),
                    Parsed::Partial => {
                        // The start of the next head: back into the read buffer, once.
                        let rest = std::mem::take(&mut conn.rest);
                        conn.buf.extend_from_slice(&rest);
                        conn.scanned = 0;
                    }
                }
            }
            if request::head_end(&conn.buf, conn.scanned).is_some() {
                conn.rest = conn.buf.split().freeze();
                conn.scanned = 0;
                continue;
            }
            // A head's first bytes that can be no request go to hyper, which answers 400.
            if conn.scanned == 0 && !conn.buf.is_empty() && request::hopeless(&conn.buf) {
                return conn.hand_off(deadline.deadline());
            }
            conn.scanned = conn.buf.len();
            // hyper answers 431 to a head that fills its buffer.
            let Some(room) = settings
                .max_buf
                .checked_sub(conn.buf.len())
                .filter(|&r| r > 0)
            else {
                return conn.hand_off(deadline.deadline());
            };
            conn.reserve();
            let idle = conn.buf.is_empty();
            let mut into = (&mut conn.buf).limit(room);
            let read = tokio::select! {
                biased;
                read = conn.stream.read_buf(&mut into) => read,
                () = &mut deadline => return Ended::Closed,
                () = drain.wait(), if idle => return Ended::Closed,
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Ended::Closed;
            }
        };

        let mut answer = pin!(handler.handle(request));
        let response = loop {
            // With nothing pipelined, a read notices the app closing (the request is then
            // dropped: logged and counted as 499), as hyper's does.
            let watch = conn.nothing_read();
            if watch {
                conn.reserve();
            }
            tokio::select! {
                biased;
                response = &mut answer => break response,
                read = conn.stream.read_buf(&mut conn.buf), if watch => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return Ended::Closed;
                    }
                }
            }
        };
        let Ok(response) = response;
        let close = asked_close || signal.draining.load(Ordering::Acquire);
        match conn.respond(response, close).await {
            // Draining that started while the body was sent ends the connection after it.
            Ok(true) if !signal.draining.load(Ordering::Acquire) => {}
            Ok(_) => {
                let _ = conn.stream.shutdown().await;
                return Ended::Closed;
            }
            Err(_) => return Ended::Closed,
        }
        deadline
            .as_mut()
            .reset(Instant::now() + settings.header_read_timeout);
    }
}

/// One connection's socket and buffers.
struct Conn {
    stream: TcpStream,
    /// Read since the last head ended; not yet frozen.
    buf: BytesMut,
    /// Read, frozen (a served head's header values are slices of it), not yet parsed: the
    /// pipelined requests after the last one. Older than anything in `buf`.
    rest: Bytes,
    /// How much of `buf` holds no head end (see [`request::head_end`]).
    scanned: usize,
    /// To be written.
    out: Vec<u8>,
    /// The last response's header map, emptied: the next request's headers go into it
    /// (as hyper's server does), so maps are not allocated and freed per request.
    map: Option<HeaderMap>,
}

impl Conn {
    /// Nothing is buffered: a read can only be the app's next bytes or its close.
    fn nothing_read(&self) -> bool {
        self.rest.is_empty() && self.buf.is_empty()
    }

    /// Room for a read. Reclaims the buffer in place when the header values sliced from it
    /// are gone.
    fn reserve(&mut self) {
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(READ_CHUNK);
        }
    }

    /// hyper takes the socket, and everything read from it and not served, in order.
    fn hand_off(self, head_by: Instant) -> Ended {
        let read = match (self.rest.is_empty(), self.buf.is_empty()) {
            (_, true) => self.rest,
            (true, false) => self.buf.freeze(),
            (false, false) => [&self.rest[..], &self.buf[..]].concat().into(),
        };
        Ended::HandOff {
            stream: self.stream,
            read,
            head_by,
        }
    }

    /// Writes `response`; `Ok(true)`: the connection can carry another request.
    async fn respond(&mut self, response: Response<ResponseBody>, close: bool) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        let len = if body.is_end_stream() {
            BodyLen::Empty
        } else {
            body.size_hint()
                .exact()
                .map_or(BodyLen::Unknown, BodyLen::Known)
        };
        let Ok((framing, asks_close)) = response::encode(&parts, len, close, &mut self.out) else {
            tracing::warn!(status = %parts.status, "response with conflicting framing headers; closing the connection");
            return Ok(false);
        };
        self.map = crate::spare_header_map::emptied(parts.headers);
        match framing {
            Framing::Length(0) => {}
            Framing::Length(n) => self.write_body(body, Some(n)).await?,
            Framing::Chunked => self.write_body(body, None).await?,
        }
        self.flush().await?;
        if self.out.capacity() > KEEP_OUT {
            // A large head or body piece grew it: not kept while the connection idles.
            self.out = Vec::new();
        }
        Ok(!close && !asks_close)
    }

    /// Copies or writes `body` after the head in `out`: `length` bytes exactly, or chunked.
    /// Only the last piece is left in `out` for the caller's flush.
    async fn write_body(&mut self, body: ResponseBody, length: Option<u64>) -> io::Result<()> {
        let mut body = pin!(body);
        let mut left = length.unwrap_or(u64::MAX);
        loop {
            let frame = if self.out.is_empty() {
                // While the body has nothing, a read notices the app closing (the body, and
                // with it the upstream's stream, is then dropped), as hyper's does.
                let watch = self.nothing_read();
                if watch {
                    self.reserve();
                }
                tokio::select! {
                    biased;
                    frame = poll_fn(|cx| body.as_mut().poll_frame(cx)) => frame,
                    read = self.stream.read_buf(&mut self.buf), if watch => match read {
                        Ok(n) if n > 0 => continue,
                        _ => return Err(io::ErrorKind::ConnectionAborted.into()),
                    },
                }
            } else {
                // Something is ready to go: it goes now if the body has nothing more yet.
                match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => {
                        self.flush().await?;
                        continue;
                    }
                }
            };
            let data = match frame {
                None => break,
                Some(Err(e)) => return Err(io::Error::other(e)),
                // Trailers are not relayed to an HTTP/1 app (it did not send `TE: trailers`).
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            if !data.is_empty() {
                if length.is_some() {
                    left = left
                        .checked_sub(data.len() as u64)
                        .ok_or_else(|| io::Error::other("response body longer than its length"))?;
                } else {
                    response::chunk_size(&mut self.out, data.len());
                }
                if self.out.len() + data.len() <= COALESCE {
                    self.out.extend_from_slice(&data);
                } else {
                    self.flush().await?;
                    self.stream.write_all(&data).await?;
                }
                if length.is_none() {
                    self.out.extend_from_slice(b"\r\n");
                }
            }
            if body.is_end_stream() {
                break;
            }
        }
        match length {
            Some(_) if left != 0 => Err(io::Error::other("response body shorter than its length")),
            Some(_) => Ok(()),
            None => {
                self.out.extend_from_slice(b"0\r\n\r\n");
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }
}
