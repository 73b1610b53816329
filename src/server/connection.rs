//! One client connection: hyper-util's auto builder (HTTP/1.1 and h2c by prior knowledge)
//! with the limits that protect rampart from a misbehaving app.

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::config::LimitsPolicy;
use crate::proxy::{ConnInfo, ProxyService, Shared};
use crate::server::Drain;

/// Concurrent HTTP/2 streams per client connection.
const MAX_CONCURRENT_STREAMS: u32 = 512;
/// HTTP/2 rapid-reset defence (CVE-2023-44487): streams a client may reset before rampart
/// accepted them, then GOAWAY (ENHANCE_YOUR_CALM).
const MAX_PENDING_RESETS: usize = 20;
/// Streams rampart may reset because the client broke the protocol on them (RUSTSEC-2024-0003,
/// the "MadeYouReset" family), then GOAWAY. hyper's default is 1024; a well-behaved app never
/// causes one.
const MAX_LOCAL_ERROR_RESETS: usize = 100;

/// Configured hyper builder, shared by every connection of a listener.
#[derive(Debug)]
pub struct ConnectionBuilder {
    builder: Builder<TokioExecutor>,
}

impl ConnectionBuilder {
    /// Applies the header limits and timers of `limits`.
    pub fn new(limits: &LimitsPolicy) -> Self {
        let mut builder = Builder::new(TokioExecutor::new());
        // hyper answers a plain 431 past its buffer; below that rampart answers the JSON
        // 431 itself, so the buffer is twice the limit.
        let buffer = (limits.max_request_header_bytes * 2).max(8192);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(buffer)
            .max_headers(limits.max_request_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(
                u32::try_from(limits.max_request_header_bytes).unwrap_or(u32::MAX),
            )
            .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
            .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);
        Self { builder }
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
        let service = ProxyService::new(shared, info);
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let signal = drain.signal.clone();
        drain.tracker.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = signal.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%client, error = %e, "client connection ended with an error");
            }
            drop(permit);
        });
    }
}
