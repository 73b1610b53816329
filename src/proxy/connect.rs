//! `CONNECT host:port` tunnels (what clients send through `HTTPS_PROXY`): the matched
//! upstream's limits and breaker apply to tunnel set-up; the bytes then flow untouched.
//! Retries do not apply: a tunnel is one TCP connection. A tunnel goes only where the
//! `connect` policy allows (port) and the routed upstream names (host); see [`allowed`].

use std::net::IpAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::ConnectPolicy;
use crate::error::ProxyError;
use crate::outcome::Outcome;
use crate::proxy::Shared;
use crate::proxy::body::ResponseBody;
use crate::routing::passthrough::PASSTHROUGH_LABEL;
use crate::upstream::Upstream;

/// Opens the TCP connection, answers 200, and splices the upgraded client connection to it
/// in a task that shutdown can wait for and cut.
pub async fn tunnel<B>(
    shared: &Shared,
    upstream: &Arc<Upstream>,
    req: Request<B>,
    client: IpAddr,
) -> Result<Response<ResponseBody>, ProxyError> {
    let authority = req
        .uri()
        .authority()
        .cloned()
        .ok_or(ProxyError::BadRequest("CONNECT needs host:port"))?;
    let port = authority
        .port_u16()
        .ok_or(ProxyError::BadRequest("CONNECT needs host:port"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    allowed(upstream, &host, port, &shared.connect.load())?;

    // The upstream's rate limit and bulkhead, then its breaker, apply to tunnel set-up
    // (SPEC §3).
    let in_flight = upstream
        .admit_limited(req.method(), "/", req.headers(), None, Some(client))
        .await?;
    let permit = upstream
        .admit_tunnel(tokio::time::Instant::now())
        .map_err(|r| ProxyError::CircuitOpen {
            retry_after: r.retry_after,
        })?;
    let record = |outcome: Outcome| {
        upstream.metrics().attempt(outcome);
        if let Some(permit) = permit {
            permit.record(outcome, tokio::time::Instant::now());
        }
    };
    let connect_timeout = upstream.policy().timeouts.connect;
    let server = match tokio::time::timeout(
        connect_timeout,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            record(Outcome::ConnectFailure);
            tracing::debug!(upstream = upstream.name(), %authority, error = %e, "tunnel connect failed");
            return Err(ProxyError::UpstreamUnavailable);
        }
        Err(_) => {
            record(Outcome::Timeout);
            return Err(ProxyError::UpstreamTimeout);
        }
    };
    let _ = server.set_nodelay(true);
    record(Outcome::Success(StatusCode::OK));
    drop(in_flight);

    let on_upgrade = hyper::upgrade::on(req);
    let cancel = shared.cancel.clone();
    shared.tunnels.spawn(async move {
        let mut server = server;
        let mut client = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!(error = %e, "client went away before the tunnel opened");
                return;
            }
        };
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut server) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "tunnel closed with an error");
                }
            }
            () = cancel.cancelled() => {}
        }
    });
    Ok(Response::new(ResponseBody::empty()))
}

/// Whether a tunnel to `host:port` may be opened for `upstream`. A passthrough authority
/// (the request named exactly this host and port) may use `allowed_ports`. A configured
/// upstream must list `host` in `hosts`: an entry with a port allows exactly that port, one
/// without allows `allowed_ports`. So neither `x-rampart-upstream` nor a dedicated listener
/// can turn an upstream into a relay to a host it does not name.
pub fn allowed(
    upstream: &Upstream,
    host: &str,
    port: u16,
    policy: &ConnectPolicy,
) -> Result<(), ProxyError> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let port_allowed = policy.allowed_ports.contains(&port);
    if upstream.label() == PASSTHROUGH_LABEL {
        return port_allowed.then_some(()).ok_or(ProxyError::Forbidden(
            "CONNECT to this port is not allowed (connect.allowed_ports)",
        ));
    }
    let named = upstream.policy().hosts.iter().filter(|h| h.host == host);
    let mut host_named = false;
    for entry in named {
        host_named = true;
        if entry.port.map_or(port_allowed, |p| p == port) {
            return Ok(());
        }
    }
    Err(ProxyError::Forbidden(if host_named {
        "CONNECT to this port is not allowed (connect.allowed_ports)"
    } else {
        "CONNECT target is not one of the upstream's hosts"
    }))
}
