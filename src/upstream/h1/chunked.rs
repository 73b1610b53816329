//! Decodes a `Transfer-Encoding: chunked` body (RFC 9112 §7.1) incrementally from the
//! connection's read buffer: chunk data is passed on as it arrives, trailers become a
//! trailers frame.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::Error;
use super::response_head::{MAX_HEAD_BYTES, MAX_HEADERS};

/// Longest chunk-size line accepted (size plus extensions).
const MAX_SIZE_LINE: usize = 4096;

/// Where in the chunked stream the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes left.
    Data(u64),
    /// After a chunk's data: expecting its CRLF.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// What one decoding step produced.
#[derive(Debug)]
pub(super) enum Step {
    /// Chunk data.
    Data(Bytes),
    /// The trailer fields (only when there are any).
    Trailers(HeaderMap),
    /// The body ended.
    End,
    /// The buffer holds no complete next piece: read more.
    More,
}

impl Chunked {
    /// Decodes the next piece from `buf`, consuming what it used; data pieces up to
    /// `copy_max` bytes are copied out of it.
    pub(super) fn step(&mut self, buf: &mut BytesMut, copy_max: usize) -> Result<Step, Error> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(eol) = find_crlf(buf, MAX_SIZE_LINE)? else {
                        return Ok(Step::More);
                    };
                    let size = parse_size(&buf[..eol])?;
                    buf.advance(eol + 2);
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    };
                    return Ok(Step::Data(super::take(buf, n, copy_max)));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::BadChunk);
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        *self = Chunked::Done;
                        return Ok(Step::End);
                    }
                    return self.trailers(buf);
                }
                Chunked::Done => return Ok(Step::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (len, fields) = match httparse::parse_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete(done)) => done,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(Error::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(Step::More),
            Err(e) => return Err(Error::Parse(e)),
        };
        let mut trailers = HeaderMap::with_capacity(fields.len());
        for field in fields {
            let name =
                HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| Error::BadHeader)?;
            let value = HeaderValue::from_bytes(field.value).map_err(|_| Error::BadHeader)?;
            trailers.append(name, value);
        }
        buf.advance(len);
        *self = Chunked::Done;
        Ok(Step::Trailers(trailers))
    }
}

/// The index of the first CRLF in `buf`, if one is within `limit` bytes.
fn find_crlf(buf: &[u8], limit: usize) -> Result<Option<usize>, Error> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i <= limit => Ok(Some(i)),
        Some(_) => Err(Error::BadChunk),
        None if buf.len() > limit => Err(Error::BadChunk),
        None => Ok(None),
    }
}

/// The hex chunk size of a size line (RFC 9112 §7.1): hex digits, optional whitespace, then
/// extensions after `;`, which are skipped but may hold no control characters.
fn parse_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (size, rest) = line.split_at(digits);
    let blank = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[blank..];
    let valid_rest = rest.is_empty()
        || (rest[0] == b';' && rest.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)));
    // Leading zeros do not count towards the 15 significant digits (60 bits).
    let significant = size.iter().skip_while(|&&b| b == b'0').count();
    if size.is_empty() || !valid_rest || significant > 15 {
        return Err(Error::BadChunk);
    }
    Ok(size.iter().fold(0u64, |n, &d| {
        n * 16 + u64::from((d as char).to_digit(16).unwrap_or_default())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns the data and the trailers.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, Option<HeaderMap>, usize), Error> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match state.step(&mut buf, crate::upstream::h1::COPY_MAX)? {
                Step::Data(d) => data.extend_from_slice(&d),
                Step::Trailers(t) => trailers = Some(t),
                Step::End => return Ok((data, trailers, buf.len())),
                Step::More => {
                    assert!(fed < input.len(), "decoder wants more after all input");
                    let end = (fed + piece).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunks_decode_whatever_the_read_sizes() {
        let input = b"5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 64] {
            let (data, trailers, left) = decode(input, piece).unwrap();
            assert_eq!(data, b"hello, world!!!", "piece {piece}");
            assert!(trailers.is_none());
            // Bytes after the body belong to the connection, not to this body.
            assert!(left <= 4);
        }
    }

    #[test]
    fn leading_zeros_and_whitespace_before_extensions_are_fine() {
        let (data, _, _) = decode(b"00000000000000000003 ;x=y\r\nabc\r\n0\r\n\r\n", 64).unwrap();
        assert_eq!(data, b"abc");
    }

    #[test]
    fn trailers_are_returned() {
        let (data, trailers, _) =
            decode(b"3\r\nabc\r\n0\r\ngrpc-status: 0\r\nx-t: 1\r\n\r\n", 5).unwrap();
        assert_eq!(data, b"abc");
        let trailers = trailers.unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["x-t"], "1");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"zz\r\nab\r\n0\r\n\r\n"[..],
            b"2\r\nabXY0\r\n\r\n",
            b"\r\n",
            b" 2\r\nab\r\n0\r\n\r\n",
            b"2\n\r\nab\r\n0\r\n\r\n",
            b"2;a\nb\r\nab\r\n0\r\n\r\n",
            b"2x\r\nab\r\n0\r\n\r\n",
            b"1234567890abcdef0\r\n",
        ] {
            assert!(matches!(decode(bad, 64), Err(Error::BadChunk)), "{bad:?}");
        }
        let long = vec![b'1'; MAX_SIZE_LINE + 10];
        assert!(matches!(decode(&long, 64), Err(Error::BadChunk)));
    }
}
