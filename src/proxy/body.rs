//! Concrete body types for both directions: no boxing and one extra branch per frame.
//! Upstream bodies stream through untouched; the response side also carries the guard that
//! keeps the request counted in flight (bulkhead, gauge) until the body is done or dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::proxy::app_body::AppBody;
use crate::upstream::InFlight;
use crate::upstream::pool::{BodyError, PooledBody};

/// The body of a response sent to the app.
#[derive(Debug)]
pub enum ResponseBody {
    /// An upstream response body, streamed as it arrives.
    Upstream {
        /// The upstream body (its connection returns to the pool when it ends).
        body: PooledBody,
        /// Released when the body ends or the client goes away.
        in_flight: Option<InFlight>,
    },
    /// A body rampart generated (JSON error, admin answer); `None` once sent.
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// Whether the response's headers are already free of hop-by-hop ones: rampart's own
    /// HTTP/1.1 client leaves them out as it parses (`upstream::h1`).
    pub fn hop_by_hop_removed(&self) -> bool {
        match self {
            ResponseBody::Upstream { body, .. } => body.hop_by_hop_removed(),
            ResponseBody::Full(_) => false,
        }
    }

    /// A complete body held in memory.
    pub fn full(bytes: Bytes) -> Self {
        ResponseBody::Full(Some(bytes))
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::Upstream { body, in_flight } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(None | Some(Err(_))) = polled {
                    in_flight.take();
                }
                polled
            }
            ResponseBody::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream { body, .. } => body.is_end_stream(),
            ResponseBody::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream { body, .. } => body.size_hint(),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// The body of a request forwarded to an endpoint.
#[derive(Debug)]
pub enum RequestBody {
    /// The app's body, streamed (not replayable).
    Streaming(AppBody),
    /// A body buffered for replay (retries); cheap to clone.
    Buffered(Option<Bytes>),
    /// A body that outgrew the replay buffer: what was read, then the rest of the stream.
    Prefixed {
        /// Chunks already read while trying to buffer, sent first.
        prefix: std::collections::VecDeque<Bytes>,
        /// The remainder, streamed.
        rest: AppBody,
    },
}

impl RequestBody {
    /// An empty body (GET, CONNECT probes, health checks).
    pub fn empty() -> Self {
        RequestBody::Buffered(None)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Streaming(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Buffered(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            RequestBody::Prefixed { prefix, rest } => match prefix.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming(body) => body.is_end_stream(),
            RequestBody::Buffered(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            RequestBody::Prefixed { prefix, rest } => prefix.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming(body) => body.size_hint(),
            RequestBody::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Prefixed { prefix, rest } => {
                let read: u64 = prefix.iter().map(|b| b.len() as u64).sum();
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(read + rest.lower());
                if let Some(upper) = rest.upper() {
                    hint.set_upper(read + upper);
                }
                hint
            }
        }
    }
}
