//! Circuit breakers through the running server: each trip rule, Retry-After, probes and
//! recovery, retries stopped by an opening breaker, dry run, a chaos run, endpoint scope
//! (outlier ejection), fallback chains, and the admin API. Metrics are read from /metrics
//! over HTTP, so the lazy open → half-open refresh before rendering is exercised too.

mod admin;
mod chaos;
mod fallback;
mod outlier;
mod trips;

use bytes::Bytes;
use http::Response;
use serde_json::Value;

use crate::support::client::{self, request};
use crate::support::{Metrics, TestProxy, empty, full};

/// An upstream block: `name` on `endpoints`, matched by host `name`, with `extra` lines
/// (each indented by four spaces, ending in a newline).
pub fn upstream(name: &str, endpoints: &[String], extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "  {name}:\n    endpoints: [{}]\n    hosts: [{name}]\n    timeouts: {{ connect: 500ms, request: 5s, per_try: 2s }}\n{extra}",
        list.join(", ")
    )
}

/// GET /x with `Host: host` through the proxy.
pub async fn get(proxy: &TestProxy, host: &str) -> Response<Bytes> {
    let req = request("GET", &proxy.url("/x"))
        .header("host", host)
        .body(empty())
        .unwrap();
    client::collect(client::send(req).await.unwrap()).await
}

/// The local error code of a generated answer, `""` for an upstream response.
pub fn error_code(resp: &Response<Bytes>) -> &str {
    client::header(resp, "x-rampart-error").unwrap_or("")
}

/// /metrics as a scraper sees it (breaker gauges refreshed first).
pub async fn scrape(proxy: &TestProxy) -> Metrics {
    Metrics::scrape(&proxy.admin_url("/metrics")).await
}

/// An admin call: `(status, JSON body)`.
pub async fn admin(
    proxy: &TestProxy,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = request(method, &proxy.admin_url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(empty, |b| full(Bytes::from(b.to_owned())));
    let resp = client::collect(client::send(req.body(body).unwrap()).await.unwrap()).await;
    let json = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), json)
}

/// `POST /admin/upstreams/{name}/breaker` with `{"action": action}` (no token).
pub async fn breaker_action(proxy: &TestProxy, name: &str, action: &str) -> Value {
    let path = format!("/admin/upstreams/{name}/breaker");
    let body = format!("{{\"action\": \"{action}\"}}");
    let (status, view) = admin(proxy, "POST", &path, Some(&body), None).await;
    assert_eq!(status, 200, "{action}: {view}");
    view
}

/// `rampart_circuit_breaker_transitions_total` for one pair of states.
pub fn transitions(m: &Metrics, upstream: &str, from: &str, to: &str) -> f64 {
    m.sum(
        "rampart_circuit_breaker_transitions_total",
        &[("upstream", upstream), ("from", from), ("to", to)],
    )
}

/// `rampart_circuit_breaker_opened_total` for one reason.
pub fn opened(m: &Metrics, upstream: &str, reason: &str) -> f64 {
    m.sum(
        "rampart_circuit_breaker_opened_total",
        &[("upstream", upstream), ("reason", reason)],
    )
}

/// `rampart_circuit_breaker_state` of one upstream.
pub fn state(m: &Metrics, upstream: &str) -> Option<f64> {
    m.value("rampart_circuit_breaker_state", &[("upstream", upstream)])
}

/// `rampart_circuit_breaker_rejected_total` of one upstream.
pub fn rejected(m: &Metrics, upstream: &str) -> Option<f64> {
    m.value(
        "rampart_circuit_breaker_rejected_total",
        &[("upstream", upstream)],
    )
}

/// `rampart_circuit_breaker_failure_ratio` of one upstream.
pub fn failure_ratio(m: &Metrics, upstream: &str) -> Option<f64> {
    m.value(
        "rampart_circuit_breaker_failure_ratio",
        &[("upstream", upstream)],
    )
}
