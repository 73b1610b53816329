//! Header hygiene both ways (SPEC §3): hop-by-hop headers stay on their hop, forwarding
//! headers are set, the request id travels both ways, `x-rampart-*` never leaves rampart.

use std::net::IpAddr;

use http::header::{
    CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VIA,
};
use http::{Uri, Version};

/// Request id header, generated when absent and returned on the response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Tries used, on every proxied response; on a request, lowers the attempts.
pub const X_RAMPART_ATTEMPTS: HeaderName = HeaderName::from_static("x-rampart-attempts");
/// Routes a request to the named upstream.
pub const X_RAMPART_UPSTREAM: HeaderName = HeaderName::from_static("x-rampart-upstream");
/// Lowers the request timeout.
pub const X_RAMPART_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-rampart-timeout-ms");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `Keep-Alive`, which `http` has no constant for.
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

const HOP_BY_HOP_COUNT: usize = 9;
/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the non-standard ones proxies see;
/// `Connection` first (`remove_hop_by_hop` reads its index).
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    CONNECTION,
    KEEP_ALIVE,
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

// Header values as constants: `HeaderValue::from_static` checks its text each time it runs,
// except where it is evaluated at compile time.
static PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
static VIA_1_0: HeaderValue = HeaderValue::from_static("1.0 rampart");
static VIA_1_1: HeaderValue = HeaderValue::from_static("1.1 rampart");
static VIA_2: HeaderValue = HeaderValue::from_static("2 rampart");
static ATTEMPTS: [HeaderValue; 11] = [
    HeaderValue::from_static("0"),
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
    HeaderValue::from_static("4"),
    HeaderValue::from_static("5"),
    HeaderValue::from_static("6"),
    HeaderValue::from_static("7"),
    HeaderValue::from_static("8"),
    HeaderValue::from_static("9"),
    HeaderValue::from_static("10"),
];

/// The per-request overrides, read by rampart and never forwarded.
const X_RAMPART: [HeaderName; 3] = [X_RAMPART_UPSTREAM, X_RAMPART_ATTEMPTS, X_RAMPART_TIMEOUT_MS];

/// Which headers that rampart acts on a request carries, found in one pass over its names:
/// a hash lookup per name rampart might act on would cost more than the pass, and most
/// requests carry none of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Present {
    /// `x-request-id`.
    pub request_id: bool,
    /// Any `x-rampart-*` header (overrides, routing by name).
    pub rampart: bool,
    /// Any hop-by-hop header.
    pub hop_by_hop: bool,
    /// `x-forwarded-for`.
    pub forwarded_for: bool,
    /// `x-forwarded-proto`.
    pub forwarded_proto: bool,
    /// `expect`.
    pub expect: bool,
    /// The header lines' size as they arrived (`name: value` and CRLF each), for
    /// [`head_size`].
    pub header_bytes: usize,
}

/// Scans a request's header lines once (see [`Present`]).
pub fn scan(headers: &HeaderMap) -> Present {
    let mut present = Present::default();
    for (name, value) in headers {
        present.header_bytes += name.as_str().len() + value.len() + 4;
        if is_hop_by_hop(name) {
            present.hop_by_hop = true;
            continue;
        }
        match name.as_str() {
            "x-request-id" => present.request_id = true,
            "x-forwarded-for" => present.forwarded_for = true,
            "x-forwarded-proto" => present.forwarded_proto = true,
            "expect" => present.expect = true,
            n if n.starts_with("x-rampart-") => present.rampart = true,
            _ => {}
        }
    }
    present
}

/// The request lines rampart adds for the upstream hop, kept beside the app's headers
/// rather than inserted into them: rampart's own HTTP/1.1 client writes them after the
/// app's (no map insert, no growth, no drop per request); for hyper's clients and the
/// rate-limit key they are added to a map ([`Forwarding::add_to`]). Lines that must
/// replace or merge with what the app sent are prepared in the map instead.
#[derive(Clone, Debug, Default)]
pub struct Forwarding {
    /// `x-forwarded-for`: the app's address, when the app sent none.
    pub forwarded_for: Option<HeaderValue>,
    /// `x-request-id`, when the app sent none.
    pub request_id: Option<HeaderValue>,
    /// The app's HTTP version, for `via`; `None`: no lines at all (health probes).
    pub via: Option<Version>,
}

