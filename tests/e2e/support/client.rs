//! Clients for tests: HTTP/1.1, h2c prior knowledge and HTTPS over hyper-util's pooled client;
//! absolute-form requests to a proxy; raw bytes over TCP; CONNECT tunnels and TLS over them.
//! No helper has a timeout of its own, so tests may pause tokio time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::body::{Body, empty};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A request builder for `method url`; finish it with `.body(body::empty())` or `body::full(..)`.
pub fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

/// GET over HTTP/1.1, body collected; panics on a transport error.
pub async fn get(url: &str) -> Response<Bytes> {
    let req = request("GET", url).body(empty()).unwrap();
    collect(send(req).await.expect("GET failed")).await
}

/// One request over HTTP/1.1 (origin-form), body not read.
pub async fn send(req: Request<Body>) -> Result<Response<Incoming>, Error> {
    Ok(Client::builder(TokioExecutor::new())
        .build_http()
        .request(req)
        .await?)
}

/// One request over h2c (HTTP/2 prior knowledge), body not read.
pub async fn send_h2c(req: Request<Body>) -> Result<Response<Incoming>, Error> {
    Ok(Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
        .request(req)
        .await?)
}

/// One request over https:// (ALPN h2 or http/1.1) or http:// with `tls` as the client config.
pub async fn send_tls(
    req: Request<Body>,
    tls: Arc<ClientConfig>,
) -> Result<Response<Incoming>, Error> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .build(https)
        .request(req)
        .await?)
}

/// Send `req` (its URI absolute: `http://host:port/path`) to `proxy` as an absolute-form
/// HTTP/1.1 request, the way an app using `HTTP_PROXY` does. Host is set from the URI.
pub async fn via_proxy(
    proxy: SocketAddr,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, Error> {
    if !req.headers().contains_key(http::header::HOST) {
        let host = req
            .uri()
            .authority()
            .expect("absolute URI")
            .as_str()
            .parse()?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    send_over(TcpStream::connect(proxy).await?, req).await
}

/// One HTTP/1.1 request over an established stream (a CONNECT tunnel, TLS, a raw socket);
/// the URI is written exactly as given (origin- or absolute-form).
pub async fn send_over<I>(io: I, req: Request<Body>) -> Result<Response<Incoming>, Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender.send_request(req).await?)
}

/// TLS client handshake over `io` for `server_name` (e.g. inside a CONNECT tunnel).
pub async fn tls_over<I>(
    io: I,
    tls: Arc<ClientConfig>,
    server_name: &str,
) -> Result<TlsStream<I>, Error>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_owned())?;
    Ok(TlsConnector::from(tls).connect(name, io).await?)
}

/// Read the whole body into memory.
pub async fn collect(resp: Response<Incoming>) -> Response<Bytes> {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("response body").to_bytes();
    Response::from_parts(parts, bytes)
}

/// Read the whole body, counting bytes without keeping them.
pub async fn body_len(resp: Response<Incoming>) -> Result<u64, Error> {
    let mut body = resp.into_body();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
        }
    }
    Ok(len)
}

pub fn text(resp: &Response<Bytes>) -> &str {
    std::str::from_utf8(resp.body()).expect("UTF-8 body")
}

pub fn json(resp: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(resp.body()).expect("JSON body")
}

pub fn header<'a, B>(resp: &'a Response<B>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Write `bytes`, then read until the peer closes or `wait` passes; returns what was read.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_close(&mut stream, wait).await
}

/// Read until the peer closes (FIN or RST) or `wait` passes.
pub async fn read_until_close(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An answered `CONNECT`: the response head, and the stream (a tunnel when the status is 2xx).
pub struct Tunnel {
    pub status: StatusCode,
    pub head: String,
    pub stream: TcpStream,
}

/// Send `CONNECT target HTTP/1.1` to `proxy` and read the response head (nothing past it).
pub async fn connect(proxy: SocketAddr, target: &str) -> Result<Tunnel, Error> {
    let mut stream = TcpStream::connect(proxy).await?;
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read_u8().await.map(|b| head.push(b)).is_err() {
            break;
        }
    }
    let head = String::from_utf8(head)?;
    let code = head.split_whitespace().nth(1).ok_or("no status line")?;
    Ok(Tunnel {
        status: StatusCode::from_bytes(code.as_bytes())?,
        head,
        stream,
    })
}

/// Reads one response with a Content-Length body from `stream`, a raw HTTP/1.1 connection;
/// returns its head.
pub async fn read_response(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("a response head"));
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = super::raw_upstream::header_lines(&head, "content-length")[0]
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.unwrap();
    head
}
