//! Writes a request head and its in-memory body into one buffer, so a try goes out in one
//! `send`. Framing is rampart's: the body's length is known, and any `Content-Length` or
//! `Transfer-Encoding` the app sent is replaced by the exact one.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::proxy::headers::Forwarding;

/// A request head as the stack holds it, borrowed for writing (a retry needs it again).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target; only its path and query are written (origin-form).
    pub uri: &'a Uri,
    /// The app's prepared headers.
    pub headers: &'a HeaderMap,
    /// The lines rampart adds, written after `headers`.
    pub forwarding: Option<&'a Forwarding>,
    /// Host to send when `headers` has none (HTTP/1.1 requires one): the endpoint's.
    pub default_host: &'a str,
}

/// Appends `METHOD target HTTP/1.1`, the headers, the framing and the body to `out`.
pub(super) fn request(head: RequestHead<'_>, body: Option<&Bytes>, out: &mut Vec<u8>) {
    let RequestHead {
        method,
        uri,
        headers,
        forwarding,
        default_host,
    } = head;
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
    let mut had_host = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            had_length = true;
            continue;
        }
        had_host |= name == HOST;
        line(out, name, value);
    }
    if let Some(forwarding) = forwarding {
        forwarding.each(|name, value| line(out, name, value));
    }
    if !had_host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(default_host.as_bytes());
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

fn line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
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

    fn encode(method: Method, target: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        encode_uri(method, &target.parse().unwrap(), headers, body)
    }

    fn encode_uri(method: Method, uri: &Uri, headers: &[(&str, &str)], body: &[u8]) -> String {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let body = (!body.is_empty()).then(|| Bytes::copy_from_slice(body));
        let mut out = Vec::new();
        let head = RequestHead {
            method: &method,
            uri,
            headers: &map,
            forwarding: None,
            default_host: "endpoint:8080",
        };
        request(head, body.as_ref(), &mut out);
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
            &[
                ("host", "svc"),
                ("content-length", "99"),
                ("transfer-encoding", "chunked"),
            ],
            b"hello",
        );
        assert_eq!(
            text,
            "POST / HTTP/1.1\r\nhost: svc\r\ncontent-length: 5\r\n\r\nhello"
        );
    }

    /// Without the app's Host (an HTTP/1.0 app, a health probe) the endpoint's is sent.
    #[test]
    fn empty_post_says_zero_and_gets_the_endpoints_host() {
        assert_eq!(
            encode(Method::POST, "/", &[], b""),
            "POST / HTTP/1.1\r\nhost: endpoint:8080\r\ncontent-length: 0\r\n\r\n"
        );
    }

    /// Absolute-form (a health probe's target) and path-less targets go out in origin-form.
    #[test]
    fn targets_go_out_in_origin_form() {
        let text = encode(
            Method::GET,
            "http://svc:9/healthz?deep=1",
            &[("host", "svc")],
            b"",
        );
        assert!(
            text.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
            "{text}"
        );
        let uri = Uri::from(http::uri::PathAndQuery::from_static("?x=1"));
        let text = encode_uri(Method::GET, &uri, &[], b"");
        assert!(text.starts_with("GET /?x=1 HTTP/1.1\r\n"), "{text}");
    }
}
