//! The pooled hyper-util client of one upstream: keep-alive pool with the upstream's idle
//! timeout, TCP connect timeout, TLS via rustls for `https` endpoints, HTTP/1.1 or HTTP/2.

use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::ServerName;

use crate::proxy::body::RequestBody;
use crate::upstream::policy::{UpstreamPolicy, UpstreamProtocol};
use crate::upstream::tls::{self, TlsError};

/// The client type every upstream uses; one concrete type, no boxing.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// Builds the client for an upstream from its policy.
pub fn build(policy: &UpstreamPolicy) -> Result<HttpClient, TlsError> {
    let needs_tls = policy.endpoints.iter().any(|e| e.is_tls());
    let tls_config = if needs_tls {
        tls::client_config(&policy.tls)?
    } else {
        // Never used for plain endpoints; an empty root store keeps start-up cheap.
        empty_tls_config()?
    };
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_or_http();
    if let Some(name) = &policy.tls.server_name {
        let name = ServerName::try_from(name.clone()).map_err(|e| TlsError::File {
            path: "tls.server_name".into(),
            message: e.to_string(),
        })?;
        builder = builder.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    let http = http_connector(policy.timeouts.connect);
    let https = match policy.protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(http),
    };
    Ok(client_builder(
        policy.timeouts.idle,
        policy.protocol == UpstreamProtocol::Http2,
    )
    .build(https))
}

/// A plain-HTTP client for passthrough authorities (absolute-form `http://` requests).
pub fn build_plain(connect: Duration, idle: Duration) -> Result<HttpClient, TlsError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(empty_tls_config()?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http_connector(connect));
    Ok(client_builder(idle, false).build(https))
}

fn http_connector(connect: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect));
    http
}

fn client_builder(idle: Duration, http2_only: bool) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(http2_only);
    builder
}

fn empty_tls_config() -> Result<rustls::ClientConfig, TlsError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}
