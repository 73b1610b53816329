//! The admin API for upstreams and breakers (SPEC §6): views, the three actions and their
//! effect on traffic and metrics, errors, the bearer token, and passthrough authorities.

use serde_json::json;

use super::{admin, error_code, get, opened, scrape, state, upstream};
use crate::support::{TestProxy, TestUpstream};

const TOKEN: &str = "tok-9f2a";

#[tokio::test]
async fn actions_need_the_token_and_drive_the_breaker() {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "admin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}\nupstreams:\n{}",
        upstream(
            "svc",
            &[up.url()],
            "    rate_limit: { rate: 100/s, burst: 20 }\n    circuit_breaker: { open_for: 30s }\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let force = Some(r#"{"action": "force-open"}"#);
    let path = "/admin/upstreams/svc/breaker";

    for token in [None, Some("wrong")] {
        let (status, body) = admin(&proxy, "POST", path, force, token).await;
        assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
        let (status, _) = admin(&proxy, "GET", "/admin/upstreams", None, token).await;
        assert_eq!(status, 401);
    }
    assert_eq!(get(&proxy, "svc").await.status(), 200, "nothing was forced");

    let (status, view) = admin(&proxy, "POST", path, force, Some(TOKEN)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["name"], "svc");
    assert_eq!(view["breaker"]["state"], "forced_open");
    let resp = get(&proxy, "svc").await;
    assert_eq!(error_code(&resp), "circuit_open");
    assert_eq!(
        crate::support::client::header(&resp, "retry-after"),
        Some("30")
    );
    assert_eq!(up.count(), 1);
    let m = scrape(&proxy).await;
    assert_eq!(state(&m, "svc"), Some(2.0), "forced open reports 2");
    assert_eq!(opened(&m, "svc", "forced"), 1.0);

    let disable = Some(r#"{"action": "disable"}"#);
    let (_, view) = admin(&proxy, "POST", path, disable, Some(TOKEN)).await;
    assert_eq!(view["breaker"]["state"], "disabled");
    assert_eq!(get(&proxy, "svc").await.status(), 200);
    assert_eq!(state(&scrape(&proxy).await, "svc"), Some(0.0));

    let reset = Some(r#"{"action": "reset"}"#);
    let (_, view) = admin(&proxy, "POST", path, reset, Some(TOKEN)).await;
    assert_eq!(view["breaker"]["state"], "closed");
    assert_eq!(
        view["breaker"]["calls_in_window"], 0,
        "reset starts a fresh window"
    );

    // The full view, as SPEC §6 lists it.
    let (status, list) = admin(&proxy, "GET", "/admin/upstreams", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let svc = &list.as_array().unwrap()[0];
    assert_eq!(svc["name"], "svc");
    assert_eq!(
        svc["endpoints"],
        json!([{"url": up.url(), "state": "healthy", "in_flight": 0}])
    );
    let breaker = &svc["breaker"];
    assert_eq!(breaker["state"], "closed");
    assert_eq!(breaker["failure_ratio"], 0.0);
    assert_eq!(breaker["retry_after_ms"], serde_json::Value::Null);
    assert_eq!(svc["rate_limit"]["rate"], "100/s");
    assert_eq!(svc["rate_limit"]["burst"], 20);
    let available = svc["rate_limit"]["available"]
        .as_u64()
        .expect("a token count");
    assert!(available <= 20, "{available}");
    assert_eq!(svc["in_flight"], 0);
}

#[tokio::test]
async fn bad_requests_unknown_names_and_upstreams_without_a_breaker() {
    let up = TestUpstream::http1().await;
    let yaml = format!(
        "upstreams:\n{}{}",
        upstream("svc", &[up.url()], ""),
        upstream("plain", &[up.url()], "    circuit_breaker: off\n"),
    );
    let proxy = TestProxy::start(&yaml).await;
    let path = "/admin/upstreams/svc/breaker";
    let cases = [
        ("{not json", 400, "bad_request"),
        (r#"{"verb": "reset"}"#, 400, "bad_request"),
        (r#"{"action": "explode"}"#, 400, "unknown_action"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = admin(&proxy, "POST", path, Some(body), None).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let reset = Some(r#"{"action": "reset"}"#);
    let (status, answer) =
        admin(&proxy, "POST", "/admin/upstreams/nope/breaker", reset, None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("unknown_upstream"))
    );
    let (status, _) = admin(&proxy, "GET", "/admin/upstreams/nope", None, None).await;
    assert_eq!(status, 404);
    let (status, answer) = admin(
        &proxy,
        "POST",
        "/admin/upstreams/plain/breaker",
        reset,
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("no_breaker"))
    );
    let (status, view) = admin(&proxy, "GET", "/admin/upstreams/plain", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (view["breaker"].clone(), view["rate_limit"].clone()),
        (json!(null), json!(null))
    );
    let (status, _) = admin(&proxy, "GET", path, None, None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn passthrough_authorities_show_their_own_breakers() {
    let up = TestUpstream::http1().await;
    let yaml = "passthrough: { enabled: true }\ndefaults:\n  circuit_breaker: { consecutive_failures: 2, failure_rate: off }\n";
    let proxy = TestProxy::start(yaml).await;
    assert_eq!(get(&proxy, &up.authority()).await.status(), 200);
    let (status, list) = admin(&proxy, "GET", "/admin/upstreams", None, None).await;
    assert_eq!(status, 200);
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == up.authority().as_str())
        .expect("the authority is listed");
    assert_eq!(entry["passthrough"], true);
    assert_eq!(entry["breaker"]["state"], "closed");
    assert_eq!(entry["breaker"]["calls_in_window"], 1);

    let path = format!("/admin/upstreams/{}/breaker", up.authority());
    let body = Some(r#"{"action": "force-open"}"#);
    let (status, view) = admin(&proxy, "POST", &path, body, None).await;
    assert_eq!(
        (status, view["breaker"]["state"].as_str()),
        (200, Some("forced_open"))
    );
    assert_eq!(
        error_code(&get(&proxy, &up.authority()).await),
        "circuit_open"
    );
    assert_eq!(state(&scrape(&proxy).await, "passthrough"), Some(2.0));
}
