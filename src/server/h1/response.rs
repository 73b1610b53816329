//! Writes a response head for rampart's own HTTP/1.1 loop, by the rules hyper's server
//! applies to the same response: framing from the `Content-Length` header or the body's
//! exact size, chunked otherwise; none for 204 and 304; `date` added when missing;
//! `connection: close` added when the connection ends after this response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderValue, StatusCode};

use crate::proxy::headers::{list_elements, parse_decimal};

/// How the body after a head is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: none, the body is not read).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a response cannot be written as it is (hyper refuses the same ones and closes).
#[derive(Debug, PartialEq, Eq)]
pub struct Unwritable;

/// What the body says of its own length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// It has ended already.
    Empty,
    /// Exactly this many bytes.
    Known(u64),
    /// Not known until it ends.
    Unknown,
}

/// Appends the head of `parts` to `dst`. `close`: the connection ends after this response.
/// Returns the body's framing and whether the response itself asks to close.
pub fn encode(
    parts: &Parts,
    body: BodyLen,
    close: bool,
    dst: &mut Vec<u8>,
) -> Result<(Framing, bool), Unwritable> {
    let status = parts.status;
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    if status == StatusCode::OK && reason.is_none() {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        dst.extend_from_slice(b"HTTP/1.1 ");
        dst.extend_from_slice(status.as_str().as_bytes());
        dst.push(b' ');
        match reason {
            Some(reason) => dst.extend_from_slice(reason.as_bytes()),
            None => dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
        }
        dst.extend_from_slice(b"\r\n");
    }
    // 204 and 304 have no body (RFC 9112 §6.3); rampart never answers 1xx through here.
    let bodiless = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut framing = None;
    let mut wrote_date = false;
    let mut asks_close = false;
    // Where the `connection` line ends, once written.
    let mut connection_end: Option<usize> = None;
    for (name, value) in &parts.headers {
        if *name == CONTENT_LENGTH {
            match body {
                // A length for a body that has none (a 304's, say) is left out.
                BodyLen::Empty => continue,
                // The body's own length frames it; the first header is trusted to agree.
                BodyLen::Known(n) => {
                    if framing.is_some() {
                        continue;
                    }
                    framing = Some(Framing::Length(n));
                }
                BodyLen::Unknown => {
                    let n = length(value)?;
                    match framing {
                        Some(Framing::Length(m)) if m == n => continue,
                        Some(_) => return Err(Unwritable),
                        None => framing = Some(Framing::Length(n)),
                    }
                }
            }
        } else if *name == TRANSFER_ENCODING {
            // Hop-by-hop: stripped from every response rampart relays; the body frames it.
            continue;
        } else if *name == TRAILER && bodiless {
            continue;
        } else if *name == CONNECTION {
            asks_close |= list_elements(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"));
            // Several values go on one line, as hyper writes them (a map yields them in a row).
            if connection_end.is_some() {
                dst.truncate(dst.len() - 2);
                dst.extend_from_slice(b", ");
            } else {
                dst.extend_from_slice(b"connection: ");
            }
            dst.extend_from_slice(value.as_bytes());
            dst.extend_from_slice(b"\r\n");
            connection_end = Some(dst.len());
            continue;
        } else if *name == DATE {
            wrote_date = true;
        }
        line(dst, name.as_str().as_bytes(), value);
    }
    if close && !asks_close {
        match connection_end {
            Some(end) => drop(dst.splice(end - 2..end - 2, *b", close")),
            None => dst.extend_from_slice(b"connection: close\r\n"),
        }
    }
    let framing = match (framing, body) {
        _ if bodiless => Framing::Length(0),
        (Some(framing), _) => framing,
        (None, BodyLen::Empty) => {
            dst.extend_from_slice(b"content-length: 0\r\n");
            Framing::Length(0)
        }
        (None, BodyLen::Known(len)) => {
            dst.extend_from_slice(b"content-length: ");
            dst.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            dst.extend_from_slice(b"\r\n");
            Framing::Length(len)
        }
        (None, BodyLen::Unknown) => {
            dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
    };
    if !wrote_date {
        dst.extend_from_slice(b"date: ");
        extend_date(dst);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    Ok((framing, asks_close))
}

fn line(dst: &mut Vec<u8>, name: &[u8], value: &HeaderValue) {
    dst.extend_from_slice(name);
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

fn length(value: &HeaderValue) -> Result<u64, Unwritable> {
    parse_decimal(value.as_bytes()).ok_or(Unwritable)
}

/// Appends the chunk-size line of a chunk of `len` bytes.
pub fn chunk_size(dst: &mut Vec<u8>, len: usize) {
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        dst.push(b"0123456789abcdef"[(len >> (i * 4)) & 0xf]);
    }
    dst.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `date` value of the current second, formatted once per second.
    static DATE_NOW: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the current time as an HTTP date (only responses without a `date` need one;
/// upstreams send theirs).
fn extend_date(dst: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE_NOW.with_borrow_mut(|(second, text)| {
        if *second != secs {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *second = secs;
            } else {
                dst.extend_from_slice(formatted.as_bytes());
                return;
            }
        }
        dst.extend_from_slice(text);
    });
}

#[cfg(test)]
mod tests {
    use http::Response;

    use super::*;

    fn head(response: Response<()>, body: BodyLen, close: bool) -> (String, Framing, bool) {
        let (parts, ()) = response.into_parts();
        let mut dst = Vec::new();
        let (framing, asks_close) = encode(&parts, body, close, &mut dst).unwrap();
        (String::from_utf8(dst).unwrap(), framing, asks_close)
    }

    fn without_date(text: &str) -> String {
        text.split("\r\n")
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[test]
    fn a_known_length_without_the_header_gets_one_and_a_date() {
        let (text, framing, _) = head(Response::new(()), BodyLen::Known(3), false);
        assert_eq!(framing, Framing::Length(3));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ndate: "));
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        let date = text.lines().find(|l| l.starts_with("date: ")).unwrap();
        assert!(httpdate::parse_http_date(&date[6..]).is_ok(), "{date}");
    }

    #[test]
    fn the_upstreams_length_and_date_are_kept_and_an_unknown_length_is_chunked() {
        let response = Response::builder()
            .status(404)
            .header("content-length", "12")
            .header("date", "Tue, 01 Dec 2026 10:00:00 GMT")
            .header("x-a", "1")
            .body(())
            .unwrap();
        let (text, framing, _) = head(response, BodyLen::Unknown, false);
        assert_eq!(framing, Framing::Length(12));
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\nx-a: 1\r\n\r\n"
        );

        let (text, framing, _) = head(Response::new(()), BodyLen::Unknown, false);
        assert_eq!(framing, Framing::Chunked);
        assert_eq!(
            without_date(&text),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn closing_is_said_once_and_a_custom_reason_is_kept() {
        let mut response = Response::builder()
            .status(520)
            .header("connection", "keep-alive")
            .header("x-after", "1")
            .header("content-length", "0")
            .body(())
            .unwrap();
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Origin Error"));
        let (text, _, asks) = head(response, BodyLen::Empty, true);
        assert!(!asks);
        assert!(
            text.starts_with(
                "HTTP/1.1 520 Origin Error\r\nconnection: keep-alive, close\r\nx-after: 1\r\ncontent-length: 0\r\n"
            ),
            "{text}"
        );

        let response = Response::builder()
            .header("connection", "close")
            .body(())
            .unwrap();
        let (text, _, asks) = head(response, BodyLen::Empty, true);
        assert!(asks);
        assert_eq!(text.matches("close").count(), 1, "{text}");
    }

    #[test]
    fn no_content_and_not_modified_have_no_body_and_bad_lengths_are_refused() {
        let response = Response::builder()
            .status(304)
            .header("etag", "\"x\"")
            .body(())
            .unwrap();
        let (text, framing, _) = head(response, BodyLen::Empty, false);
        assert_eq!(framing, Framing::Length(0));
        assert!(
            !text.contains("content-length") && !text.contains("chunked"),
            "{text}"
        );

        for value in ["abc", "", "-1"] {
            let (parts, ()) = Response::builder()
                .header("content-length", value)
                .body(())
                .unwrap()
                .into_parts();
            let result = encode(&parts, BodyLen::Unknown, false, &mut Vec::new());
            assert_eq!(result, Err(Unwritable), "{value}");
        }
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for (len, text) in [
            (0, "0\r\n"),
            (10, "a\r\n"),
            (4096, "1000\r\n"),
            (255, "ff\r\n"),
        ] {
            let mut dst = Vec::new();
            chunk_size(&mut dst, len);
            assert_eq!(dst, text.as_bytes());
        }
    }
}
