//! Reads a request head for rampart's own HTTP/1.1 loop and decides whether the loop serves
//! it: HTTP/1.1, no body, and nothing that changes how the exchange is framed (`HEAD`,
//! `CONNECT`, `Upgrade`, `Expect`, `TE`). Everything else, malformed heads included, goes to
//! hyper untouched, which answers it as it answers every request it reads.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::proxy::headers::list_elements;

/// Header lines the loop parses; a head with more goes to hyper, which applies
/// `limits.max_request_headers` (431 past it).
pub const MAX_HEADERS: usize = 100;

/// What a frozen run of read bytes holds at its start.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per head and taken apart at once; a box would cost an allocation per request"
)]
pub enum Parsed {
    /// No complete head yet.
    Partial,
    /// A request the loop serves.
    Simple {
        /// Its head.
        request: Request<()>,
        /// The app asked for the connection to close after it.
        close: bool,
        /// The head's length: what follows it is the next request's.
        len: usize,
    },
    /// A head for hyper, which is to read these bytes as they are.
    Other,
}

/// Parses the head at the start of `data`; the request's header values are slices of it, so
/// no byte is copied. The headers go into `map` (the connection's last response's, emptied)
/// when there is one.
pub fn parse(data: &Bytes, max_headers: usize, map: &mut Option<HeaderMap>) -> Parsed {
    if head_end(data, 0).is_none() {
        return Parsed::Partial;
    }
    match build(data, max_headers, map) {
        Some((request, close, len)) => Parsed::Simple {
            request,
            close,
            len,
        },
        None => Parsed::Other,
    }
}

/// Whether `buf[from..]` holds the empty line that ends a head (bare LF line ends count, as
/// httparse accepts them). `from`: how much of `buf` an earlier call saw without one, so a
/// client sending a byte at a time costs a byte's scan per read.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.saturating_sub(2);
    memchr::memchr_iter(b'\n', &buf[from..]).find_map(|i| match buf.get(from + i + 1..) {
        Some([b'\n', ..]) => Some(from + i + 2),
        Some([b'\r', b'\n', ..]) => Some(from + i + 3),
        _ => None,
    })
}

/// Whether `start`, the beginning of a head that has not ended yet, can already be no
/// request at all (a TLS hello, a stray protocol): hyper answers those 400 at once rather
/// than when a blank line or the header timeout comes.
pub fn hopeless(start: &[u8]) -> bool {
    // No header slots: a header line stops the parse with `TooManyHeaders`, which is fine.
    let mut parsed = httparse::Request::new(&mut []);
    matches!(parsed.parse(start), Err(e) if e != httparse::Error::TooManyHeaders)
}

