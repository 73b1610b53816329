//! Builds the JSON responses of SPEC §4 from a `ProxyError`; the only place that does.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::error::{ProxyError, ceil_secs};
use crate::proxy::body::ResponseBody;

/// Header naming the local error code, so apps and tests can tell generated answers apart.
pub const X_RAMPART_ERROR: &str = "x-rampart-error";

/// The response for `err`; `upstream` is the routed upstream's name when known. Nothing from
/// the request is echoed into headers, and the body is JSON-escaped, so no input can inject.
pub fn local_response(err: &ProxyError, upstream: Option<&str>) -> Response<ResponseBody> {
    let mut body = serde_json::Map::with_capacity(4);
    body.insert("error".into(), err.code().into());
    body.insert("message".into(), err.to_string().into());
    if let Some(name) = upstream {
        body.insert("upstream".into(), name.into());
    }
    if let Some(wait) = err.retry_after() {
        // Rounded up, like Retry-After: a client that waits this long finds a token.
        let ms = u64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
        body.insert("retry_after_ms".into(), ms.into());
    }
    let text = serde_json::Value::Object(body).to_string();

    let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
    *response.status_mut() = err.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_RAMPART_ERROR, HeaderValue::from_static(err.code()));
    if let Some(wait) = err.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(wait)));
    }
    if let ProxyError::RateLimited(info) = err {
        // draft-ietf-httpapi-ratelimit-headers-11, sections 3 and 4: Lists of one Item named
        // by a String, with Integer parameters; the burst is a vendor-prefixed parameter.
        let policy = format!(
            "\"default\";q={};w={};rampart-burst={}",
            info.quota, info.window_secs, info.burst
        );
        let state = format!(
            "\"default\";r={};t={}",
            info.remaining,
            ceil_secs(info.retry_after)
        );
        if let Ok(v) = HeaderValue::from_str(&policy) {
            headers.insert("ratelimit-policy", v);
        }
        if let Ok(v) = HeaderValue::from_str(&state) {
            headers.insert("ratelimit", v);
        }
    }
    response
}

/// A plain-text answer for requests that never reach routing (admin paths, probes).
pub fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RateLimitInfo;
    use http_body_util::BodyExt;
    use std::time::Duration;

    async fn json(resp: Response<ResponseBody>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn every_code_has_its_status_and_header() {
        let info = RateLimitInfo {
            retry_after: Duration::from_millis(1500),
            quota: 100,
            window_secs: 1,
            burst: 20,
            remaining: 0,
        };
        let cases = [
            (ProxyError::RateLimited(info), 429, "rate_limited"),
            (
                ProxyError::CircuitOpen {
                    retry_after: Duration::from_secs(3),
                },
                503,
                "circuit_open",
            ),
            (ProxyError::Overloaded, 503, "overloaded"),
            (ProxyError::UpstreamUnavailable, 502, "upstream_unavailable"),
            (ProxyError::UpstreamTimeout, 504, "upstream_timeout"),
            (ProxyError::NoRoute, 404, "no_route"),
            (
                ProxyError::BadRequest("bad x-rampart-attempts"),
                400,
                "bad_request",
            ),
            (ProxyError::Forbidden("CONNECT port"), 403, "forbidden"),
            (
                ProxyError::RequestHeadersTooLarge,
                431,
                "request_headers_too_large",
            ),
        ];
        for (err, status, code) in cases {
            let resp = local_response(&err, Some("payments"));
            assert_eq!(resp.status().as_u16(), status, "{code}");
            assert_eq!(resp.headers()[X_RAMPART_ERROR], code);
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
            let body = json(resp).await;
            assert_eq!(body["error"], code);
            assert_eq!(body["upstream"], "payments");
        }
    }

    #[tokio::test]
    async fn rate_limited_carries_retry_after_rounded_up_and_draft_fields() {
        let info = RateLimitInfo {
            retry_after: Duration::from_millis(1500),
            quota: 100,
            window_secs: 1,
            burst: 20,
            remaining: 0,
        };
        let resp = local_response(&ProxyError::RateLimited(info), None);
        assert_eq!(resp.headers()[RETRY_AFTER], "2");
        assert_eq!(
            resp.headers()["ratelimit-policy"],
            "\"default\";q=100;w=1;rampart-burst=20"
        );
        assert_eq!(resp.headers()["ratelimit"], "\"default\";r=0;t=2");
        let body = json(resp).await;
        assert_eq!(body["retry_after_ms"], 1500);

        let info = RateLimitInfo {
            retry_after: Duration::from_micros(4_200),
            quota: 6000,
            window_secs: 60,
            burst: 1,
            remaining: 0,
        };
        let resp = local_response(&ProxyError::RateLimited(info), None);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
        assert_eq!(resp.headers()["ratelimit"], "\"default\";r=0;t=1");
        assert_eq!(json(resp).await["retry_after_ms"], 5);
        assert!(body.get("upstream").is_none());
    }
}
