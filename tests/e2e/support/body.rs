//! The one body type the helpers send and serve, and a generated body of N bytes that streams
//! chunk by chunk (large uploads and downloads without holding them in memory).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

pub type Body = BoxBody<Bytes, Infallible>;

const CHUNK: usize = 64 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// `len` bytes of a repeating `0..=250` pattern in 64 KiB chunks, with an exact size hint
/// (so HTTP/1.1 sends content-length).
pub fn generated(len: u64) -> Body {
    let pattern: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    Generated {
        remaining: len,
        chunk: Bytes::from(pattern),
    }
    .boxed()
}

struct Generated {
    remaining: u64,
    chunk: Bytes,
}

impl http_body::Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