impl Forwarding {
    /// Calls `line` with each line's name and value, in the order they are sent.
    pub fn each<'a>(&'a self, mut line: impl FnMut(&HeaderName, &'a HeaderValue)) {
        let Some(version) = self.via else { return };
        if let Some(value) = &self.forwarded_for {
            line(&X_FORWARDED_FOR, value);
        }
        line(&X_FORWARDED_PROTO, &PROTO_HTTP);
        line(&VIA, via_value(version));
        if let Some(value) = &self.request_id {
            line(&X_REQUEST_ID, value);
        }
    }

    /// The value this adds for `name`, if it adds one.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        let mut found = None;
        self.each(|line, value| {
            if line == name {
                found.get_or_insert(value);
            }
        });
        found
    }

    /// Appends the lines to `headers`, as a client that takes a map needs them.
    pub fn add_to(&self, headers: &mut HeaderMap) {
        self.each(|name, value| {
            headers.append(name.clone(), value.clone());
        });
    }
}

/// Prepares the app's request headers for the upstream hop; `present` is [`scan`] of them.
/// What is added without replacing anything the app sent is returned as [`Forwarding`].
pub fn prepare_request(
    headers: &mut HeaderMap,
    present: Present,
    uri: &Uri,
    version: Version,
    client_ip: &HeaderValue,
    request_id: &HeaderValue,
) -> Forwarding {
    if present.hop_by_hop {
        // gRPC and HTTP/2 need `te: trailers` end to end; every other TE value is hop-by-hop.
        let te_trailers = headers
            .get(TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        remove_hop_by_hop(headers);
        if te_trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
    }
    if present.rampart {
        for name in &X_RAMPART {
            headers.remove(name);
        }
    }
    // An absolute-form target (or HTTP/2's :authority) is the authority: a received Host is
    // replaced by it (RFC 9112 §3.2.2), and HTTP/1.1 upstreams get the Host they need.
    if let Some(authority) = uri.authority() {
        let host = match authority.port() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_owned(),
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert(HOST, value);
        }
    }
    let mut forwarding = Forwarding {
        forwarded_for: None,
        request_id: None,
        via: Some(version),
    };
    // Every prior line is kept (RFC 9110 §5.3: repeated lines are one comma-separated list).
    if present.forwarded_for {
        let mut forwarded_for: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        let ip = client_ip.to_str().unwrap_or_default();
        forwarded_for.push(ip);
        let forwarded_for = forwarded_for.join(", ");
        if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    } else {
        forwarding.forwarded_for = Some(client_ip.clone());
    }
    // The app's own `x-forwarded-proto` is replaced by rampart's (this hop is plain HTTP).
    if present.forwarded_proto {
        headers.remove(X_FORWARDED_PROTO);
    }
    if present.request_id {
        headers.insert(X_REQUEST_ID, request_id.clone());
    } else {
        forwarding.request_id = Some(request_id.clone());
    }
    forwarding
}

/// Prepares the upstream's response headers for the app. `hop_by_hop_removed`: the client
/// that parsed them already left the hop-by-hop ones out (rampart's own HTTP/1.1 client).
pub fn prepare_response(headers: &mut HeaderMap, version: Version, hop_by_hop_removed: bool) {
    // One growth for this and what `proxy::finish` adds (request id, attempts).
    headers.reserve(3);
    if !hop_by_hop_removed {
        remove_hop_by_hop(headers);
    }
    append_via(headers, version);
}

/// Whether `name` is one of the fixed hop-by-hop headers, which never cross rampart.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_index(name).is_some()
}

/// `name`'s place in [`HOP_BY_HOP`]: one match on the name, not nine comparisons.
fn hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "proxy-authenticate" => Some(3),
        "proxy-authorization" => Some(4),
        "te" => Some(5),
        "trailer" => Some(6),
        "transfer-encoding" => Some(7),
        "upgrade" => Some(8),
        _ => None,
    }
}

