//! One client connection: HTTP/1.1, or h2c by prior knowledge (told apart by peeking at the
//! first bytes), with the limits that protect rampart from a misbehaving app.
//!
//! Why not hyper-util's auto builder: it reads the first bytes itself and then serves every
//! later read through a rewind buffer; peeking leaves the socket to hyper untouched.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::config::LimitsPolicy;
use crate::proxy::{self, ConnInfo, Shared};
use crate::server::h1::rewind::Rewind;
use crate::server::h1::{self, Ended};
use crate::server::header_timer::HeaderTimer;
use crate::server::{Drain, DrainSignal, DrainWatch};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How often a connection that has sent only a prefix of the preface is looked at again.
const PREFACE_POLL: Duration = Duration::from_millis(10);

/// Concurrent HTTP/2 streams per client connection.
const MAX_CONCURRENT_STREAMS: u32 = 512;
/// HTTP/2 rapid-reset defence (CVE-2023-44487): streams a client may reset before rampart
/// accepted them, then GOAWAY (ENHANCE_YOUR_CALM).
const MAX_PENDING_RESETS: usize = 20;
/// Streams rampart may reset because the client broke the protocol on them (RUSTSEC-2024-0003,
/// the "MadeYouReset" family), then GOAWAY. hyper's default is 1024; a well-behaved app never
/// causes one.
const MAX_LOCAL_ERROR_RESETS: usize = 100;

/// Configured hyper builders, shared by every connection of a listener.
#[derive(Debug)]
pub struct ConnectionBuilder {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// rampart's own loop, which serves each HTTP/1.1 connection until a head it leaves to
    /// hyper.
    own: h1::Settings,
}

impl ConnectionBuilder {
    /// Applies the header limits and timers of `limits`.
    pub fn new(limits: &LimitsPolicy) -> Self {
        let mut http1 = http1::Builder::new();
        // hyper answers a plain 431 past its buffer; below that rampart answers the JSON
        // 431 itself, so the buffer is twice the limit.
        let buffer = (limits.max_request_header_bytes * 2).max(8192);
        // The timer is set per connection (`spawn`): each has its own `HeaderTimer`.
        http1
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(buffer)
            .max_headers(limits.max_request_headers)
            // Head and body copied into one buffer and written with one `write`: for the
            // small bodies a sidecar mostly relays that is cheaper than hyper's queue of
            // buffers for `writev` (callgrind −390 instructions per request on `/`, equal
            // on `/4k`; docs/performance.md).
            .writev(false)
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(
                u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX),
            )
            .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
            .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);
        Self {
            http1,
            http2,
            own: h1::Settings {
                header_read_timeout: limits.header_read_timeout,
                max_buf: buffer,
                max_headers: limits.max_request_headers,
            },
        }
    }

    /// Serves `stream` on its own task until it closes; the permit is released then.
    pub fn spawn(
        &self,
        stream: TcpStream,
        shared: Arc<Shared>,
        info: ConnInfo,
        drain: &Drain,
        permit: OwnedSemaphorePermit,
    ) {
        let client = info.client;
        let handler = proxy::Handler::new(shared, info);
        let (http1, http2) = (self.http1.clone(), self.http2.clone());
        let own = self.own;
        let within = own.header_read_timeout;
        // The first head's time counts from now, the wait for its first bytes included.
        let first_by = tokio::time::Instant::now() + within;
        let signal = drain.signal.clone();
        drain.tracker.spawn(async move {
            let result = if speaks_h2(&stream, within).await {
                let conn = http2.serve_connection(TokioIo::new(stream), proxy::service(handler));
                serve(conn, &signal, |c| c.graceful_shutdown()).await
            } else {
                match h1::serve(stream, &handler, own, first_by, &signal).await {
                    Ended::Closed => Ok(()),
                    Ended::HandOff {
                        stream,
                        read,
                        head_by,
                    } => {
                        let mut http1 = http1;
                        // The handed-over head keeps the deadline the loop gave it.
                        http1.timer(HeaderTimer::first_by(head_by));
                        let conn = http1
                            .serve_connection(
                                TokioIo::new(Rewind::new(read, stream)),
                                proxy::service(handler),
                            )
                            .with_upgrades();
                        serve(conn, &signal, |c| c.graceful_shutdown()).await
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%client, error = %e, "client connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Drives `conn` to its end; when draining starts, asks it to finish gracefully (answer
/// what is in flight, then close) and waits for that. The drain signal is watched through
/// [`DrainWatch`]: an atomic load per wake-up of the connection, not the token's lock.
async fn serve<C>(
    conn: C,
    signal: &DrainSignal,
    graceful: impl FnOnce(Pin<&mut C>),
) -> Result<(), hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(conn);
    let mut watch = DrainWatch::new(signal);
    let mut graceful = Some(graceful);
    std::future::poll_fn(move |cx| {
        if graceful.is_some()
            && watch.poll_drained(cx).is_ready()
            && let Some(graceful) = graceful.take()
        {
            graceful(conn.as_mut());
        }
        conn.as_mut().poll(cx)
    })
    .await
}

/// True when the client opens with the HTTP/2 preface. Peeks, so hyper still reads every
/// byte itself. A client that sends only part of the preface is looked at again until it
/// diverges or `within` passes (then HTTP/1.1's header timeout deals with it).
async fn speaks_h2(stream: &TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 24];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let n = match peeked {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if buf[..n] != H2_PREFACE[..n] {
            return false;
        }
        if n == H2_PREFACE.len() {
            return true;
        }
        // Only a prefix so far: peeking again at once would see the same bytes.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(PREFACE_POLL))
            .await
            .is_err()
        {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair on loopback: what the client writes, the server side peeks at.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_preface_in_pieces_is_http2_and_anything_else_is_not() {
        let within = Duration::from_secs(2);
        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..9]).await.unwrap();
        let rest = tokio::spawn(async move {
            tokio::time::sleep(PREFACE_POLL * 3).await;
            client.write_all(&H2_PREFACE[9..]).await.unwrap();
            client
        });
        assert!(speaks_h2(&server, within).await);
        let _client = rest.await.unwrap();
        let mut peeked = [0u8; 24];
        assert_eq!(
            server.peek(&mut peeked).await.unwrap(),
            24,
            "nothing was consumed"
        );

        for opening in [
            &b"POST / HTTP/1.1\r\n"[..],
            b"PRI / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            let (mut client, server) = pair().await;
            client.write_all(opening).await.unwrap();
            assert!(!speaks_h2(&server, within).await, "{opening:?}");
        }

        // A client that closes without a byte is no HTTP/2 client.
        let (client, server) = pair().await;
        drop(client);
        assert!(!speaks_h2(&server, within).await);
    }
}
