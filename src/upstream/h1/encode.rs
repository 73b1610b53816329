//! Writes a request head and its in-memory body into one buffer, so a try goes out in one
//! `send`. Framing is rampart's: the body's length is known, and any `Content-Length` or
//! `Transfer-Encoding` the app sent is replaced by the exact one.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri};

/// Appends `METHOD target HTTP/1.1`, the headers, the framing and the body to `out`.
pub(super) fn request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&Bytes>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    // Origin-form: an empty path (`http://svc?x=1`) is `/`.
    let path = uri.path();
    out.extend_from_slice(if path.is_empty() {
        b"/"
    } else {
        path.as_bytes()
    });
    if let Some(query) = uri.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut had_length = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            had_length = true;
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let len = body.map_or(0, Bytes::len);
    // An empty body is announced only where the method normally has one (or the app said
    // so): `GET` with `Content-Length: 0` is legal but unusual.
    if len > 0 || had_length || expects_body(method) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa_usize(len, &mut [0u8; 20]));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

fn expects_body(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::PATCH
}

/// Decimal digits of `n` in `buf`, without `fmt`.
fn itoa_usize(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn encode(method: Method, target: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let body = (!body.is_empty()).then(|| Bytes::copy_from_slice(body));
        let mut out = Vec::new();
        request(
            &method,
            &target.parse().unwrap(),
            &map,
            body.as_ref(),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn get_without_body_has_no_length() {
        let text = encode(
            Method::GET,
            "/a?b=1",
            &[("host", "svc"), ("x-multi", "1"), ("x-multi", "2")],
            b"",
        );
        assert_eq!(
            text,
            "GET /a?b=1 HTTP/1.1\r\nhost: svc\r\nx-multi: 1\r\nx-multi: 2\r\n\r\n"
        );
    }

    #[test]
    fn the_apps_framing_is_replaced_by_the_exact_length() {
        let text = encode(
            Method::POST,
            "/",
            &[("content-length", "99"), ("transfer-encoding", "chunked")],
            b"hello",
        );
        assert_eq!(text, "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello");
    }

    #[test]
    fn empty_post_says_zero() {
        assert_eq!(
            encode(Method::POST, "/", &[], b""),
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_target_without_a_path_gets_slash() {
        let mut out = Vec::new();
        let uri = Uri::from(http::uri::PathAndQuery::from_static("?x=1"));
        request(&Method::GET, &uri, &HeaderMap::new(), None, &mut out);
        assert!(out.starts_with(b"GET /?x=1 HTTP/1.1\r\n"), "{out:?}");
    }
}
