//! The chaos load: workers (half over HTTP/1.1, half over h2c) send a bounded mix of GETs,
//! POSTs, POSTs with an Idempotency-Key and large streamed POSTs over every route, each with a
//! unique `x-chaos-id`, and classify every answer (an upstream response that is complete and the request's own, a truncated one, or a
//! well-formed SPEC §4 answer) or record why it is not one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::routes::{Mix, Route};
use crate::support::fault_upstream::{ID_HEADER, body_for};
use crate::support::{Body, client, full, generated};

/// A client that has no answer after this long has lost its request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of a POST body (buffered by the proxy for replay).
const POST_BODY: usize = 200;
/// Size of a `BigPost` body: beyond the default `retry.max_body_bytes` (64 KiB).
const BIG_POST_BODY: u64 = 96 * 1024;

/// The request method, chosen per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Get,
    /// POST without an Idempotency-Key: must never reach the upstream twice.
    Post,
    /// POST with an Idempotency-Key: retried like a GET.
    KeyedPost,
    /// POST with an Idempotency-Key and a streamed body too large to buffer for replay: may
    /// reach the upstream once at most.
    BigPost,
}

/// How a request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An upstream response with its whole body, carrying this request's id.
    Proxied(u16),
    /// An upstream response whose body broke off; the client saw the error.
    Truncated(u16),
    /// Over h2c, the stream reset where an HTTP/1.1 client sees a truncated body (a client
    /// may drop the response head of a stream reset before it read the head).
    Reset,
    /// A SPEC §4 answer.
    Local(&'static str),
    /// None before the client's patience ran out (routes with `patience`).
    Abandoned,
}

/// One request and what became of it.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: u64,
    pub route: usize,
    pub kind: Kind,
    /// Sent over h2c (else HTTP/1.1).
    pub h2: bool,
    /// When it was sent, from the start of its phase.
    pub sent: Duration,
    pub latency: Duration,
    /// `x-rampart-attempts` of the answer.
    pub attempts: Option<u32>,
    pub status: Option<u16>,
    /// The answer, or why it is not a well-formed one.
    pub answer: Result<Answer, String>,
}

/// A phase of traffic: `workers` concurrent clients until `requests` are sent or `duration`
/// passes; with `rate`, requests are spread evenly at that many per second.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    pub workers: usize,
    pub requests: u64,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub mix: Mix,
}

/// Issues the request ids of a whole run, so ids stay unique across phases.
#[derive(Debug, Default)]
pub struct Ids(AtomicU64);

struct Ctx {
    proxy: SocketAddr,
    routes: &'static [Route],
    phase: Phase,
    ids: Arc<Ids>,
    /// Tickets of this phase.
    next: AtomicU64,
    start: Instant,
}

/// Runs one phase against the proxy at `proxy`; every request sent gets a record.
pub async fn run(
    proxy: SocketAddr,
    routes: &'static [Route],
    phase: Phase,
    ids: Arc<Ids>,
) -> Vec<Record> {
    let ctx = Arc::new(Ctx {
        proxy,
        routes,
        phase,
        ids,
        next: AtomicU64::new(0),
        start: Instant::now(),
    });
    let mut workers = JoinSet::new();
    for i in 0..phase.workers {
        workers.spawn(worker(ctx.clone(), i % 2 == 1));
    }
    let mut records = Vec::new();
    while let Some(done) = workers.join_next().await {
        records.extend(done.expect("a load worker panicked"));
    }
    records.sort_by_key(|r| r.id);
    records
}

/// One client with its own keep-alive pool (or h2c connection), as an app would have.
async fn worker(ctx: Arc<Ctx>, h2: bool) -> Vec<Record> {
    // TCP_NODELAY, as curl, Go and reqwest set it: without it, a body written in several
    // segments waits out the peer's delayed ACK (40 ms), which is the client's, not rampart's.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build(connector);
    let mix = ctx.phase.mix as usize;
    let total_weight: u32 = ctx.routes.iter().map(|r| r.weights[mix]).sum();
    let mut records = Vec::new();
    loop {
        let ticket = ctx.next.fetch_add(1, Ordering::Relaxed);
        if ticket >= ctx.phase.requests {
            break;
        }
        if let Some(rate) = ctx.phase.rate {
            let due = ctx.start + Duration::from_secs_f64(ticket as f64 / rate);
            tokio::time::sleep_until(due).await;
        }
        let sent = ctx.start.elapsed();
        if sent >= ctx.phase.duration {
            break;
        }
        let id = ctx.ids.0.fetch_add(1, Ordering::Relaxed);
        // The route from the ticket, the method from how many rounds of routes came before,
        // so every route sees every method.
        let route = pick(ctx.routes, mix, ticket % u64::from(total_weight));
        let kind = match (ticket / u64::from(total_weight)) % 4 {
            0 => Kind::Get,
            1 => Kind::Post,
            2 => Kind::KeyedPost,
            _ => Kind::BigPost,
        };
        let started = Instant::now();
        let patience = ctx.routes[route].patience;
        let wait = patience.unwrap_or(CLIENT_TIMEOUT);
        let (attempts, status, answer) =
            match tokio::time::timeout(wait, exchange(&client, &ctx, route, kind, id, h2)).await {
                Ok(answered) => answered,
                // Dropping the exchange closes the connection: the proxy sees the app leave.
                Err(_) if patience.is_some() => (None, None, Ok(Answer::Abandoned)),
                Err(_) => (None, None, Err(format!("no answer within {wait:?}"))),
            };
        records.push(Record {
            id,
            route,
            kind,
            h2,
            sent,
            latency: started.elapsed(),
            attempts,
            status,
            answer,
        });
    }
    records
}

