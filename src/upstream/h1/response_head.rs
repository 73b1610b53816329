//! Parses an upstream's response head (httparse) into `http` types, and decides from it how
//! the body is framed (RFC 9112 §6.3) and whether the connection can carry another request.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode, Version};

use super::Error;
use crate::proxy::headers::{self, is_hop_by_hop};

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
    /// Status, version and end-to-end headers (hop-by-hop ones, and those `Connection`
    /// names, are left out); the body is attached by the caller.
    pub response: Response<()>,
    /// How its body is delimited.
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// Parses the final response head at the start of `buf`, consuming it (and any interim 1xx
/// heads before it). `Ok(None)`: more bytes are needed. `short_lived`: the head is dropped
/// once relayed (an HTTP/1 app), so it may be copied into the thread's
/// [`bytes_arena`](crate::bytes_arena) chunk; otherwise (an HTTP/2 app, whose HPACK table
/// keeps header values, or a health probe) it gets an allocation of its own.
pub(super) fn parse(
    buf: &mut BytesMut,
    method: &Method,
    short_lived: bool,
) -> Result<Option<Head>, Error> {
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
        // A reason other than the standard one ("520 Origin Error") is passed on as sent.
        let reason = parsed.reason.unwrap_or_default();
        let custom_reason = status
            .canonical_reason()
            .is_none_or(|r| r != reason)
            .then(|| hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).ok())
            .flatten();
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
        let head = if short_lived {
            crate::bytes_arena::copy(&buf[..len])
        } else {
            bytes::Bytes::copy_from_slice(&buf[..len])
        };
        // Built in place in the response, in this thread's spare map when there is one
        // (a request's, done with): no allocation for it then.
        let mut response = Response::new(());
        *response.headers_mut() = crate::spare_header_map::take();
        let headers = response.headers_mut();
        headers.reserve(parsed.headers.len() + 3);
        let mut facts = Facts::default();
        let mut named_by_connection = Vec::new();
        for h in parsed.headers.iter() {
            let (name, role) = header_name(h.name.as_bytes()).map_err(|_| Error::BadHeader)?;
            // Hop-by-hop headers are read here and never forwarded (RFC 9110 §7.6.1): they
            // stay out of the map rather than being removed from it later.
            match role {
                Role::EndToEnd => {}
                Role::ContentLength => facts.content_length(h.value),
                Role::TransferEncoding => {
                    facts.transfer_encoding(h.value);
                    continue;
                }
                Role::Connection => {
                    facts.connection(h.value);
                    headers::named_by_connection(h.value, &mut named_by_connection);
                    continue;
                }
                Role::HopByHop => continue,
            }
            let start = h.value.as_ptr() as usize - base;
            let value = HeaderValue::from_maybe_shared(head.slice(start..start + h.value.len()))
                .map_err(|_| Error::BadHeader)?;
            headers.append(name, value);
        }
        for name in named_by_connection {
            headers.remove(name);
        }
        buf.advance(len);
        let (framing, delimited) = facts.framing(method, status)?;
        let keep_alive = delimited && facts.keeps_alive(version);
        if facts.transfer_encoding.is_some() && facts.length.is_some() {
            // RFC 9112 §6.3: Transfer-Encoding wins, and an intermediary removes the
            // Content-Length before forwarding (the app would otherwise frame by it).
            headers.remove(CONTENT_LENGTH);
        }
        *response.status_mut() = status;
        *response.version_mut() = version;
        if let Some(phrase) = custom_reason {
            response.extensions_mut().insert(phrase);
        }
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}

/// What a response header means to the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Forwarded, and says nothing about framing.
    EndToEnd,
    /// Forwarded, and frames the body.
    ContentLength,
    /// Hop-by-hop, and frames the body.
    TransferEncoding,
    /// Hop-by-hop, and says whether the connection stays open and which other headers are
    /// hop-by-hop.
    Connection,
    /// Hop-by-hop, nothing else.
    HopByHop,
}

impl Role {
    /// The general path, for a name the quick match in [`header_name`] does not know.
    fn of(name: &HeaderName) -> Self {
        if name == CONTENT_LENGTH {
            Self::ContentLength
        } else if name == TRANSFER_ENCODING {
            Self::TransferEncoding
        } else if name == CONNECTION {
            Self::Connection
        } else if is_hop_by_hop(name) {
            Self::HopByHop
        } else {
            Self::EndToEnd
        }
    }
}

