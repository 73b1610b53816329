//! The layer order for one upstream, outermost first, written as one async function so the
//! order is read top to bottom and costs no boxing:
//!
//! 1. request deadline  → 504 `upstream_timeout`: bounds all tries and backoff together;
//! 2. rate limit        → 429 `rate_limited`: once per request, so a retry never becomes a 429;
//!    the route's own bucket when the request matches a route that has one;
//! 3. bulkhead          → 503 `overloaded`: protects the upstream from the app, not per try.
//!    A request that must wait for a token (`mode: wait`) takes its bulkhead slot *before*
//!    waiting, so parked requests count against `concurrency.max_requests` and are bounded;
//!    a request refused at once never holds a slot (`upstream/admission.rs`);
//! 4. fallback          open breaker → the fallback upstream's own stack;
//! 5. retry             attempts, budget, backoff, Retry-After, body replay;
//! 6.   breaker         per try, inside retry: every try is admitted and recorded,
//!      and an opening breaker stops further tries;
//! 7.   per-try timeout inside the breaker, so timeouts count as failures;
//! 8.   balance         inside retry, so a retry can pick another endpoint;
//! 9.   client          pooled connection (TLS when `https`), connect timeout.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use http_body::Body as _;
use tokio::time::Instant;

use crate::breaker::TryPermit;
use crate::error::ProxyError;
use crate::metrics::UpstreamMetrics;
use crate::outcome::Outcome;
use crate::proxy::body::{RequestBody, ResponseBody};
use crate::proxy::headers::Forwarding;
use crate::retry::replay::{self, Replay};
use crate::retry::{Decision, Retrier, SkipReason, retry_reason};
use crate::routing::Router;
use crate::upstream::Upstream;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::outgoing::Outgoing;
use crate::upstream::pool::{PooledBody, SendError};
use crate::upstream::try_timer::{self, TryTimer};

/// Per-request inputs that are not part of the HTTP request itself.
#[derive(Clone, Debug, Default)]
pub struct Forward {
    /// `x-rampart-attempts`, capped at the configured attempts.
    pub attempts_cap: Option<u32>,
    /// `x-rampart-timeout-ms`, capped at the configured request timeout.
    pub timeout_cap: Option<Duration>,
    /// The app's address, for `rate_limit.key: client-ip`.
    pub client: Option<IpAddr>,
    /// Fallback upstreams this request has already been sent on through.
    pub fallback_hops: u8,
    /// The request lines rampart adds for the upstream (`x-forwarded-*`, `via`, ...).
    pub forwarding: Forwarding,
    /// The client connection's reusable per-try timer; `None`: each try arms its own.
    pub try_timer: Option<TryTimer>,
    /// When the proxy took the request: its deadline counts from then, and a request
    /// admitted without waiting is admitted then (clock readings cost per request).
    /// `None`: when the stack starts.
    pub arrived: Option<Instant>,
}

/// What the stack produced for one request.
#[derive(Debug)]
pub struct Exchange {
    /// The upstream response to pass through, or the local answer to generate.
    pub result: Result<Response<ResponseBody>, ProxyError>,
    /// Tries made (0 when refused before any try).
    pub attempts: u32,
}

