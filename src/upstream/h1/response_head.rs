//! Parses an upstream's response head (httparse) into `http` types, and decides from it how
//! the body is framed (RFC 9112 §6.3) and whether the connection can carry another request.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};

use super::Error;

/// Most header lines accepted in a response head (hyper's default too).
pub(super) const MAX_HEADERS: usize = 100;
/// Largest response head accepted, in bytes (about hyper's default read limit).
pub(super) const MAX_HEAD_BYTES: usize = 400 * 1024;

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    Eof,
}

/// A final response head.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers; the body is attached by the caller.
    pub response: Response<()>,
    /// How its body is delimited.
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// Parses the final response head at the start of `buf`, consuming it (and any interim 1xx
/// heads before it). `Ok(None)`: more bytes are needed.
pub(super) fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, Error> {
    loop {
        // Uninitialised slots: zeroing 100 of them would cost more than parsing a short head.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(Error::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(Error::Parse(e)),
        };
        let code = parsed.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| Error::BadStatus)?;
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: the final head follows. 101 would switch
            // protocols, which rampart never asks for (it strips `Upgrade`).
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(Error::BadStatus);
            }
            buf.advance(len);
            continue;
        }
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // One copy of the head: header values are slices of it, and the read buffer stays
        // unshared, so it is reused for the next response instead of reallocated.
        let base = buf.as_ptr() as usize;
        let head = Bytes::copy_from_slice(&buf[..len]);
        let mut headers = HeaderMap::with_capacity(parsed.headers.len() + 3);
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Error::BadHeader)?;
            let start = h.value.as_ptr() as usize - base;
            let value = HeaderValue::from_maybe_shared(head.slice(start..start + h.value.len()))
                .map_err(|_| Error::BadHeader)?;
            headers.append(name, value);
        }
        buf.advance(len);
        let (framing, delimited) = framing(method, status, &headers)?;
        let keep_alive = delimited && keeps_alive(version, &headers);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// The body's framing, and whether its end is known without the connection closing.
fn framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(Framing, bool), Error> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        // Chunked only when it is the final coding; anything else runs to the close.
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty());
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => (Framing::Chunked, true),
            _ => (Framing::Eof, false),
        });
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
        {
            let n = parse_decimal(part).ok_or(Error::BadLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::BadLength);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Eof, false),
    })
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// HTTP/1.1 stays open unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &[u8]| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    if version == Version::HTTP_10 {
        has(b"keep-alive")
    } else {
        !has(b"close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &str, method: Method) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse(&mut buf, &method)
    }

    #[test]
    fn a_plain_response_keeps_its_headers_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nok\n"[..],
        );
        let head = parse(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.response.status(), 200);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        let h = head.response.headers();
        assert_eq!(h["server"], "nginx");
        let xa: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(&buf[..], b"ok\n");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(
            parse_all("HTTP/1.1 200 OK\r\nContent-Le", Method::GET)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn interim_responses_are_skipped_but_101_is_refused() {
        let head = parse_all(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            Method::POST,
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.response.status(), 201);
        assert_eq!(head.framing, Framing::Empty);
        assert!(matches!(
            parse_all("HTTP/1.1 101 Switching Protocols\r\n\r\n", Method::GET),
            Err(Error::BadStatus)
        ));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |text: &str, method: Method| {
            let h = parse_all(text, method).unwrap().unwrap();
            (h.framing, h.keep_alive)
        };
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::HEAD),
            (Framing::Empty, true)
        );
        assert_eq!(
            f("HTTP/1.1 304 Not Modified\r\n\r\n", Method::GET),
            (Framing::Empty, true)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 4\r\n\r\n",
                Method::GET
            ),
            (Framing::Chunked, true)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::GET
            ),
            (Framing::Eof, false)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\n\r\n", Method::GET),
            (Framing::Eof, false)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                Method::GET
            ),
            (Framing::Length(5), true)
        );
        assert!(matches!(
            parse_all(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Method::GET
            ),
            Err(Error::BadLength)
        ));
        assert!(matches!(
            parse_all("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", Method::GET),
            Err(Error::BadLength)
        ));
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |text: &str| parse_all(text, Method::GET).unwrap().unwrap().keep_alive;
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(ka(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn oversized_and_malformed_heads_are_errors() {
        // Still no end of head after the limit.
        let big = format!(
            "HTTP/1.1 200 OK\r\nx-filler: {}",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert!(matches!(
            parse_all(&big, Method::GET),
            Err(Error::HeadTooLarge)
        ));
        assert!(matches!(
            parse_all("HTTP/1.1 2x0 OK\r\n\r\n", Method::GET),
            Err(Error::Parse(_))
        ));
    }
}