/// The header names most responses carry, as upstreams spell them (nginx, Go, Node,
/// Envoy, Java), with their [`Role`]: one comparison of bytes each, where
/// `HeaderName::from_bytes` lowercases the name into a scratch buffer and then matches it
/// (about 150 instructions a line, callgrind), and the role would take up to a dozen
/// comparisons of the result. Anything else, in any case, takes that general path; the
/// result is the same.
fn header_name(raw: &[u8]) -> Result<(HeaderName, Role), http::header::InvalidHeaderName> {
    use Role::{Connection, ContentLength, EndToEnd, HopByHop, TransferEncoding};
    use http::header;
    Ok(match raw {
        b"Content-Type" | b"content-type" => (header::CONTENT_TYPE, EndToEnd),
        b"Content-Length" | b"content-length" => (CONTENT_LENGTH, ContentLength),
        b"Date" | b"date" => (header::DATE, EndToEnd),
        b"Server" | b"server" => (header::SERVER, EndToEnd),
        b"Connection" | b"connection" => (CONNECTION, Connection),
        b"Keep-Alive" | b"keep-alive" => (headers::KEEP_ALIVE, HopByHop),
        b"Transfer-Encoding" | b"transfer-encoding" => (TRANSFER_ENCODING, TransferEncoding),
        b"Cache-Control" | b"cache-control" => (header::CACHE_CONTROL, EndToEnd),
        b"ETag" | b"Etag" | b"etag" => (header::ETAG, EndToEnd),
        b"Last-Modified" | b"last-modified" => (header::LAST_MODIFIED, EndToEnd),
        b"Vary" | b"vary" => (header::VARY, EndToEnd),
        b"Content-Encoding" | b"content-encoding" => (header::CONTENT_ENCODING, EndToEnd),
        b"Accept-Ranges" | b"accept-ranges" => (header::ACCEPT_RANGES, EndToEnd),
        b"Set-Cookie" | b"set-cookie" => (header::SET_COOKIE, EndToEnd),
        b"Location" | b"location" => (header::LOCATION, EndToEnd),
        b"X-Request-Id" | b"X-Request-ID" | b"x-request-id" => (headers::X_REQUEST_ID, EndToEnd),
        _ => {
            let name = HeaderName::from_bytes(raw)?;
            let role = Role::of(&name);
            (name, role)
        }
    })
}

/// What the framing and connection headers say, noted while the headers are built (no
/// lookups afterwards).
#[derive(Debug, Default)]
struct Facts {
    /// `Transfer-Encoding` is present; whether its final coding is `chunked`.
    transfer_encoding: Option<bool>,
    /// Every `Content-Length` value agreed on this; `Err` when one was invalid or differed.
    length: Option<Result<u64, ()>>,
    close: bool,
    keep_alive: bool,
}

impl Facts {
    fn content_length(&mut self, value: &[u8]) {
        for part in headers::list_elements(value) {
            let n = headers::parse_decimal(part).ok_or(());
            self.length = Some(match self.length {
                None => n,
                Some(Ok(l)) if n == Ok(l) => n,
                Some(_) => Err(()),
            });
        }
    }

