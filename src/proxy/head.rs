//! Checks on a request head before anything routes or forwards it. What a proxy and the
//! origin behind it could read differently is refused here with 400: several Host lines,
//! credentials in the target, transfer codings other than one `chunked`. Pure: no I/O.

use std::borrow::Cow;

use http::header::{HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{HeaderMap, Uri};

use crate::error::ProxyError;
use crate::proxy::headers::Present;
use crate::routing::split_authority;

/// The authority a request is for, as routing matches it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Target<'a> {
    /// Lowercase host without brackets or a trailing dot; `None` when neither the target
    /// nor a Host header names one.
    pub host: Option<Cow<'a, str>>,
    /// The port, when the authority gives one.
    pub port: Option<u16>,
}

/// Validates the parts of a head that framing and routing depend on and returns the
/// authority: the absolute-form (or HTTP/2 `:authority`) target, else the Host header.
///
/// hyper has already refused what HTTP/1.1 cannot parse (obs-fold, NUL, bare CR, differing
/// Content-Length values) and dropped a Content-Length sent beside Transfer-Encoding; what is
/// left here is what it lets through on purpose. `present` is
/// [`scan`](crate::proxy::headers::scan) of `headers`:
/// the Transfer-Encoding lookup is skipped when no hop-by-hop header is there.
pub fn inspect<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
    present: Present,
) -> Result<Target<'a>, ProxyError> {
    if present.hop_by_hop {
        check_transfer_coding(headers)?;
    }
    let mut hosts = headers.get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        // RFC 9112 §3.2: an origin must refuse this, so an intermediary must not pick one.
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    let authority = match (uri.authority(), host_header) {
        (Some(a), _) => a.as_str(),
        (None, Some(h)) => {
            let text = h
                .to_str()
                .map_err(|_| ProxyError::BadRequest("invalid Host header"))?;
            if let Some((host, port)) = split_plain(text) {
                return Ok(Target {
                    host: Some(Cow::Borrowed(host)),
                    port,
                });
            }
            Authority::try_from(text).map_err(|_| ProxyError::BadRequest("invalid Host header"))?;
            text
        }
        (None, None) => return Ok(Target::default()),
    };
    if authority.contains('@') {
        // `user:password@host`: credentials are never forwarded, logged or routed on.
        return Err(ProxyError::BadRequest(
            "credentials in the request target or Host header are not accepted",
        ));
    }
    let (host, port) = split_authority(authority);
    Ok(Target {
        host: Some(host),
        port,
    })
}

/// Splits `host[:port]` of lowercase letters, digits, `.` and `-` with a port that fits 16
/// bits, as nearly every Host header is, in one pass: such a value is a valid authority on
/// its face, so the full parse (which copies it) is skipped. The split is
/// [`split_authority`]'s; `None` for anything else.
fn split_plain(text: &str) -> Option<(&str, Option<u16>)> {
    let mut colon = None;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => {}
            b':' if colon.is_none() => colon = Some(i),
            _ => return None,
        }
    }
    let (host, port) = match colon {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) if (1..=5).contains(&digits.len()) => {
            let n = digits.bytes().try_fold(0u32, |n, b| {
                b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
            })?;
            Some(u16::try_from(n).ok()?)
        }
        Some(_) => return None,
    };
    Some((host.strip_suffix('.').unwrap_or(host), port))
}

/// One `chunked` and nothing else: another coding would be removed with the hop-by-hop
/// Transfer-Encoding header while its bytes stay encoded, so the upstream would read a body
/// the app never meant.
fn check_transfer_coding(headers: &HeaderMap) -> Result<(), ProxyError> {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| crate::proxy::headers::list_elements(v.as_bytes()))
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(ProxyError::BadRequest(
            "only the chunked transfer coding is accepted",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(uri: &str, headers: &[(&str, &str)]) -> (Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        (uri.parse().unwrap(), map)
    }

    fn target(
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Option<String>, Option<u16>), &'static str> {
        let (uri, map) = head(uri, headers);
        inspect(&uri, &map, crate::proxy::headers::scan(&map))
            .map(|t| (t.host.map(Cow::into_owned), t.port))
            .map_err(|e| match e {
                ProxyError::BadRequest(m) => m,
                _ => "other",
            })
    }

    proptest::proptest! {
        /// The fast path never lets through what the full authority parse refuses, and
        /// splits as the general path does.
        #[test]
        fn plain_authorities_are_valid(text in "[a-zA-Z0-9.:@\\[\\]%_-]{0,14}") {
            if let Some((host, port)) = split_plain(&text) {
                proptest::prop_assert!(Authority::try_from(text.as_str()).is_ok(), "{text}");
                let (general_host, general_port) = split_authority(&text);
                proptest::prop_assert_eq!((host, port), (general_host.as_ref(), general_port));
            }
        }
    }

    #[test]
    fn common_host_headers_take_the_fast_path() {
        for host in [
            "127.0.0.1:18090",
            "svc",
            "api.example.com",
            "my-svc.ns.svc:8080",
        ] {
            assert!(split_plain(host).is_some(), "{host}");
        }
        assert_eq!(split_plain("svc.:8080"), Some(("svc", Some(8080))));
        for host in [
            "",
            ":80",
            "a:",
            "a:65536",
            "a:8o",
            "API.example.com",
            "[::1]:80",
            "u@h",
        ] {
            assert!(split_plain(host).is_none(), "{host}");
        }
    }

    #[test]
    fn the_target_authority_wins_over_host_and_is_lowercased() {
        assert_eq!(
            target("http://API.svc:8080/x", &[("host", "other")]),
            Ok((Some("api.svc".into()), Some(8080)))
        );
        assert_eq!(
            target("/x", &[("host", "svc")]),
            Ok((Some("svc".into()), None))
        );
        assert_eq!(target("/x", &[]), Ok((None, None)));
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        for (uri, headers) in [
            ("/x", vec![("host", "a"), ("host", "b")]),
            ("/x", vec![("host", "a"), ("host", "a")]),
            ("/x", vec![("host", "user:pw@svc")]),
            ("http://user:pw@svc/x", vec![]),
            ("http://pw@svc/x", vec![("host", "svc")]),
            ("/x", vec![("host", "svc, evil")]),
            (
                "/x",
                vec![("host", "svc"), ("transfer-encoding", "gzip, chunked")],
            ),
            (
                "/x",
                vec![
                    ("host", "svc"),
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
            ),
            (
                "/x",
                vec![("host", "svc"), ("transfer-encoding", "identity")],
            ),
        ] {
            assert!(target(uri, &headers).is_err(), "{uri} {headers:?}");
        }
        assert!(target("/x", &[("host", "svc"), ("transfer-encoding", " Chunked ")]).is_ok());
    }
}