impl Upstream {
    /// Runs one request through this upstream's stack. `req` has its headers already
    /// prepared by the proxy; its URI is rewritten here to each try's endpoint. `routes` is
    /// the live routing table, where a fallback upstream is looked up.
    ///
    /// A block, not an `async fn`: it keeps one copy of each argument (see
    /// `proxy::Handler`).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn call(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        fwd: Forward,
        routes: &ArcSwap<Router>,
    ) -> impl Future<Output = Exchange> {
        async move {
            let (timeouts, retry) = self.policies_for(req.method(), req.uri().path());
            let request_timeout = fwd
                .timeout_cap
                .map_or(timeouts.request, |t| t.min(timeouts.request));
            let arrived = fwd.arrived.unwrap_or_else(Instant::now);
            let deadline = arrived + request_timeout;

            // Admission and body buffering usually finish on their first poll: the request
            // deadline's timer is armed only for those that wait.
            let mut waited = false;
            let admitted = {
                let mut admission = std::pin::pin!(self.admit_limited(
                    req.method(),
                    req.uri().path(),
                    req.headers(),
                    Some(&fwd.forwarding),
                    fwd.client,
                ));
                let admission = std::future::poll_fn(|cx| {
                    let poll = admission.as_mut().poll(cx);
                    waited |= poll.is_pending();
                    poll
                });
                try_timer::timeout_at(None, deadline, admission).await
            };
            let in_flight = match admitted.unwrap_or(Err(ProxyError::UpstreamTimeout)) {
                Ok(guard) => guard,
                Err(e) => {
                    return Exchange {
                        result: Err(e),
                        attempts: 0,
                    };
                }
            };

            // The breaker admits the first try before the request is taken apart, so a refusal
            // can hand the whole request to the fallback upstream.
            let admitted_at = if waited { Instant::now() } else { arrived };
            let first = match self.admit_try(None, admitted_at) {
                Ok(admitted) => admitted,
                Err(rejected) => {
                    drop(in_flight);
                    return self.fall_back(req, fwd, routes, rejected).await;
                }
            };

            let (parts, body) = req.into_parts();
            // Kept for later tries; borrowed only through `head`, since a borrowed local
            // keeps its own slot in the future until its scope ends.
            let mut head = Some(parts);
            let retrier = {
                let parts = head.as_ref().expect("just set");
                Retrier::new(retry, fwd.attempts_cap, &parts.method, &parts.headers)
            };
            // Whether nothing was awaited since `admitted_at` (no body to buffer).
            let mut buffered_at_once = false;
            let mut replay = match body {
                // Nothing to read: sent as an empty in-memory body, which rampart's own HTTP/1.1
                // client takes (upstream::h1) whatever the attempts.
                RequestBody::Streaming(body) if body.is_end_stream() => {
                    buffered_at_once = true;
                    Replay::Buffered(None)
                }
                RequestBody::Streaming(body) if retrier.max_attempts() > 1 => {
                    match try_timer::timeout_at(
                        None,
                        deadline,
                        replay::prepare(body, retry.max_body_bytes),
                    )
                    .await
                    {
                        Ok(Ok(replay)) => replay,
                        Ok(Err(_)) => {
                            let e = ProxyError::BadRequest("the request body could not be read");
                            return Exchange {
                                result: Err(e),
                                attempts: 0,
                            };
                        }
                        Err(_) => {
                            return Exchange {
                                result: Err(ProxyError::UpstreamTimeout),
                                attempts: 0,
                            };
                        }
                    }
                }
                body => Replay::Streaming(body),
            };
            if retrier.max_attempts() > 1
                && let Some(budget) = &self.budget
            {
                budget.deposit();
            }

            let hedge = !retry.hedge_delay.is_zero()
                && retrier.method_safe()
                && retrier.max_attempts() > 1
                && replay.is_replayable()
                && self.endpoints.len() > 1;
            let mut tries = 0;
            let mut admitted = Some(first);
            let result = loop {
                // A first try with no body to buffer starts at its admission (one clock
                // reading fewer per request).
                let started = if tries == 0 && buffered_at_once {
                    admitted_at
                } else {
                    Instant::now()
                };
                let try_deadline = deadline.min(started + timeouts.per_try);
                let (index, permit) = admitted.take().expect("every try is admitted first");
                let (result, index) = if hedge && tries == 0 {
                    let parts = head.as_ref().expect("the first try keeps the head");
                    // Boxed: two tries in one future; inline, every request's future would carry
                    // their size.
                    let (result, index, made) = Box::pin(self.hedged(
                        (parts, &fwd.forwarding),
                        &mut replay,
                        retry.hedge_delay,
                        (timeouts.per_try, deadline),
                        (index, permit),
                    ))
                    .await;
                    // One try, or two when the hedge went out.
                    tries += made;
                    (result, index)
                } else {
                    tries += 1;
                    let body = replay.take().unwrap_or_else(RequestBody::empty);
                    // The last possible try takes the head itself; an earlier one borrows it,
                    // and only a client that needs the request by value copies it.
                    let req = match head.take_if(|_| tries == retrier.max_attempts()) {
                        Some(mut parts) => {
                            parts.extensions.clear();
                            Outgoing::owned(Request::from_parts(parts, body), Some(&fwd.forwarding))
                        }
                        None => Outgoing::borrowed(
                            head.as_ref().expect("kept until the last try"),
                            body,
                            Some(&fwd.forwarding),
                        ),
                    };
                    let timer = fwd.try_timer.as_ref();
                    match self
                        .try_once(req, &self.endpoints[index], try_deadline, permit, timer)
                        .await
                    {
                        Err(Failed::AppBody) => {
                            // The app's own body broke (bad chunk framing, client gone): not
                            // the endpoint's failure (the breaker permit is released unrecorded),
                            // and there is no body left to retry with.
                            let e = ProxyError::BadRequest("the request body could not be read");
                            return Exchange {
                                result: Err(e),
                                attempts: tries,
                            };
                        }
                        result => (result.map_err(Failed::outcome), index),
                    }
                };
                let outcome = match &result {
                    Ok(response) => Outcome::from_status(response.status()),
                    Err(outcome) => *outcome,
                };
                // Most tries end the request (a success): no clock reading for them.
                if !retrier.may_retry(tries, outcome) {
                    break result;
                }
                // A breaker that this try (or another request) opened stops the retries; the
                // budget is not charged for a retry that cannot be made.
                let now = Instant::now();
                let open = self.breaker_refuses(now);
                let decision = retrier.decide(
                    tries,
                    outcome,
                    result.as_ref().ok().map(Response::headers),
                    replay.is_replayable(),
                    now,
                    deadline,
                    if open { None } else { self.budget.as_ref() },
                    &mut rand::rng(),
                );
                let decision = match decision {
                    Decision::Retry { .. } if open => Decision::Skip(SkipReason::CircuitOpen),
                    other => other,
                };
                match decision {
                    Decision::Done => break result,
                    Decision::Skip(reason) => {
                        self.metrics.retry_skipped(reason);
                        tracing::debug!(upstream = %self.name, reason = reason.as_str(), "retry skipped");
                        break result;
                    }
                    Decision::Retry { delay } => {
                        tracing::debug!(
                            upstream = %self.name,
                            attempt = tries + 1,
                            reason = %retry_reason(outcome),
                            delay_ms = delay.as_millis() as u64,
                            "retrying"
                        );
                        drop(result);
                        tokio::time::sleep(delay).await;
                        match self.admit_try(Some(index), Instant::now()) {
                            Ok(next) => {
                                // Counted once made: a retry refused here is a skipped one.
                                self.metrics.retry(outcome);
                                admitted = Some(next);
                            }
                            Err(rejected) => {
                                // Opened during the backoff: the retry is refused as a call.
                                self.metrics.retry_skipped(SkipReason::CircuitOpen);
                                return Exchange {
                                    result: Err(ProxyError::CircuitOpen {
                                        retry_after: rejected.retry_after,
                                    }),
                                    attempts: tries,
                                };
                            }
                        }
                    }
                }
            };
            // The kept head has gone upstream for the last time: its map holds the next
            // response's headers on this thread.
            if let Some(parts) = head {
                crate::spare_header_map::keep(parts.headers);
            }
            let result = match result {
                Ok(response) => Ok(response.map(|body| ResponseBody::Upstream {
                    body,
                    in_flight: Some(in_flight),
                })),
                Err(Outcome::Timeout) => Err(ProxyError::UpstreamTimeout),
                Err(_) => Err(ProxyError::UpstreamUnavailable),
            };
            Exchange {
                result,
                attempts: tries,
            }
        }
    }

    /// The first try, plus a second one to another endpoint if no response came within
    /// `delay`; the first HTTP response wins and the other try is cancelled (dropped). A try
    /// that fails without a response leaves the race to the other one. Also returns the
    /// endpoint of the try that decided and how many tries were made (1 or 2).
    async fn hedged(
        &self,
        (parts, forwarding): (&http::request::Parts, &Forwarding),
        replay: &mut Replay,
        delay: Duration,
        (per_try, deadline): (Duration, Instant),
        (first_index, first_permit): (usize, Option<TryPermit<'_>>),
    ) -> (Result<Response<PooledBody>, Outcome>, usize, u32) {
        let first_req = borrowed(parts, replay, forwarding);
        let first_deadline = deadline.min(Instant::now() + per_try);
        // Hedged bodies are buffered, so `Failed::AppBody` cannot happen here.
        // Each try is created here, not inside an async block, so one dropped before it was
        // ever polled still counts (as cancelled).
        let first = self.try_once(
            first_req,
            &self.endpoints[first_index],
            first_deadline,
            first_permit,
            None,
        );
        let first = async { first.await.map_err(Failed::outcome) };
        tokio::pin!(first);
        tokio::select! {
            result = &mut first => return (result, first_index, 1),
            () = tokio::time::sleep(delay) => {}
        }
        if self.budget.as_ref().is_some_and(|b| !b.withdraw()) {
            self.metrics.retry_skipped(SkipReason::Budget);
            return (first.await, first_index, 1);
        }
        let Ok((second_index, second_permit)) = self.admit_try(Some(first_index), Instant::now())
        else {
            // The breaker opened meanwhile: no second try.
            return (first.await, first_index, 1);
        };
        let second_req = borrowed(parts, replay, forwarding);
        let second_deadline = deadline.min(Instant::now() + per_try);
        let second = self.try_once(
            second_req,
            &self.endpoints[second_index],
            second_deadline,
            second_permit,
            None,
        );
        let second = async { second.await.map_err(Failed::outcome) };
        tokio::pin!(second);
        let (result, index, hedge_won) = tokio::select! {
            result = &mut first => match result {
                Ok(_) => (result, first_index, false),
                Err(_) => (second.await, second_index, true),
            },
            result = &mut second => match result {
                Ok(_) => (result, second_index, true),
                Err(_) => (first.await, first_index, false),
            },
        };
        self.metrics.hedge(hedge_won);
        (result, index, 2)
    }

    /// One try against one endpoint, until response headers or `deadline`; its outcome is
    /// recorded by the breaker that admitted it. The try counts from when this is called: a
    /// future dropped before its outcome, even unpolled, is counted as cancelled. `timer`:
    /// the client connection's reusable try timer (`None`: one of the try's own).
    fn try_once<'a>(
        &'a self,
        mut req: Outgoing<'a>,
        endpoint: &'a Endpoint,
        deadline: Instant,
        permit: Option<TryPermit<'a>>,
        timer: Option<&'a TryTimer>,
    ) -> impl Future<Output = Result<Response<PooledBody>, Failed>> + 'a {
        let unfinished = Unfinished(Some(&self.metrics));
        // A block, not an `async fn`: it keeps one copy of each argument (see
        // `proxy::Handler`).
        async move {
            let _counted = endpoint.start();
            if let Some(uri) = self.try_target(req.uri()) {
                req.set_target(uri);
            }
            // Inline: the pool boxes its own large paths (`EndpointPool::send`).
            let sent = endpoint.pool.send(&self.client, endpoint, req);
            let outcome = match try_timer::timeout_at(timer, deadline, sent).await {
                Ok(Ok(response)) => {
                    unfinished.finish();
                    let outcome = Outcome::from_status(response.status());
                    self.metrics.attempt(outcome);
                    if let Some(permit) = permit {
                        permit.record(outcome, Instant::now());
                    }
                    return Ok(response);
                }
                Ok(Err(SendError::Request(e))) if e.is_user() => {
                    // The app's own body (a malformed chunk, an aborted upload) failed, not the
                    // endpoint: the try counts as cancelled (`unfinished`).
                    tracing::debug!(upstream = %self.name, error = %e, "the app's request body failed");
                    return Err(Failed::AppBody);
                }
                Ok(Err(SendError::Connect(e))) => {
                    tracing::debug!(upstream = %self.name, endpoint = %endpoint.url, error = %e, "connect failed");
                    Outcome::ConnectFailure
                }
                Ok(Err(SendError::Request(e))) => {
                    tracing::debug!(upstream = %self.name, endpoint = %endpoint.url, error = %e, "the exchange failed");
                    Outcome::Reset
                }
                Ok(Err(SendError::Exchange(e))) => {
                    tracing::debug!(upstream = %self.name, endpoint = %endpoint.url, error = %e, "the exchange failed");
                    Outcome::Reset
                }
                Err(_) => Outcome::Timeout,
            };
            unfinished.finish();
            self.metrics.attempt(outcome);
            if let Some(permit) = permit {
                permit.record(outcome, Instant::now());
            }
            tracing::debug!(upstream = %self.name, endpoint = %endpoint.url, outcome = outcome.metric_label(), "try failed");
            Err(Failed::Upstream(outcome))
        }
    }

    /// The target for a try, in origin-form: the request's path (with the upstream's prefix
    /// removed when `strip_prefix` is on) and query. The pool adds the endpoint's scheme and
    /// authority where the connection's protocol wants them (HTTP/2). `None`: `uri` already
    /// is that, as it is for most requests (an app's origin-form request, no prefix to strip).
    fn try_target(&self, uri: &Uri) -> Option<Uri> {
        let strip = match (&self.policy.path_prefix, self.policy.strip_prefix) {
            (Some(prefix), true) => Some(prefix),
            _ => None,
        };
        if strip.is_none() && uri.scheme().is_none() && uri.authority().is_none() {
            return None;
        }
        let original = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path_and_query = match strip {
            Some(prefix) => strip_prefix(prefix, &original),
            None => original,
        };
        Some(Uri::from(path_and_query))
    }
}

