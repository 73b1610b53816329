//! The app's HTTP/1 request body as rampart reads it: frames pass through untouched, the
//! unread rest is tracked, and a body dropped unfinished (a local answer, a try that ended
//! early) is read to its end in the background when that is cheap, so the connection can
//! carry the next request. When it is not cheap, the answer says `Connection: close`.
//!
//! Without this, hyper closes an HTTP/1.1 connection whose request body was left unread
//! after a response that announced keep-alive, and an app reusing the connection at that
//! moment loses its next request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Version;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// A body with at most this much left unread is read to its end once rampart is done with it.
pub const DRAIN_LIMIT: u64 = 256 * 1024;
/// The longest such a read may take; past it the connection closes.
const DRAIN_TIME: Duration = Duration::from_secs(1);
/// The unread length when it is not known (chunked), or when the body must not be drained.
const UNKNOWN: u64 = u64::MAX;

/// The app's request body (see the module docs).
#[derive(Debug)]
pub struct AppBody {
    /// `None` once handed to the drain task.
    body: Option<Incoming>,
    /// Bytes left unread; `None` when nothing needs tracking (HTTP/2, or no body at all).
    unread: Option<Arc<AtomicU64>>,
}

/// What the answer needs to know about the request body: whether the connection must close.
#[derive(Clone, Debug, Default)]
pub struct Unread(Option<Arc<AtomicU64>>);

// === impl AppBody ===

impl AppBody {
    /// Wraps the body of a request of `version`; `expects`: it carries `Expect`.
    pub fn new(body: Incoming, version: Version, expects: bool) -> (Self, Unread) {
        // HTTP/2 streams end on their own; an empty body has nothing to drain.
        let track = version <= Version::HTTP_11 && !body.is_end_stream();
        // A client waiting for `100 Continue` (`expects`: the request carries `Expect`) does
        // not send the body after a final answer.
        let unread = track.then(|| {
            let left = if expects { UNKNOWN } else { left(&body) };
            Arc::new(AtomicU64::new(left))
        });
        let wrapped = Self {
            body: Some(body),
            unread: unread.clone(),
        };
        (wrapped, Unread(unread))
    }

    /// A request that has no body (rampart's own HTTP/1.1 loop reads only such).
    pub fn empty() -> Self {
        Self {
            body: None,
            unread: None,
        }
    }
}

/// What `body` still has to deliver, as far as its framing tells.
fn left(body: &Incoming) -> u64 {
    if body.is_end_stream() {
        0
    } else {
        body.size_hint().upper().unwrap_or(UNKNOWN)
    }
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *body).poll_frame(cx);
        if let Some(unread) = &this.unread {
            match &polled {
                Poll::Ready(None) => unread.store(0, Ordering::Relaxed),
                // Keep UNKNOWN for a body that must not be drained.
                Poll::Ready(Some(Ok(_))) if unread.load(Ordering::Relaxed) != UNKNOWN => {
                    unread.store(left(body), Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(_))) if body.is_end_stream() => {
                    unread.store(0, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for AppBody {
    fn drop(&mut self) {
        let (Some(unread), Some(body)) = (&self.unread, self.body.take()) else {
            return;
        };
        let left = unread.load(Ordering::Relaxed);
        if left == 0 || left > DRAIN_LIMIT {
            // Done, or too much to read for nothing: hyper closes the connection, and the
            // answer said so (`Unread::must_close`).
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads and discards what is left of `body`, within `DRAIN_TIME` and `DRAIN_LIMIT`.
async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DRAIN_LIMIT {
                return;
            }
        }
    })
    .await;
}

// === impl Unread ===

impl Unread {
    /// True when the request body is unfinished and too large (or of unknown length) to be
    /// read to its end: hyper will close the HTTP/1 connection after the answer, so the
    /// answer must say `Connection: close` or the app may send its next request into it.
    pub fn must_close(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|unread| unread.load(Ordering::Relaxed) > DRAIN_LIMIT)
    }
}