/// A `Content-Length` value: ASCII digits only, at most 19 of them (no sign, no overflow).
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The elements of a comma-separated header value (RFC 9110 §5.6.1), trimmed; empty ones
/// are kept, for the callers that must tell them apart.
pub fn list_elements(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Adds to `out` the headers a `Connection` value names beyond the fixed hop-by-hop set
/// (and `close`): they are hop-by-hop too. Nothing is allocated for the usual
/// `keep-alive` or `close`.
pub fn named_by_connection(value: &[u8], out: &mut Vec<HeaderName>) {
    // Nearly every value is one of these two: no token scan.
    if value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close") {
        return;
    }
    for token in list_elements(value)
        .filter(|token| !token.is_empty() && !token.eq_ignore_ascii_case(b"close"))
    {
        let fixed = HOP_BY_HOP
            .iter()
            .any(|name| token.eq_ignore_ascii_case(name.as_str().as_bytes()));
        if !fixed && let Ok(name) = HeaderName::from_bytes(token) {
            out.push(name);
        }
    }
}

/// Removes the fixed hop-by-hop set and every header the `Connection` header names. One
/// pass over the names finds which are present; only those are removed (a blind `remove`
/// per name costs a hash each), and nothing is allocated unless `Connection` names a header
/// outside the fixed set, which is rare: every nginx response carries
/// `Connection: keep-alive`, nothing else.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut found = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(i) = hop_index(name) {
            found[i] = true;
        }
    }
    // `found[0]` is `Connection` (the first of `HOP_BY_HOP`): only then can more be named.
    let mut extra: Vec<HeaderName> = Vec::new();
    if found[0] {
        for value in headers.get_all(CONNECTION) {
            named_by_connection(value.as_bytes(), &mut extra);
        }
    }
    for (name, found) in HOP_BY_HOP.iter().zip(found) {
        if found {
            headers.remove(name);
        }
    }
    for name in extra {
        headers.remove(name);
    }
}

/// `x-rampart-attempts` for `n` tries: the common counts are static (no allocation).
pub fn attempts_value(n: u32) -> HeaderValue {
    match ATTEMPTS.get(n as usize) {
        Some(value) => value.clone(),
        None => HeaderValue::from(n),
    }
}

/// The app's address as a header value, made once per connection for `x-forwarded-for`.
pub fn client_ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::try_from(ip.to_string()).expect("an IP address is a valid header value")
}

fn append_via(headers: &mut HeaderMap, version: Version) {
    headers.append(VIA, via_value(version).clone());
}

/// `via`'s value for a hop in `version`.
fn via_value(version: Version) -> &'static HeaderValue {
    match version {
        Version::HTTP_10 => &VIA_1_0,
        Version::HTTP_2 => &VIA_2,
        _ => &VIA_1_1,
    }
}

/// A fresh request id: 128 random bits in hex (written by hand: `format!` costs more than
/// the rest of the id's work together). An allocation of its own, not the
/// [`bytes_arena`](crate::bytes_arena): an HTTP/2 peer's HPACK table keeps header values
/// long after the request, and each kept id would pin a whole chunk.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::random();
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    // One allocation holding the text and its count: the copy in the response shares it
    // (a `Vec`-backed value would allocate again on that first clone).
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .expect("hex is a valid header value")
}