/// Counts a try as `cancelled` when it ends without an outcome of the endpoint's: the hedge
/// that lost the race, a try whose app went away or whose app's body broke.
struct Unfinished<'a>(Option<&'a UpstreamMetrics>);

impl Unfinished<'_> {
    /// The try has an outcome, counted by the caller.
    fn finish(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(metrics) = self.0 {
            metrics.attempt_cancelled();
        }
    }
}

/// Why a try ended without a response.
#[derive(Clone, Copy, Debug)]
enum Failed {
    /// The endpoint failed: counted, fed to retry (and the breaker).
    Upstream(Outcome),
    /// The app's request body failed while being sent: nobody's outcome.
    AppBody,
}

impl Failed {
    /// The outcome, for paths where `AppBody` cannot occur (buffered bodies).
    fn outcome(self) -> Outcome {
        match self {
            Failed::Upstream(outcome) => outcome,
            Failed::AppBody => Outcome::Reset,
        }
    }
}

/// A hedged try: the head stays with the stack (both tries need it), the body is replayed.
fn borrowed<'a>(
    parts: &'a http::request::Parts,
    replay: &mut Replay,
    forwarding: &'a Forwarding,
) -> Outgoing<'a> {
    let body = replay.take().unwrap_or_else(RequestBody::empty);
    Outgoing::borrowed(parts, body, Some(forwarding))
}

