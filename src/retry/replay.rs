//! Request-body replay: bodies up to `retry.max_body_bytes` are buffered so a retry can send
//! them again; larger ones stream through untouched and the request is simply not retried
//! (counted as `body_too_large`), never failed. Nothing is buffered for a request that can
//! have only one try.

use std::collections::VecDeque;

use crate::proxy::app_body::AppBody;
use crate::proxy::body::RequestBody;
use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

/// A request body ready for the tries.
#[derive(Debug)]
pub enum Replay {
    /// The whole body is in memory (or there is none): every try can send it.
    Buffered(Option<Bytes>),
    /// Too large to buffer: only one try can send it.
    Streaming(RequestBody),
    /// A streaming body after its one try.
    Spent,
}

impl Replay {
    /// The body for one try; `None` when a streaming body was already used.
    pub fn take(&mut self) -> Option<RequestBody> {
        match self {
            Replay::Buffered(bytes) => Some(RequestBody::Buffered(bytes.clone())),
            Replay::Streaming(_) => match std::mem::replace(self, Replay::Spent) {
                Replay::Streaming(body) => Some(body),
                _ => None,
            },
            Replay::Spent => None,
        }
    }

    /// True when a further try could send the body again.
    pub fn is_replayable(&self) -> bool {
        matches!(self, Replay::Buffered(_))
    }
}

/// Reads up to `max` bytes of `body` into memory; past that, returns what was read followed
/// by the rest as a stream.
pub async fn prepare(body: AppBody, max: u64) -> Result<Replay, hyper::Error> {
    if body.is_end_stream() {
        return Ok(Replay::Buffered(None));
    }
    if body.size_hint().lower() > max {
        return Ok(Replay::Streaming(RequestBody::Streaming(body)));
    }
    let mut body = body;
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            // Trailers: forwarded bodies with trailers are not replayed.
            continue;
        };
        total += data.len() as u64;
        chunks.push_back(data);
        if total > max {
            return Ok(Replay::Streaming(RequestBody::Prefixed {
                prefix: chunks,
                rest: body,
            }));
        }
    }
    Ok(Replay::Buffered(match chunks.len() {
        0 => None,
        1 => chunks.pop_front(),
        _ => {
            let mut all = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
            for chunk in chunks {
                all.extend_from_slice(&chunk);
            }
            Some(all.freeze())
        }
    }))
}
