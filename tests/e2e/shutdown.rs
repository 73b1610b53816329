//! Graceful shutdown in-process (SPEC §7): in-flight requests finish, a hanging one makes
//! the sequence time out, idle keep-alive connections are closed.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use rampart::app::Exit;

use crate::support::client::{self, request};
use crate::support::{Reply, TestProxy, TestUpstream, empty};

fn config(endpoint: &str, shutdown: &str) -> String {
    format!(
        "shutdown: {shutdown}\nupstreams:\n  svc:\n    endpoints: [\"{endpoint}\"]\n    hosts: [svc]\n    retry: {{ attempts: 1 }}\n"
    )
}

#[tokio::test]
async fn an_in_flight_request_completes_and_the_exit_is_clean() {
    let up = TestUpstream::http1().await;
    up.push(Reply::ok("late").delay(Duration::from_millis(400)));
    let proxy = TestProxy::start(&config(&up.url(), "{ drain_delay: 0s, timeout: 3s }")).await;
    let req = request("GET", &proxy.url("/slow"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let in_flight =
        tokio::spawn(async move { client::collect(client::send(req).await.unwrap()).await });
    up.wait_for(1).await;

    let started = Instant::now();
    assert_eq!(proxy.shutdown().await, Exit::Clean);
    assert!(started.elapsed() < Duration::from_secs(2));
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"late");
}

#[tokio::test]
async fn a_hanging_request_makes_shutdown_time_out() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::hang());
    let proxy = TestProxy::start(&config(&up.url(), "{ drain_delay: 0s, timeout: 300ms }")).await;
    let req = request("GET", &proxy.url("/hang"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let in_flight = tokio::spawn(client::send(req));
    up.wait_for(1).await;

    let started = Instant::now();
    assert_eq!(proxy.shutdown().await, Exit::TimedOut);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    in_flight.abort();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::ok("hi"));
    let proxy = TestProxy::start(&config(&up.url(), "{ drain_delay: 0s, timeout: 3s }")).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /k HTTP/1.1\r\nHost: svc\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"hi") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));

    // The connection is idle and kept alive; shutdown closes it and ends cleanly.
    let started = Instant::now();
    assert_eq!(proxy.shutdown().await, Exit::Clean);
    let rest = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
        .await
        .expect("the idle connection was closed");
    assert!(matches!(rest, Ok(0) | Err(_)), "{rest:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn after_the_drain_delay_new_connections_are_refused_while_admin_still_answers() {
    let up = TestUpstream::http1().await;
    up.push(Reply::ok("late").delay(Duration::from_millis(800)));
    let proxy = TestProxy::start(&config(&up.url(), "{ drain_delay: 100ms, timeout: 3s }")).await;
    let req = request("GET", &proxy.url("/slow"))
        .header("host", "svc")
        .body(empty())
        .unwrap();
    let in_flight =
        tokio::spawn(async move { client::collect(client::send(req).await.unwrap()).await });
    up.wait_for(1).await;
    let (addr, admin) = (proxy.addr, proxy.admin);
    let shutdown = tokio::spawn(proxy.shutdown());

    // Once the drain delay is over the listener is closed: connecting fails.
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting after the drain delay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The in-flight request is still running, and the admin listener still answers.
    assert!(!in_flight.is_finished());
    let readyz = client::get(&format!("http://{admin}/readyz")).await;
    assert_eq!(readyz.status(), 503);
    let healthz = client::get(&format!("http://{admin}/healthz")).await;
    assert_eq!(healthz.status(), 200);

    assert_eq!(in_flight.await.unwrap().status(), 200);
    assert_eq!(shutdown.await.unwrap(), Exit::Clean);
}

#[tokio::test]
async fn an_h2_connection_finishes_its_stream_then_closes() {
    let up = TestUpstream::http1().await;
    up.set_default(Reply::ok("hi"));
    up.push(Reply::ok("hi"));
    up.push(Reply::ok("late").delay(Duration::from_millis(400)));
    let proxy = TestProxy::start(&config(&up.url(), "{ drain_delay: 0s, timeout: 3s }")).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let get = |path: &str| {
        request("GET", &format!("http://svc{path}"))
            .body(empty())
            .unwrap()
    };

    // One answered stream first, so the connection's task has waited and been woken.
    let first = client::collect(sender.send_request(get("/first")).await.unwrap()).await;
    assert_eq!(first.body().as_ref(), b"hi");
    let slow = sender.send_request(get("/slow"));
    let slow = tokio::spawn(async move { client::collect(slow.await.unwrap()).await });
    up.wait_for(2).await;

    let started = Instant::now();
    assert_eq!(proxy.shutdown().await, Exit::Clean);
    assert!(started.elapsed() < Duration::from_secs(2));
    let resp = slow.await.unwrap();
    assert_eq!(resp.body().as_ref(), b"late");
    tokio::time::timeout(Duration::from_secs(1), conn)
        .await
        .expect("the proxy closed the h2 connection")
        .unwrap()
        .unwrap();
}
