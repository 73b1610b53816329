//! An HTTP/1.1 request head, parsed by httparse as hyper parses it, through everything
//! rampart does to a head before forwarding it: the size limit, override headers, the head
//! checks and routing (a fixed table with hosts, ports, prefixes and passthrough), the
//! CONNECT policy, and header hygiene. Besides "no panic" it checks what must hold for any
//! head that is forwarded, and that rampart's own HTTP/1.1 loop serves only heads that carry
//! no body and reads them exactly as hyper's parse would.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use http::header::{HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;
use rampart::config::ConnectPolicy;
use rampart::proxy::{connect, headers, overrides};
use rampart::routing::Router;

const TABLE: &str = "
passthrough: { enabled: true, max_hosts: 64 }
upstreams:
  api:
    endpoints: [\"http://127.0.0.1:1\"]
    hosts: [api, \"api.internal:8443\"]
  docs:
    endpoints: [\"http://127.0.0.1:1\"]
    hosts: [api]
    path_prefix: /docs
    strip_prefix: true
  static:
    endpoints: [\"http://127.0.0.1:1\"]
    path_prefix: /static
";

static ROUTER: LazyLock<Router> = LazyLock::new(|| {
    let config = rampart::config::parse(TABLE, &|_| None).expect("the table parses");
    let metrics = rampart::metrics::Metrics::new();
    rampart::app::build_router(&config, &metrics, None).expect("the table builds")
});

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));

fuzz_target!(|data: &[u8]| {
    check_own_loop(data);
    let Some(req) = parse(data) else { return };
    let present = headers::scan(req.headers());
    let _ = headers::head_size(req.method(), req.uri(), present.header_bytes);
    let _ = overrides::parse(req.headers());
    let Ok(upstream) = rampart::proxy::route(&ROUTER, None, &req, present) else {
        return;
    };
    // Whatever routed passed the head checks.
    assert!(req.headers().get_all(HOST).iter().count() <= 1);
    assert!(
        !req.uri()
            .authority()
            .is_some_and(|a| a.as_str().contains('@'))
    );

    if req.method() == Method::CONNECT {
        if let Some(a) = req.uri().authority()
            && let Some(port) = a.port_u16()
        {
            let _ = connect::allowed(&upstream, a.host(), port, &ConnectPolicy::default());
        }
        return;
    }
    let (mut parts, ()) = req.into_parts();
    let id = headers::new_request_id();
    let client = headers::client_ip_value(CLIENT);
    let forwarding = headers::prepare_request(
        &mut parts.headers,
        present,
        &parts.uri,
        parts.version,
        &client,
        &id,
    );
    // As a client that takes a map sends it.
    forwarding.add_to(&mut parts.headers);
    check_forwarded(&parts.headers, &parts.uri);
});

/// What every forwarded head satisfies.
fn check_forwarded(h: &HeaderMap, uri: &Uri) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-rampart-upstream",
        "x-rampart-attempts",
        "x-rampart-timeout-ms",
    ] {
        assert!(!h.contains_key(name), "{name} is forwarded");
    }
    assert!(h.get_all("te").iter().all(|v| v == "trailers"));
    if uri.authority().is_some() {
        assert_eq!(
            h.get_all(HOST).iter().count(),
            1,
            "one Host for an absolute target"
        );
    }
    let xff = h.get("x-forwarded-for").expect("x-forwarded-for is set");
    assert!(xff.as_bytes().ends_with(b"10.1.2.3"));
    assert_eq!(h.get_all("x-request-id").iter().count(), 1);
}

/// What rampart's own loop serves is a head hyper's parse reads the same (up to the length
/// httparse gives), with no body and nothing that changes its framing.
fn check_own_loop(data: &[u8]) {
    use rampart::server::h1::request::{self, Parsed};
    let bytes = bytes::Bytes::copy_from_slice(data);
    let Parsed::Simple { request, len, .. } = request::parse(&bytes, 100, &mut None) else {
        return;
    };
    // The head ends where httparse says, not at the first empty line.
    let hyper = parse(&data[..len]).expect("a head the loop serves parses");
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut head = httparse::Request::new(&mut slots);
    assert_eq!(head.parse(data), Ok(httparse::Status::Complete(len)));
    assert_eq!(request.method(), hyper.method());
    assert_eq!(request.uri(), hyper.uri());
    assert_eq!(request.version(), Version::HTTP_11);
    assert_eq!(hyper.version(), Version::HTTP_11);
    let h = request.headers();
    for (name, value) in h {
        assert!(hyper.headers().get_all(name).iter().any(|v| v == value));
    }
    assert!(h.get_all("content-length").iter().all(|v| v == "0"));
    assert!(h.get_all("content-length").iter().count() <= 1);
    for name in ["transfer-encoding", "expect", "upgrade", "te"] {
        assert!(!h.contains_key(name), "{name} in a head the loop serves");
    }
    assert!(request.method() != Method::HEAD && request.method() != Method::CONNECT);
}

/// The request hyper would hand to rampart, or `None` where hyper answers 400 itself.
fn parse(data: &[u8]) -> Option<Request<()>> {
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut head = httparse::Request::new(&mut slots);
    if !matches!(head.parse(data), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let mut req = Request::builder()
        .method(Method::from_bytes(head.method?.as_bytes()).ok()?)
        .uri(Uri::try_from(head.path?).ok()?)
        .version(match head.version? {
            0 => Version::HTTP_10,
            _ => Version::HTTP_11,
        })
        .body(())
        .ok()?;
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        req.headers_mut().append(name, value);
    }
    Some(req)
}