/// The request at the start of `head` and the head's length, or `None` when hyper should
/// have it (httparse's `Complete` ends the head: blank lines before a request line are
/// skipped by httparse, so the first empty line is not always the end).
fn build(
    head: &Bytes,
    max_headers: usize,
    map: &mut Option<HeaderMap>,
) -> Option<(Request<()>, bool, usize)> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let slots = &mut slots[..max_headers.min(MAX_HEADERS)];
    let mut parsed = httparse::Request::new(&mut []);
    let httparse::Status::Complete(len) = parsed.parse_with_uninit_headers(head, slots).ok()?
    else {
        return None;
    };
    if parsed.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::HEAD || method == Method::CONNECT {
        return None;
    }
    let base = head.as_ptr() as usize;
    let slice = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        head.slice(start..start + s.len())
    };
    let uri = Uri::from_maybe_shared(slice(parsed.path?.as_bytes())).ok()?;

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    *headers = map.take().unwrap_or_else(crate::spare_header_map::take);
    headers.reserve(parsed.headers.len());
    let mut close = false;
    let mut has_length = false;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == CONTENT_LENGTH {
            // `Content-Length: 0` is no body; any other length is one. Repeated, it is
            // forwarded once, as hyper forwards it.
            if h.value != b"0" {
                return None;
            }
            if std::mem::replace(&mut has_length, true) {
                continue;
            }
        } else if name == TRANSFER_ENCODING || name == UPGRADE || name == EXPECT || name == TE {
            return None;
        } else if name == CONNECTION {
            for token in list_elements(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return None;
                }
            }
        }
        let value = HeaderValue::from_maybe_shared(slice(h.value)).ok()?;
        headers.append(name, value);
    }
    Some((request, close, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &'static [u8]) -> Parsed {
        parse(&Bytes::from_static(bytes), MAX_HEADERS, &mut None)
    }

    #[test]
    fn a_plain_get_is_served_with_its_headers_and_its_length() {
        let head = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n";
        let mut wire = head.to_vec();
        wire.extend_from_slice(b"GET /next");
        let parsed = parse(&Bytes::from(wire), MAX_HEADERS, &mut None);
        let Parsed::Simple {
            request,
            close,
            len,
        } = parsed
        else {
            panic!("{parsed:?}")
        };
        assert!(!close);
        assert_eq!(len, head.len());
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=1");
        assert_eq!(request.headers()["host"], "x");
        let two: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
        assert_eq!(
            request.headers().get_all("content-length").iter().count(),
            1
        );
    }

    #[test]
    fn blank_lines_before_a_request_are_part_of_its_length() {
        // The first empty line is not the head's end here: httparse skips it.
        let head = b"\r\n\r\nDELETE /x HTTP/1.1\r\nHost: svc\r\n\r\n";
        let Parsed::Simple { request, len, .. } = parse_all(head) else {
            panic!()
        };
        assert_eq!(request.method(), Method::DELETE);
        assert_eq!(len, head.len());
        // With the request line still incomplete, hyper gets the bytes.
        assert!(matches!(parse_all(b"\r\n\r\nDELETE /x HT"), Parsed::Other));
    }

    #[test]
    fn absolute_form_bare_lf_and_connection_close_are_served() {
        let parsed = parse_all(
            b"DELETE http://svc:8080/x HTTP/1.1\nHost: svc\nConnection: keep-alive, Close\n\n",
        );
        let Parsed::Simple { request, close, .. } = parsed else {
            panic!("{parsed:?}")
        };
        assert!(close);
        assert_eq!(request.uri().host(), Some("svc"));
        assert_eq!(request.uri().path(), "/x");
    }

    #[test]
    fn an_incomplete_head_waits() {
        assert!(matches!(
            parse_all(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
    }

    #[test]
    fn the_end_of_a_head_arriving_a_byte_at_a_time_is_found_once() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
        let mut scanned = 0;
        for i in 1..=head.len() {
            match head_end(&head[..i], scanned) {
                None => {
                    assert!(i < 27, "{i}");
                    scanned = i;
                }
                Some(end) => {
                    assert_eq!((i, end), (27, 27));
                    return;
                }
            }
        }
        panic!("no end found");
    }

    #[test]
    fn garbage_is_hopeless_at_once_and_a_head_in_progress_is_not() {
        assert!(hopeless(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"));
        assert!(hopeless(b"GET / SPDY/3\r\n"));
        assert!(!hopeless(b"GE"));
        assert!(!hopeless(b"GET /a HTTP/1.1\r\nHost: x\r\nAcc"));
    }

    #[test]
    fn bodies_upgrades_and_odd_heads_go_to_hyper() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\nTE: trailers\r\n\r\n",
            b"HEAD / HTTP/1.1\r\n\r\n",
            b"CONNECT svc:443 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"NOT A REQUEST\r\n\r\n",
        ] {
            let parsed = parse(&Bytes::copy_from_slice(head), MAX_HEADERS, &mut None);
            assert!(
                matches!(parsed, Parsed::Other),
                "{:?}: {parsed:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn more_headers_than_the_limit_go_to_hyper() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..5 {
            head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let head = Bytes::from(head);
        assert!(matches!(parse(&head, 4, &mut None), Parsed::Other));
        assert!(matches!(parse(&head, 5, &mut None), Parsed::Simple { .. }));
    }
}
