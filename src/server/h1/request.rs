//! Reads a request head for rampart's own HTTP/1.1 loop and decides whether the loop serves
//! it: HTTP/1.1, no body, and nothing that changes how the exchange is framed (`HEAD`,
//! `CONNECT`, `Upgrade`, `Expect`, `TE`). Everything else, malformed heads included, goes to
//! hyper untouched, which answers it as it answers every request it reads.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

use crate::proxy::headers::list_elements;

/// Header lines the loop parses; a head with more goes to hyper, which applies
/// `limits.max_request_headers` (431 past it).
pub const MAX_HEADERS: usize = 100;

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// No complete head yet.
    Partial,
    /// A request the loop serves.
    Simple {
        /// Its head.
        request: Request<()>,
        /// The app asked for the connection to close after it.
        close: bool,
    },
    /// A head for hyper: these bytes (the head and whatever followed it) are its to read.
    Other(Bytes),
}

/// Parses the head at the start of `buf`. A complete head leaves `buf`, holding only what
/// followed it; the request's header values are slices of it, so no byte is copied. The
/// headers go into `map` (the connection's last response's, emptied) when there is one.
/// `scanned`: how much of `buf` earlier calls found no head end in; updated.
pub fn parse(
    buf: &mut BytesMut,
    scanned: &mut usize,
    max_headers: usize,
    map: &mut Option<HeaderMap>,
) -> Parsed {
    // A head ends with an empty line; until one arrived nothing is parsed, and each read's
    // bytes are scanned once (a client sending a byte at a time costs a byte's scan per read).
    let from = scanned.saturating_sub(2);
    let Some(end) = head_end(&buf[from..]).map(|end| from + end) else {
        *scanned = buf.len();
        return Parsed::Partial;
    };
    *scanned = 0;
    let whole = buf.split().freeze();
    let Some((request, close)) = build(&whole, max_headers, map) else {
        return Parsed::Other(whole);
    };
    if whole.len() > end {
        // Pipelined: the next request's bytes go back for the next parse.
        buf.extend_from_slice(&whole[end..]);
    }
    Parsed::Simple { request, close }
}

/// Where the head ends (after its empty line), if it does within `buf`. Bare LF line ends
/// count as httparse accepts them.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1..) {
        Some([b'\n', ..]) => Some(i + 2),
        Some([b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    })
}

/// The request in `head`, or `None` when hyper should have it.
fn build(
    head: &Bytes,
    max_headers: usize,
    map: &mut Option<HeaderMap>,
) -> Option<(Request<()>, bool)> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let slots = &mut slots[..max_headers.min(MAX_HEADERS)];
    let mut parsed = httparse::Request::new(&mut []);
    let httparse::Status::Complete(_) = parsed.parse_with_uninit_headers(head, slots).ok()? else {
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
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == CONTENT_LENGTH {
            // `Content-Length: 0` is no body; any other length is one.
            if h.value != b"0" {
                return None;
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
    Some((request, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        let parsed = parse(&mut buf, &mut 0, MAX_HEADERS, &mut None);
        (parsed, buf)
    }

    #[test]
    fn a_plain_get_is_served_with_its_headers_and_pipelined_bytes_kept() {
        let (parsed, rest) = parse_all(
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\nContent-Length: 0\r\n\r\nGET /next",
        );
        let Parsed::Simple { request, close } = parsed else {
            panic!("{parsed:?}")
        };
        assert!(!close);
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=1");
        assert_eq!(request.headers()["host"], "x");
        let two: Vec<_> = request.headers().get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
        assert_eq!(&rest[..], b"GET /next");
    }

    #[test]
    fn absolute_form_bare_lf_and_connection_close_are_served() {
        let (parsed, _) = parse_all(
            b"DELETE http://svc:8080/x HTTP/1.1\nHost: svc\nConnection: keep-alive, Close\n\n",
        );
        let Parsed::Simple { request, close } = parsed else {
            panic!("{parsed:?}")
        };
        assert!(close);
        assert_eq!(request.uri().host(), Some("svc"));
        assert_eq!(request.uri().path(), "/x");
    }

    #[test]
    fn a_head_arriving_a_byte_at_a_time_ends_where_it_ends() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET";
        let mut buf = BytesMut::new();
        let mut scanned = 0;
        for (i, &byte) in head.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            match parse(&mut buf, &mut scanned, MAX_HEADERS, &mut None) {
                Parsed::Partial => assert!(i < 26, "{i}"),
                Parsed::Simple { request, .. } => {
                    assert_eq!(i, 26);
                    assert_eq!(request.headers()["host"], "x");
                    break;
                }
                Parsed::Other(_) => panic!("{i}"),
            }
        }
        assert_eq!(scanned, 0);
    }

    #[test]
    fn an_incomplete_head_waits_and_keeps_its_bytes() {
        let (parsed, rest) = parse_all(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(matches!(parsed, Parsed::Partial));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\nHost: x\r\n");
    }

    #[test]
    fn bodies_upgrades_and_odd_heads_go_to_hyper_with_every_byte() {
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
            let (parsed, rest) = parse_all(head);
            match parsed {
                Parsed::Other(bytes) => assert_eq!(&bytes[..], head),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(head)),
            }
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn more_headers_than_the_limit_go_to_hyper() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..5 {
            head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&head[..]);
        assert!(matches!(
            parse(&mut buf, &mut 0, 4, &mut None),
            Parsed::Other(_)
        ));
        let mut buf = BytesMut::from(&head[..]);
        assert!(matches!(
            parse(&mut buf, &mut 0, 5, &mut None),
            Parsed::Simple { .. }
        ));
    }
}