/// Removes `prefix` from the path; stripping the whole path leaves `/`.
fn strip_prefix(prefix: &str, pq: &PathAndQuery) -> PathAndQuery {
    let Some(rest) = pq.as_str().strip_prefix(prefix) else {
        return pq.clone();
    };
    if prefix == "/" {
        return pq.clone();
    }
    let rewritten = if rest.is_empty() || rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_owned()
    };
    PathAndQuery::try_from(rewritten).unwrap_or_else(|_| pq.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request's future lives in its connection's one future slot, which hyper
    /// allocates per connection (idle or not) and moves each request's future into, so its
    /// size is paid in memory per connection and in copies per request. Rare, large paths
    /// (opening a connection, hyper's clients, hedging, Redis) are boxed where they start;
    /// the usual exchange on rampart's own client stays inline (boxing it cost more per
    /// request than its size does). 8 KiB crept in once; see `proxy::Handler` for why the
    /// layers are not `async fn`s.
    #[tokio::test]
    async fn the_per_request_future_stays_small() {
        let yaml =
            "upstreams:\n  svc:\n    endpoints: [\"http://127.0.0.1:1\"]\n    hosts: [svc]\n";
        let config = crate::config::parse(yaml, &|_| None).unwrap();
        let metrics = crate::metrics::Metrics::new();
        let upstream = Upstream::new(config.upstreams[0].clone(), &metrics).unwrap();
        let routes = ArcSwap::from_pointee(Router::default());
        let call = upstream.call(
            Request::new(RequestBody::empty()),
            Forward::default(),
            &routes,
        );
        let size = std::mem::size_of_val(&call);
        // 2,392 bytes with rustc 1.95; 3,808 while the layers were `async fn`s.
        assert!(size <= 3072, "Upstream::call's future is {size} bytes");
    }

    #[test]
    fn stripping_keeps_the_query_and_leaves_root() {
        let s =
            |p: &str, pq: &str| strip_prefix(p, &PathAndQuery::try_from(pq).unwrap()).to_string();
        assert_eq!(s("/api", "/api/users?id=1"), "/users?id=1");
        assert_eq!(s("/api", "/api"), "/");
        assert_eq!(s("/api", "/api?x"), "/?x");
        assert_eq!(s("/", "/x"), "/x");
    }
}
