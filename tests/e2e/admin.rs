//! The admin listener (SPEC §5, §6): health and readiness through shutdown, the metrics
//! exposition (checked by promtool), and token auth on /admin/*.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::client::{self, request};
use crate::support::metrics::check_with_promtool;
use crate::support::{Metrics, TestProxy, TestUpstream, empty};

#[tokio::test]
async fn healthz_and_readyz_then_503_during_the_drain_while_still_serving() {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "shutdown: {{ drain_delay: 1s, timeout: 2s }}\nupstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    assert_eq!(
        client::get(&proxy.admin_url("/healthz")).await.status(),
        200
    );
    assert_eq!(client::get(&proxy.admin_url("/readyz")).await.status(), 200);

    proxy.app().begin_shutdown();
    let started = Instant::now();
    let resp = client::get(&proxy.admin_url("/readyz")).await;
    assert_eq!(resp.status(), 503, "readyz turns 503 at once");
    assert_eq!(
        client::get(&proxy.admin_url("/healthz")).await.status(),
        200
    );

    // Within the drain delay the proxy still accepts and serves new connections.
    let req = request("GET", &proxy.url("/during-drain"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let resp = client::send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(up.last().path(), "/during-drain");
}

#[tokio::test]
async fn metrics_pass_promtool_and_carry_every_family() {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n  alpha:\n    endpoints: [\"{0}\"]\n    hosts: [alpha]\n  beta:\n    endpoints: [\"{0}\"]\n    hosts: [beta]\n",
        up.url()
    );
    let proxy = TestProxy::start(&yaml).await;

    // Before any traffic: every configured upstream's breaker gauge exists, at 0.
    let before = Metrics::scrape(&proxy.admin_url("/metrics")).await;
    for name in ["alpha", "beta"] {
        assert_eq!(
            before.value("rampart_circuit_breaker_state", &[("upstream", name)]),
            Some(0.0),
            "{name}"
        );
    }
    assert_eq!(before.value("rampart_build_info", &[]), Some(1.0));
    let info = before.matching("rampart_build_info", &[]).next().unwrap();
    assert_eq!(info.labels["version"], env!("CARGO_PKG_VERSION"));

    let req = request("GET", &proxy.url("/m"))
        .header("host", "alpha")
        .body(empty())
        .unwrap();
    assert_eq!(client::send(req).await.unwrap().status(), 200);

    let resp = client::get(&proxy.admin_url("/metrics")).await;
    assert_eq!(resp.status(), 200);
    let content_type = client::header(&resp, "content-type").unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = client::text(&resp).to_owned();
    check_with_promtool(&text).await;

    let m = Metrics::parse(&text);
    assert_eq!(
        m.value(
            "rampart_requests_total",
            &[("upstream", "alpha"), ("code", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(m.kind("rampart_requests_total"), Some("counter"));
    assert_eq!(
        m.kind("rampart_request_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(
        m.value(
            "rampart_request_duration_seconds_bucket",
            &[("upstream", "alpha"), ("le", "+Inf")]
        ),
        Some(1.0)
    );
    assert!(
        m.matching(
            "rampart_request_duration_seconds_bucket",
            &[("upstream", "alpha")]
        )
        .count()
            > 3,
        "several buckets"
    );
    assert_eq!(
        m.value(
            "rampart_request_duration_seconds_count",
            &[("upstream", "alpha")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("rampart_requests_in_flight", &[("upstream", "alpha")]),
        Some(0.0)
    );
    assert_eq!(m.kind("rampart_requests_in_flight"), Some("gauge"));
    assert_eq!(
        m.value(
            "rampart_upstream_attempts_total",
            &[("upstream", "alpha"), ("outcome", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(m.kind("rampart_circuit_breaker_state"), Some("gauge"));
}

#[tokio::test]
async fn admin_paths_need_the_bearer_token_when_one_is_set() {
    let proxy = TestProxy::start(
        "admin: { listen: 127.0.0.1:0, token: s3cret-token }\npassthrough: { enabled: true }\n",
    )
    .await;
    let call = |auth: Option<&'static str>| {
        let mut req = request("GET", &proxy.admin_url("/admin/upstreams"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let req = req.body(empty()).unwrap();
        async move { client::collect(client::send(req).await.unwrap()).await }
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-token-x"),
        Some("s3cret-token"),
    ] {
        let resp = call(auth).await;
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_eq!(
            client::json(&resp),
            serde_json::json!({"error": "unauthorized"}),
            "{auth:?}"
        );
    }
    assert_ne!(call(Some("Bearer s3cret-token")).await.status(), 401);
    // The unauthenticated endpoints stay open.
    assert_eq!(
        client::get(&proxy.admin_url("/healthz")).await.status(),
        200
    );
    assert_eq!(
        client::get(&proxy.admin_url("/metrics")).await.status(),
        200
    );
}

#[tokio::test]
async fn admin_config_shows_the_effective_config_with_secrets_redacted() {
    let up = crate::support::TestUpstream::http1().await;
    let yaml = format!(
        "admin: {{ listen: 127.0.0.1:0, token: tok-8c1f-secret }}\nupstreams:\n  svc:\n    endpoints: [\"{}\"]\n    hosts: [svc]\n    rate_limit: {{ rate: 10/s, global: {{ redis: \"redis://:pw-77-hunter@127.0.0.1:1/0\" }} }}\n",
        up.url()
    );
    let proxy = crate::support::TestProxy::start(&yaml).await;
    let req = crate::support::client::request("GET", &proxy.admin_url("/admin/config"))
        .header("authorization", "Bearer tok-8c1f-secret")
        .body(crate::support::empty())
        .unwrap();
    let resp =
        crate::support::client::collect(crate::support::client::send(req).await.unwrap()).await;
    assert_eq!(resp.status(), 200);
    let text = crate::support::client::text(&resp).to_owned();
    assert!(!text.contains("tok-8c1f-secret"), "{text}");
    assert!(!text.contains("pw-77-hunter"), "{text}");
    let body = crate::support::client::json(&resp);
    assert_eq!(body["admin"]["token"], "<redacted>");
    assert_eq!(body["upstreams"][0]["name"], "svc");
    assert_eq!(body["upstreams"][0]["rate_limit"]["rate"], "10/s");
}