fn pick(routes: &[Route], mix: usize, mut slot: u64) -> usize {
    for (i, route) in routes.iter().enumerate() {
        let weight = u64::from(route.weights[mix]);
        if slot < weight {
            return i;
        }
        slot -= weight;
    }
    unreachable!("slot below the total weight")
}

async fn exchange(
    client: &Client<HttpConnector, Body>,
    ctx: &Ctx,
    route: usize,
    kind: Kind,
    id: u64,
    h2: bool,
) -> (Option<u32>, Option<u16>, Result<Answer, String>) {
    let route = &ctx.routes[route];
    let url = format!("http://{}{}/{id}", ctx.proxy, route.path);
    let method = if kind == Kind::Get { "GET" } else { "POST" };
    let mut req = client::request(method, &url).header(ID_HEADER, id);
    if matches!(kind, Kind::KeyedPost | Kind::BigPost) {
        req = req.header("idempotency-key", format!("key-{id}"));
    }
    let body = match kind {
        Kind::Get => crate::support::empty(),
        Kind::Post | Kind::KeyedPost => full(Bytes::from(vec![b'p'; POST_BODY])),
        Kind::BigPost => generated(BIG_POST_BODY),
    };
    let resp = match client.request(req.body(body).unwrap()).await {
        Ok(resp) => resp,
        Err(e) => {
            let error = format!("{e:?}");
            return if h2 && route.truncated && error.contains("INTERNAL_ERROR") {
                (None, None, Ok(Answer::Reset))
            } else {
                (None, None, Err(format!("no response: {error}")))
            };
        }
    };
    let status = resp.status().as_u16();
    let attempts = client::header(&resp, "x-rampart-attempts").and_then(|a| a.parse().ok());
    if attempts.is_none() {
        return (None, Some(status), Err("no x-rampart-attempts".into()));
    }
    let answer = classify(resp, route, kind, id).await;
    (attempts, Some(status), answer)
}

/// Checks one response and names what it is.
async fn classify(
    resp: Response<Incoming>,
    route: &Route,
    kind: Kind,
    id: u64,
) -> Result<Answer, String> {
    let status = resp.status().as_u16();
    if let Some(code) = client::header(&resp, "x-rampart-error").map(str::to_owned) {
        let unreplayable = if kind == Kind::BigPost {
            route.unreplayable
        } else {
            &[]
        };
        let code = route
            .local
            .iter()
            .chain(unreplayable)
            .copied()
            .find(|c| *c == code)
            .ok_or_else(|| format!("unexpected local answer {status} {code}"))?;
        let content_type = client::header(&resp, "content-type").map(str::to_owned);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{code}: body failed: {e}"))?
            .to_bytes();
        check_local(status, code, content_type.as_deref(), &body, route.upstream)?;
        return Ok(Answer::Local(code));
    }
    let echoed = client::header(&resp, ID_HEADER).map(str::to_owned);
    if echoed.as_deref() != Some(id.to_string().as_str()) {
        return Err(format!("{status} for id {id} carries id {echoed:?}"));
    }
    let declared: Option<usize> =
        client::header(&resp, "content-length").and_then(|l| l.parse().ok());
    let (body, broke) = read_body(resp.into_body()).await;
    if broke {
        let own_prefix = body == body_for(id, body.len());
        return if route.truncated && status == 200 && own_prefix {
            Ok(Answer::Truncated(status))
        } else {
            Err(format!(
                "{status}: body broke off after {} bytes",
                body.len()
            ))
        };
    }
    let expected = match status {
        200 => body_for(id, body.len()),
        503 => b"down".to_vec(),
        _ => return Err(format!("unexpected upstream status {status}")),
    };
    if body != expected || declared.is_some_and(|d| d != body.len()) || body.is_empty() {
        return Err(format!(
            "{status}: body is not this request's ({} bytes)",
            body.len()
        ));
    }
    if !route.proxied.contains(&status) {
        return Err(format!("upstream status {status} passed through"));
    }
    Ok(Answer::Proxied(status))
}

/// The body read so far, and whether it ended in an error instead of at its end.
async fn read_body(mut body: Incoming) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// A SPEC §4 answer: the status of its code, a JSON body naming the same code and the
/// upstream, `application/json`.
fn check_local(
    status: u16,
    code: &str,
    content_type: Option<&str>,
    body: &[u8],
    upstream: &str,
) -> Result<(), String> {
    let want = match code {
        "rate_limited" => 429,
        "circuit_open" | "overloaded" => 503,
        "upstream_unavailable" => 502,
        "upstream_timeout" => 504,
        "no_route" => 404,
        "bad_request" => 400,
        "request_headers_too_large" => 431,
        other => return Err(format!("code {other} is not in SPEC §4")),
    };
    if status != want {
        return Err(format!("{code} came with status {status}, not {want}"));
    }
    if content_type != Some("application/json") {
        return Err(format!("{code}: content-type {content_type:?}"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("{code}: body is not JSON: {e}"))?;
    if json["error"] != code || json["upstream"] != upstream || !json["message"].is_string() {
        return Err(format!("{code}: body {json}"));
    }
    Ok(())
}
