//! Opening upstream connections: TCP with the connect timeout and `TCP_NODELAY`, rustls for
//! `https` endpoints (ALPN picks HTTP/2 or HTTP/1.1 under `protocol: auto`), then hyper's
//! connection-level handshake with the connection driven by its own task. Pooling is
//! `pool.rs`'s job; one `Connector` per upstream, shared by its endpoints.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::proxy::body::RequestBody;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::h1::H1Conn;
use crate::upstream::policy::{UpstreamPolicy, UpstreamProtocol};
use crate::upstream::tls::{self, TlsError};

/// How an upstream's connections are opened.
pub struct Connector {
    /// For `https` endpoints; `None` when the upstream has none (passthrough is plain).
    tls: Option<TlsConnector>,
    /// `tls.server_name`: the name sent and verified instead of the endpoint's host.
    server_name: Option<ServerName<'static>>,
    connect_timeout: Duration,
    /// `timeouts.idle`: how long a pooled connection may wait for its next request.
    pub idle_timeout: Duration,
    protocol: UpstreamProtocol,
}

/// A fresh connection: rampart's own HTTP/1.1 client, or hyper's request handle with the
/// connection running in a spawned task.
#[derive(Debug)]
pub enum Conn {
    /// Plain HTTP/1.1 driven by the request itself; pooled between requests.
    Own(H1Conn),
    /// One request at a time; pooled between requests.
    Http1(http1::SendRequest<RequestBody>),
    /// Multiplexed; one shared connection per endpoint.
    Http2(http2::SendRequest<RequestBody>),
}

/// Why a connection could not be opened: nothing of the request was sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// DNS, TCP or TLS failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No connection within `timeouts.connect`.
    #[error("connect timed out")]
    Timeout,
    /// The HTTP handshake failed (HTTP/2 preface or settings).
    #[error("handshake: {0}")]
    Handshake(hyper::Error),
    /// An `https` endpoint on an upstream without TLS settings, or an invalid server name.
    #[error("{0}")]
    Tls(&'static str),
}

// === impl Connector ===

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("server_name", &self.server_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The connector for an upstream's policy (its TLS material is read now, not per
    /// connection).
    pub fn new(policy: &UpstreamPolicy) -> Result<Arc<Self>, TlsError> {
        let tls = if policy.endpoints.iter().any(|e| e.is_tls()) {
            let mut config = tls::client_config(&policy.tls)?;
            config.alpn_protocols = match policy.protocol {
                UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
                UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
                UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        let server_name = match &policy.tls.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone()).map_err(|e| TlsError::File {
                    path: "tls.server_name".into(),
                    message: e.to_string(),
                })?,
            ),
            None => None,
        };
        Ok(Arc::new(Self {
            tls,
            server_name,
            connect_timeout: policy.timeouts.connect,
            idle_timeout: policy.timeouts.idle,
            protocol: policy.protocol,
        }))
    }

    /// A plain-HTTP/1.1 connector for passthrough authorities (absolute-form `http://`).
    pub fn plain(connect_timeout: Duration, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            tls: None,
            server_name: None,
            connect_timeout,
            idle_timeout,
            protocol: UpstreamProtocol::Http1,
        })
    }

    /// True when connections are HTTP/2 by configuration (`protocol: http2`).
    pub fn prefers_h2(&self) -> bool {
        self.protocol == UpstreamProtocol::Http2
    }

    /// Opens a connection to `endpoint` and completes the HTTP handshake. `own`: a plain
    /// HTTP/1.1 connection is for rampart's own client (see `h1`), not hyper's.
    pub async fn connect(&self, endpoint: &Endpoint, own: bool) -> Result<Conn, ConnectError> {
        let authority = endpoint.authority.as_str();
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        tcp.set_nodelay(true)?;
        if endpoint.scheme != http::uri::Scheme::HTTPS {
            let h2 = self.protocol == UpstreamProtocol::Http2;
            if own && !h2 {
                return Ok(Conn::Own(H1Conn::new(tcp)));
            }
            return handshake(TokioIo::new(tcp), h2).await;
        }
        let connector = self
            .tls
            .as_ref()
            .ok_or(ConnectError::Tls("no TLS settings for an https endpoint"))?;
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(endpoint.host().to_owned())
                .map_err(|_| ConnectError::Tls("the endpoint host is not a valid TLS name"))?,
        };
        let handshake_deadline = tokio::time::Instant::now() + self.connect_timeout;
        let stream = tokio::time::timeout_at(handshake_deadline, connector.connect(name, tcp))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let h2 = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => true,
            Some(_) => false,
            None => self.protocol == UpstreamProtocol::Http2,
        };
        handshake(TokioIo::new(stream), h2).await
    }
}

/// Hands an idle connection of rampart's own client to hyper, for a request whose body
/// is streamed.
pub async fn hyper_http1(conn: H1Conn) -> Result<http1::SendRequest<RequestBody>, ConnectError> {
    handshake_http1(TokioIo::new(conn.into_io())).await
}

/// Runs hyper's client handshake on `io` and spawns the connection's task.
async fn handshake<T>(io: T, h2: bool) -> Result<Conn, ConnectError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if !h2 {
        return handshake_http1(io).await.map(Conn::Http1);
    }
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
        }
    });
    Ok(Conn::Http2(sender))
}

async fn handshake_http1<T>(io: T) -> Result<http1::SendRequest<RequestBody>, ConnectError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}
