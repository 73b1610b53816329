//! An upstream response body read straight from its connection, which it owns until the
//! body ends; then the connection can serve another request.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{Chunked, Step};
use super::response_head::Framing;
use super::{Error, H1Conn, take};

/// Where the body is.
#[derive(Debug)]
enum State {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes.
    Eof,
    Done,
}

/// The body of a response from an [`H1Conn`].
#[derive(Debug)]
pub struct H1Body {
    /// `None` once the connection broke or was taken back.
    conn: Option<H1Conn>,
    state: State,
    keep_alive: bool,
}

impl H1Body {
    pub(super) fn new(conn: H1Conn, framing: Framing, keep_alive: bool) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::Eof => State::Eof,
        };
        Self {
            conn: Some(conn),
            state,
            keep_alive,
        }
    }

    /// The connection, once the body has been read to its end and the connection can carry
    /// another request (kept alive, nothing unread after the body).
    pub fn take_idle(&mut self) -> Option<H1Conn> {
        let done = matches!(self.state, State::Done);
        if done && self.keep_alive && self.conn.as_ref().is_some_and(|c| c.read_buf.is_empty()) {
            self.conn.take()
        } else {
            None
        }
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.conn = None;
        self.state = State::Done;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !conn.read_buf.is_empty() {
                        let n = usize::try_from(*left)
                            .map_or(conn.read_buf.len(), |l| l.min(conn.read_buf.len()));
                        *left -= n as u64;
                        if *left == 0 {
                            this.state = State::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(take(
                            &mut conn.read_buf,
                            n,
                            conn.copy_max,
                        )))));
                    }
                }
                State::Chunked(chunked) => match chunked.step(&mut conn.read_buf, conn.copy_max) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Trailers(trailers)) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Step::End) => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Step::More) => {}
                    Err(e) => return this.fail(e),
                },
                State::Eof => {
                    if !conn.read_buf.is_empty() {
                        let n = conn.read_buf.len();
                        return Poll::Ready(Some(Ok(Frame::data(take(
                            &mut conn.read_buf,
                            n,
                            conn.copy_max,
                        )))));
                    }
                }
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, State::Eof) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(Error::Closed),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            State::Chunked(_) | State::Eof => SizeHint::default(),
        }
    }
}