    fn transfer_encoding(&mut self, value: &[u8]) {
        // The final coding over all lines decides; a line of only commas changes nothing.
        if let Some(last) = headers::list_elements(value).rfind(|t| !t.is_empty()) {
            self.transfer_encoding = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else {
            self.transfer_encoding.get_or_insert(false);
        }
    }

    fn connection(&mut self, value: &[u8]) {
        for token in headers::list_elements(value) {
            self.close |= token.eq_ignore_ascii_case(b"close");
            self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }

    /// The body's framing, and whether its end is known without the connection closing.
    fn framing(&self, method: &Method, status: StatusCode) -> Result<(Framing, bool), Error> {
        if *method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((Framing::Empty, true));
        }
        // Transfer-Encoding overrides Content-Length; chunked only as the final coding,
        // anything else runs to the close. Both present is a smuggling pattern (RFC 9112
        // §6.3): the body is read by the chunks, the connection is not reused.
        match (self.transfer_encoding, self.length) {
            (Some(true), Some(_)) => Ok((Framing::Chunked, false)),
            (Some(true), None) => Ok((Framing::Chunked, true)),
            (Some(false), _) => Ok((Framing::Eof, false)),
            (None, Some(Ok(0))) => Ok((Framing::Empty, true)),
            (None, Some(Ok(n))) => Ok((Framing::Length(n), true)),
            (None, Some(Err(()))) => Err(Error::BadLength),
            (None, None) => Ok((Framing::Eof, false)),
        }
    }

    /// HTTP/1.1 stays open unless `Connection: close`; HTTP/1.0 only with `keep-alive`
    /// and without Transfer-Encoding (which HTTP/1.0 does not have: faulty framing, RFC 9112
    /// §6.1). `close` always wins.
    fn keeps_alive(&self, version: Version) -> bool {
        if version == Version::HTTP_10 {
            self.keep_alive && !self.close && self.transfer_encoding.is_none()
        } else {
            !self.close
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(text: &str, method: Method) -> Result<Option<Head>, Error> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse(&mut buf, &method, true)
    }

    #[test]
    fn common_header_names_read_as_the_general_parser_reads_them() {
        let spellings: &[&[u8]] = &[
            b"Content-Type",
            b"content-type",
            b"Content-Length",
            b"content-length",
            b"Date",
            b"date",
            b"Server",
            b"server",
            b"Connection",
            b"connection",
            b"Keep-Alive",
            b"keep-alive",
            b"Transfer-Encoding",
            b"transfer-encoding",
            b"Cache-Control",
            b"cache-control",
            b"ETag",
            b"Etag",
            b"etag",
            b"Last-Modified",
            b"last-modified",
            b"Vary",
            b"vary",
            b"Content-Encoding",
            b"content-encoding",
            b"Accept-Ranges",
            b"accept-ranges",
            b"Set-Cookie",
            b"set-cookie",
            b"Location",
            b"location",
            b"X-Request-Id",
            b"X-Request-ID",
            b"x-request-id",
            // The general path: other names, other spellings, and invalid ones.
            b"CONTENT-TYPE",
            b"X-Custom",
            b"x-a",
            b"bad name",
            b"",
            b"TE",
            b"Trailer",
            b"Upgrade",
            b"Proxy-Connection",
            b"CONNECTION",
            b"TRANSFER-ENCODING",
            b"Content-length",
        ];
        for raw in spellings {
            let general = HeaderName::from_bytes(raw).map(|n| {
                let role = Role::of(&n);
                (n, role)
            });
            assert_eq!(
                header_name(raw).map_err(|_| ()),
                general.map_err(|_| ()),
                "{raw:?}"
            );
        }
        // The general path's roles, against the hop-by-hop list they come from.
        assert_eq!(Role::of(&CONTENT_LENGTH), Role::ContentLength);
        assert_eq!(Role::of(&TRANSFER_ENCODING), Role::TransferEncoding);
        assert_eq!(Role::of(&CONNECTION), Role::Connection);
        assert_eq!(Role::of(&http::header::TE), Role::HopByHop);
        assert_eq!(Role::of(&http::header::UPGRADE), Role::HopByHop);
        assert_eq!(Role::of(&http::header::CONTENT_TYPE), Role::EndToEnd);
    }

    #[test]
    fn a_plain_response_keeps_its_headers_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nok\n"[..],
        );
        let head = parse(&mut buf, &Method::GET, false).unwrap().unwrap();
        assert_eq!(head.response.status(), 200);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        let h = head.response.headers();
        assert_eq!(h["server"], "nginx");
        let xa: Vec<_> = h.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(&buf[..], b"ok\n");
    }

    /// Hop-by-hop headers, and those `Connection` names (before or after it), are read for
    /// framing and keep-alive but never reach the map; end-to-end ones keep their order.
    #[test]
    fn hop_by_hop_headers_are_read_but_left_out() {
        let head = parse_all(
            "HTTP/1.1 200 OK\r\nX-Private: 1\r\nConnection: keep-alive, X-Private, close\r\n\
             Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\
             Upgrade: h2c\r\nX-Kept: a\r\nconnection: x-late\r\nX-Late: 2\r\nX-Kept: b\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((head.framing, head.keep_alive), (Framing::Chunked, false));
        let names: Vec<_> = head.response.headers().iter().collect();
        assert_eq!(
            names,
            [
                (
                    &HeaderName::from_static("x-kept"),
                    &HeaderValue::from_static("a")
                ),
                (
                    &HeaderName::from_static("x-kept"),
                    &HeaderValue::from_static("b")
                ),
            ]
        );
    }

    #[test]
    fn a_non_standard_reason_is_kept() {
        let reason = |text: &str| {
            let head = parse_all(text, Method::GET).unwrap().unwrap();
            let phrase = head.response.extensions().get::<hyper::ext::ReasonPhrase>();
            phrase.map(|p| String::from_utf8(p.as_bytes().to_vec()).unwrap())
        };
        assert_eq!(
            reason("HTTP/1.1 520 Origin Error\r\nContent-Length: 0\r\n\r\n").as_deref(),
            Some("Origin Error")
        );
        assert_eq!(
            reason("HTTP/1.1 429 Slow Down\r\nContent-Length: 0\r\n\r\n").as_deref(),
            Some("Slow Down")
        );
        assert_eq!(reason("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), None);
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
            (Framing::Chunked, false)
        );
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::GET
            ),
            (Framing::Eof, false)
        );
        // Transfer-Encoding wins, even over a Content-Length that would be an error alone;
        // the Content-Length is removed and the connection not reused.
        let both = parse_all(
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((both.framing, both.keep_alive), (Framing::Chunked, false));
        assert!(!both.response.headers().contains_key(CONTENT_LENGTH));
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
        assert!(!ka(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
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