/// The size of a request head as it arrived, for `max_request_header_bytes`: the request
/// line and `header_bytes` from [`scan`] (one pass over the headers serves both).
pub fn head_size(method: &http::Method, uri: &Uri, header_bytes: usize) -> usize {
    let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    method.as_str().len() + uri_len + 12 + header_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop, close"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-rampart-attempts", HeaderValue::from_static("2"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        let id = HeaderValue::from_static("abc");
        let uri: Uri = "http://svc:8080/x".parse().unwrap();
        let present = scan(&h);
        assert!(present.hop_by_hop && present.rampart && present.forwarded_for);
        assert!(present.forwarded_proto);
        assert!(!present.request_id && !present.expect);
        let forwarding = prepare_request(
            &mut h,
            present,
            &uri,
            Version::HTTP_11,
            &client_ip_value("127.0.0.1".parse().unwrap()),
            &id,
        );
        // The merged x-forwarded-for is in the map; the added lines are beside it.
        assert!(forwarding.forwarded_for.is_none());
        assert!(!h.contains_key("x-forwarded-proto") && !h.contains_key(VIA));
        assert_eq!(forwarding.get(&VIA).unwrap(), "1.1 rampart");
        forwarding.add_to(&mut h);
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "proxy-authorization",
            "upgrade",
            "x-rampart-attempts",
        ] {
            assert!(!h.contains_key(gone), "{gone} survived");
        }
        assert_eq!(h[TE], "trailers");
        assert_eq!(h["x-keep"], "yes");
        assert_eq!(h["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h[VIA], "1.1 rampart");
        assert_eq!(h[HOST], "svc:8080");
        assert_eq!(h[X_REQUEST_ID], "abc");
    }

    /// An app that sent none of them gets every line added, in a fixed order.
    #[test]
    fn forwarding_lines_for_a_plain_request() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("svc"));
        let id = HeaderValue::from_static("abc");
        let present = scan(&h);
        let forwarding = prepare_request(
            &mut h,
            present,
            &Uri::from_static("/x"),
            Version::HTTP_10,
            &client_ip_value("10.0.0.9".parse().unwrap()),
            &id,
        );
        assert_eq!(h.len(), 1, "the app's map is left as it came");
        let mut lines = Vec::new();
        forwarding.each(|n, v| lines.push(format!("{n}: {}", v.to_str().unwrap())));
        assert_eq!(
            lines,
            [
                "x-forwarded-for: 10.0.0.9",
                "x-forwarded-proto: http",
                "via: 1.0 rampart",
                "x-request-id: abc",
            ]
        );
        for (name, value) in [
            (X_FORWARDED_FOR, "10.0.0.9"),
            (X_FORWARDED_PROTO, "http"),
            (VIA, "1.0 rampart"),
            (X_REQUEST_ID, "abc"),
        ] {
            assert_eq!(forwarding.get(&name).unwrap(), value, "{name}");
        }
        assert!(forwarding.get(&HOST).is_none());
        assert!(
            Forwarding::default().get(&VIA).is_none(),
            "a probe adds nothing"
        );
    }

    #[test]
    fn responses_lose_hop_by_hop_headers_and_gain_via() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.append(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        prepare_response(&mut h, Version::HTTP_11, false);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "via"]);
    }

    /// The one-match lookup agrees with the list `remove_hop_by_hop` indexes by position.
    #[test]
    fn every_fixed_hop_by_hop_name_is_found_at_its_place() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name), Some(i), "{name}");
        }
        for other in [
            HOST,
            VIA,
            X_REQUEST_ID,
            HeaderName::from_static("keep-alivex"),
        ] {
            assert!(!is_hop_by_hop(&other), "{other}");
        }
    }

    #[test]
    fn connection_names_only_what_is_not_already_hop_by_hop() {
        let mut out = Vec::new();
        named_by_connection(b"keep-alive, Upgrade, close", &mut out);
        for single in [&b"Keep-Alive"[..], b"close", b"CLOSE", b"keep-alive"] {
            named_by_connection(single, &mut out);
        }
        assert!(out.is_empty() && out.capacity() == 0, "{out:?}");
        named_by_connection(b"x-hop", &mut out);
        assert_eq!(out, ["x-hop"]);
        out.clear();
        named_by_connection(b" X-Secret , ,x-other", &mut out);
        assert_eq!(out, ["x-secret", "x-other"]);
    }

    #[test]
    fn attempt_counts_render_as_decimal() {
        for n in [0, 1, 3, 10, 11, 250] {
            assert_eq!(attempts_value(n), n.to_string().as_str());
        }
    }

    #[test]
    fn request_ids_are_unique_hex() {
        let a = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit), "{a:?}");
        assert_ne!(a, new_request_id());
    }

    #[test]
    fn head_size_counts_the_head_as_it_arrived() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("svc"));
        h.append("accept", HeaderValue::from_static("a"));
        h.append("accept", HeaderValue::from_static("bb"));
        let uri: Uri = "/path?q=1".parse().unwrap();
        // Every line with its CRLF; the blank line that ends the head is not counted.
        let wire = "GET /path?q=1 HTTP/1.1\r\nhost: svc\r\naccept: a\r\naccept: bb\r\n";
        let size = head_size(&http::Method::GET, &uri, scan(&h).header_bytes);
        assert_eq!(size, wire.len());
    }
}
