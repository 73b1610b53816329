//! Client listeners: an accept loop per bound address that takes a `max_connections` permit
//! before accepting (so excess clients wait in the kernel backlog instead of costing us
//! memory), survives accept errors such as EMFILE with a backoff, and hands each connection
//! to hyper with the header limits and the graceful-shutdown watch.

pub mod connection;
pub mod h1;
pub mod header_timer;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

use crate::config::LimitsPolicy;
use crate::proxy::{ConnInfo, Shared};
use connection::ConnectionBuilder;

/// Longest pause after repeated accept errors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Every client connection of the app: tracked so shutdown can wait for them, and told
/// together to finish (in-flight requests complete, idle keep-alive connections close).
#[derive(Clone, Debug, Default)]
pub struct Drain {
    tracker: TaskTracker,
    signal: Arc<DrainSignal>,
}

/// What a connection watches for draining to start. Held behind one `Arc`, so a
/// connection's copy takes no lock (cloning or dropping a `CancellationToken` locks the node
/// every copy shares).
#[derive(Debug, Default)]
struct DrainSignal {
    /// Set before `token` fires: checked on every wake-up of a connection, where an atomic
    /// load is cheaper than the token's own check, which takes that shared lock.
    draining: AtomicBool,
    /// Wakes a connection that waits.
    token: CancellationToken,
}

/// Waits for draining to start. The token is polled only when the task's waker is new to
/// it, which leaves that waker with the token; other polls only load the `draining` flag
/// (polling the token takes a lock every connection shares; callgrind: ~280 instructions).
struct DrainWatch<'a> {
    signal: &'a DrainSignal,
    token: Pin<Box<WaitForCancellationFuture<'a>>>,
    registered: Option<Waker>,
}

impl<'a> DrainWatch<'a> {
    fn new(signal: &'a DrainSignal) -> Self {
        Self {
            signal,
            token: Box::pin(signal.token.cancelled()),
            registered: None,
        }
    }

    /// Ready once draining has started.
    fn poll_drained(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.registered {
            Some(waker) if waker.will_wake(cx.waker()) => {
                if self.signal.draining.load(Ordering::Acquire) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            _ => {
                self.registered = Some(cx.waker().clone());
                self.token.as_mut().poll(cx)
            }
        }
    }

    async fn wait(&mut self) {
        poll_fn(|cx| self.poll_drained(cx)).await;
    }
}

impl Drain {
    /// Asks every connection to finish gracefully; no new connection is tracked after this.
    pub fn begin(&self) {
        self.tracker.close();
        self.signal.draining.store(true, Ordering::Release);
        self.signal.token.cancel();
    }

    /// Resolves when every connection has ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        self.tracker.len()
    }
}

/// One listener's accept loop.
#[derive(Debug)]
pub struct Listener {
    /// The bound socket.
    pub listener: TcpListener,
    /// Set for an upstream's dedicated `listen` address.
    pub dedicated: Option<Arc<str>>,
}

/// Accepts until `stop` fires, then hands the socket back (a reload may restart the loop on
/// it with new limits); connections already accepted keep running under `graceful`.
pub async fn serve(
    listener: Listener,
    shared: Arc<Shared>,
    limits: LimitsPolicy,
    permits: Arc<Semaphore>,
    drain: Drain,
    stop: CancellationToken,
) -> Listener {
    let builder = ConnectionBuilder::new(&limits);
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return listener,
            },
            () = stop.cancelled() => return listener,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                    drop(permit);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => return listener,
                    }
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                    continue;
                }
            },
            () = stop.cancelled() => return listener,
        };
        backoff = Duration::from_millis(5);
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::new(client, listener.dedicated.clone());
        builder.spawn(stream, shared.clone(), conn, &drain, permit);
    }
}
