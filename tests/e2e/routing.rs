//! Routing through the running server (SPEC §3): the override header, absolute-form and Host
//! authorities, ports, longest prefix on segment boundaries, prefix stripping, dedicated
//! listeners, passthrough on and off, and the `requests_total` labels.

use bytes::Bytes;
use http::Response;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

/// GET `path` on the proxy with extra headers; body collected.
async fn get(proxy: &TestProxy, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    let mut req = request("GET", &proxy.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client::collect(client::send(req.body(empty()).unwrap()).await.unwrap()).await
}

/// The path the echoing upstream saw (uri includes the query).
fn echoed_uri(resp: &Response<Bytes>) -> String {
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    client::json(resp)["uri"].as_str().unwrap().to_owned()
}

#[track_caller]
fn assert_no_route(resp: &Response<Bytes>) {
    assert_eq!(resp.status(), 404, "{:?}", resp.body());
    assert_eq!(client::header(resp, "x-rampart-error"), Some("no_route"));
    assert_eq!(
        client::header(resp, "content-type"),
        Some("application/json")
    );
    assert_eq!(client::json(resp)["error"], "no_route");
}

#[tokio::test]
async fn override_header_routes_to_a_known_upstream_and_404s_an_unknown_one() {
    let a = TestUpstream::http1().await;
    let b = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  a:\n    endpoints: [\"{}\"]\n    hosts: [a]\n  b:\n    endpoints: [\"{}\"]\n    hosts: [b]\n",
        a.url(),
        b.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    // The header wins over the Host header.
    let resp = get(&proxy, "/x", &[("host", "a"), ("x-rampart-upstream", "b")]).await;
    assert_eq!(echoed_uri(&resp), "/x");
    assert_eq!((a.count(), b.count()), (0, 1));

    let resp = get(
        &proxy,
        "/x",
        &[("host", "a"), ("x-rampart-upstream", "nope")],
    )
    .await;
    assert_no_route(&resp);
    assert_eq!((a.count(), b.count()), (0, 1));
}

#[tokio::test]
async fn absolute_form_and_host_header_route_by_authority_and_port() {
    let any_port = TestUpstream::http1().await;
    let port_8080 = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  anyport:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n  exact:\n    endpoints: [\"{}\"]\n    hosts: [\"pinned:8080\"]\n",
        any_port.url(),
        port_8080.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    // The app uses rampart as HTTP_PROXY: absolute-form request target.
    let req = request("GET", "http://svc/abs?q=1").body(empty()).unwrap();
    let resp = client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await;
    assert_eq!(echoed_uri(&resp), "/abs?q=1");
    let req = request("GET", "http://svc:9999/abs").body(empty()).unwrap();
    let resp = client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await;
    assert_eq!(
        echoed_uri(&resp),
        "/abs",
        "a host without a port matches any port"
    );
    assert_eq!(any_port.count(), 2);

    // Host header, case-insensitive.
    let resp = get(&proxy, "/h", &[("host", "SVC:1234")]).await;
    assert_eq!(echoed_uri(&resp), "/h");
    assert_eq!(any_port.count(), 3);

    // A host with a port only matches that port.
    let resp = get(&proxy, "/p", &[("host", "pinned:8080")]).await;
    assert_eq!(echoed_uri(&resp), "/p");
    let req = request("GET", "http://pinned:8080/abs")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await;
    assert_eq!(echoed_uri(&resp), "/abs");
    assert_eq!(port_8080.count(), 2);
    assert_no_route(&get(&proxy, "/p", &[("host", "pinned:8081")]).await);
    assert_no_route(&get(&proxy, "/p", &[("host", "pinned")]).await);
    let req = request("GET", "http://pinned:9090/abs")
        .body(empty())
        .unwrap();
    assert_no_route(&client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await);
    assert_no_route(&get(&proxy, "/p", &[("host", "other")]).await);
    assert_eq!(port_8080.count(), 2);
}

#[tokio::test]
async fn longest_prefix_wins_on_segment_boundaries_and_strip_keeps_the_query() {
    let api = TestUpstream::http1().await;
    let api_v2 = TestUpstream::http1().await;
    let root = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  api:\n    endpoints: [\"{}\"]\n    path_prefix: /api\n    strip_prefix: true\n  apiv2:\n    endpoints: [\"{}\"]\n    path_prefix: /api/v2\n  other:\n    endpoints: [\"{}\"]\n    path_prefix: /other\n",
        api.url(),
        api_v2.url(),
        root.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    assert_eq!(echoed_uri(&get(&proxy, "/api", &[]).await), "/");
    assert_eq!(echoed_uri(&get(&proxy, "/api?x=1", &[]).await), "/?x=1");
    assert_eq!(
        echoed_uri(&get(&proxy, "/api/users?id=7", &[]).await),
        "/users?id=7"
    );
    assert_eq!(api.count(), 3);
    // A retry sends the stripped target again (the first try's head is the kept one, with
    // the target beside it; the retry takes that head).
    api.push(Reply::status(503));
    let retried = get(&proxy, "/api/users?id=8", &[]).await;
    assert_eq!(client::header(&retried, "x-rampart-attempts"), Some("2"));
    assert_eq!(echoed_uri(&retried), "/users?id=8");
    let paths: Vec<String> = api.received()[3..]
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(paths, ["/users?id=8", "/users?id=8"]);
    let api_count = api.count();

    // The longer prefix wins, and it does not strip.
    assert_eq!(
        echoed_uri(&get(&proxy, "/api/v2/items", &[]).await),
        "/api/v2/items"
    );
    assert_eq!(echoed_uri(&get(&proxy, "/api/v2", &[]).await), "/api/v2");
    assert_eq!(api_v2.count(), 2);
    // `/api/v2x` is not under `/api/v2`; it is under `/api`.
    assert_eq!(echoed_uri(&get(&proxy, "/api/v2x", &[]).await), "/v2x");
    assert_eq!(api.count(), api_count + 1);

    // Segment boundaries: `/apix` is not under `/api`.
    assert_no_route(&get(&proxy, "/apix", &[]).await);
    assert_no_route(&get(&proxy, "/", &[]).await);
    // Prefix-only upstreams match whatever the Host is.
    assert_eq!(
        echoed_uri(&get(&proxy, "/other/x", &[("host", "anything.example")]).await),
        "/other/x"
    );
    assert_eq!(root.count(), 1);
}

#[tokio::test]
async fn a_host_and_prefix_upstream_needs_both_and_beats_prefix_only() {
    let both = TestUpstream::http1().await;
    let host_only = TestUpstream::http1().await;
    let prefix_only = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  both:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    path_prefix: /v1\n  hostonly:\n    endpoints: [\"{}\"]\n    hosts: [plain]\n  prefixonly:\n    endpoints: [\"{}\"]\n    path_prefix: /v1\n",
        both.url(),
        host_only.url(),
        prefix_only.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    get(&proxy, "/v1/a", &[("host", "svc")]).await;
    assert_eq!(both.count(), 1, "host and prefix both match");
    // Host matches but the prefix does not: no match for `both`, and nothing else claims it.
    assert_no_route(&get(&proxy, "/v2/a", &[("host", "svc")]).await);
    // Prefix matches, host does not: the prefix-only upstream gets it.
    get(&proxy, "/v1/a", &[("host", "elsewhere")]).await;
    assert_eq!((both.count(), prefix_only.count()), (1, 1));
    // A host-only upstream takes every path of its host.
    get(&proxy, "/v1/a", &[("host", "plain")]).await;
    assert_eq!((host_only.count(), prefix_only.count()), (1, 1));
}

#[tokio::test]
async fn a_dedicated_listener_sends_everything_to_its_upstream() {
    let dedicated = TestUpstream::http1().await;
    let other = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  ded:\n    endpoints: [\"{}\"]\n    listen: 127.0.0.1:0\n  other:\n    endpoints: [\"{}\"]\n    hosts: [other]\n",
        dedicated.url(),
        other.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let addr = proxy.dedicated("ded");
    assert_ne!(addr, proxy.addr);

    // Even a Host that names another upstream goes to the dedicated one.
    let req = request("GET", &format!("http://{addr}/any/path?z=9"))
        .header("host", "other")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::send(req).await.unwrap()).await;
    assert_eq!(echoed_uri(&resp), "/any/path?z=9");
    assert_eq!((dedicated.count(), other.count()), (1, 0));
    // The main listener still routes by host, and `ded` has no hosts of its own there.
    get(&proxy, "/", &[("host", "other")]).await;
    assert_eq!((dedicated.count(), other.count()), (1, 1));
}

#[tokio::test]
async fn passthrough_on_forwards_unknown_hosts_with_a_bounded_label() {
    let ups = [
        TestUpstream::http1().await,
        TestUpstream::http1().await,
        TestUpstream::http1().await,
    ];
    let named = TestUpstream::http1().await;
    let yaml = format!(
        "passthrough: {{ enabled: true, max_hosts: 2 }}\nupstreams:\n  named:\n    endpoints: [\"{}\"]\n    hosts: [named]\n",
        named.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    // Three distinct authorities with max_hosts 2, twice round: the LRU evicts and
    // re-creates, every request still arrives.
    for round in 1..=2 {
        for up in &ups {
            let req = request("GET", &format!("{}/pt?r={round}", up.url()))
                .body(empty())
                .unwrap();
            let resp = client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await;
            assert_eq!(echoed_uri(&resp), format!("/pt?r={round}"));
            assert_eq!(client::header(&resp, "x-rampart-attempts"), Some("1"));
        }
    }
    // Host header form too.
    let resp = get(&proxy, "/hh", &[("host", &ups[0].authority())]).await;
    assert_eq!(echoed_uri(&resp), "/hh");
    assert_eq!(
        ups.iter().map(TestUpstream::count).collect::<Vec<_>>(),
        [3, 2, 2]
    );
    // A named upstream is still matched first.
    get(&proxy, "/", &[("host", "named")]).await;
    assert_eq!(named.count(), 1);

    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "passthrough"), ("code", "200")]
        ),
        Some(7.0)
    );
    for s in m.matching("rampart_requests_total", &[]) {
        let label = &s.labels["upstream"];
        assert!(
            ["passthrough", "named", ""].contains(&label.as_str()),
            "unbounded label {label:?}"
        );
    }
}

#[tokio::test]
async fn passthrough_off_gives_404_and_unrouted_requests_count_with_an_empty_label() {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    let req = request("GET", &format!("{}/x", up.url()))
        .body(empty())
        .unwrap();
    assert_no_route(&client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await);
    assert_no_route(&get(&proxy, "/x", &[("host", "unknown.example")]).await);
    assert_eq!(up.count(), 0);
    get(&proxy, "/x", &[("host", "svc")]).await;

    let m = proxy.metrics();
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", ""), ("code", "404")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "svc"), ("code", "200")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn absolute_form_wins_over_a_different_host_header() {
    let svc = TestUpstream::http1().await;
    let other = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n  other:\n    endpoints: [\"{}\"]\n    hosts: [other]\n",
        svc.url(),
        other.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    // RFC 9112 §3.2.2: with an absolute-form target, the received Host is ignored and
    // replaced by the target's authority.
    let req = request("GET", "http://svc:8080/abs")
        .header("host", "other")
        .body(empty())
        .unwrap();
    let resp = client::collect(client::via_proxy(proxy.addr, req).await.unwrap()).await;
    assert_eq!(echoed_uri(&resp), "/abs");
    assert_eq!((svc.count(), other.count()), (1, 0));
    assert_eq!(svc.last().header("host"), Some("svc:8080"));
}
