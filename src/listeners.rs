//! The set of client listeners of a running app (the main one and each upstream's dedicated
//! one), so a reload can start new ones, stop removed ones (their connections drain on their
//! own) and restart accept loops with new limits on the same socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LimitsPolicy};
use crate::proxy::Shared;
use crate::server::{self, Drain, Listener};

/// Which listener: the main one, or an upstream's dedicated one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenerKey {
    /// `listen`.
    Main,
    /// `upstreams.NAME.listen`.
    Upstream(Arc<str>),
}

impl ListenerKey {
    /// The config field that names this listener's address (for errors).
    pub fn field(&self) -> String {
        match self {
            ListenerKey::Main => "listen".into(),
            ListenerKey::Upstream(name) => format!("upstreams.{name}.listen"),
        }
    }
}

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({field}): {source}")]
pub struct BindError {
    /// The config field that names the address.
    pub field: String,
    /// The address.
    pub addr: SocketAddr,
    /// The OS error (address in use, permission denied...).
    pub source: std::io::Error,
}

/// Every listener a config asks for.
pub fn wanted(config: &Config) -> Vec<(ListenerKey, SocketAddr)> {
    let dedicated = config.upstreams.iter().filter_map(|u| {
        u.listen
            .map(|addr| (ListenerKey::Upstream(Arc::from(u.name.as_str())), addr))
    });
    std::iter::once((ListenerKey::Main, config.listen))
        .chain(dedicated)
        .collect()
}

/// Binds `addr` for `key`.
pub async fn bind(key: &ListenerKey, addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        field: key.field(),
        addr,
        source,
    })
}

struct Running {
    configured: SocketAddr,
    local: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Listener>,
}

/// The running accept loops.
pub struct Listeners {
    shared: Arc<Shared>,
    drain: Drain,
    state: Mutex<State>,
}

struct State {
    limits: LimitsPolicy,
    permits: Arc<Semaphore>,
    running: HashMap<ListenerKey, Running>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners").finish_non_exhaustive()
    }
}

impl Listeners {
    /// An empty set; `limits.max_connections` is shared by every listener.
    pub fn new(shared: Arc<Shared>, limits: LimitsPolicy, drain: Drain) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        Self {
            shared,
            drain,
            state: Mutex::new(State {
                limits,
                permits,
                running: HashMap::new(),
            }),
        }
    }

    /// Starts accepting on an already bound socket.
    pub fn start(&self, key: ListenerKey, listener: TcpListener, configured: SocketAddr) {
        let mut state = self.lock();
        let dedicated = match &key {
            ListenerKey::Main => None,
            ListenerKey::Upstream(name) => Some(name.clone()),
        };
        let running = self.spawn(
            &state,
            Listener {
                listener,
                dedicated,
            },
            configured,
        );
        if let Some(old) = state.running.insert(key, running) {
            old.stop.cancel();
        }
    }

    /// Bound addresses by listener.
    pub fn addrs(&self) -> Vec<(ListenerKey, SocketAddr)> {
        self.lock()
            .running
            .iter()
            .map(|(k, r)| (k.clone(), r.local))
            .collect()
    }

    /// Brings the running set to `wanted` with `limits`: binds new addresses first (an
    /// error changes nothing), then stops removed listeners, starts new ones, and restarts
    /// unchanged ones on their own socket when the limits changed.
    pub async fn reconcile(
        &self,
        wanted: &[(ListenerKey, SocketAddr)],
        limits: LimitsPolicy,
    ) -> Result<(), BindError> {
        let to_bind: Vec<(ListenerKey, SocketAddr)> = {
            let state = self.lock();
            wanted
                .iter()
                .filter(|(k, addr)| state.running.get(k).is_none_or(|r| r.configured != *addr))
                .cloned()
                .collect()
        };
        let mut bound = Vec::with_capacity(to_bind.len());
        for (key, addr) in to_bind {
            // A changed address may be the one a removed listener holds: that is a bind
            // error, reported rather than half-applied.
            bound.push((key.clone(), bind(&key, addr).await?, addr));
        }

        let mut restart = Vec::new();
        {
            let mut state = self.lock();
            let limits_changed = state.limits != limits;
            if state.limits.max_connections != limits.max_connections {
                // Connections accepted under the old cap keep their permits until they close.
                state.permits = Arc::new(Semaphore::new(limits.max_connections));
            }
            state.limits = limits;
            let keep: Vec<ListenerKey> = wanted.iter().map(|(k, _)| k.clone()).collect();
            let stale: Vec<ListenerKey> = state
                .running
                .keys()
                .filter(|k| !keep.contains(k) || bound.iter().any(|(b, _, _)| b == *k))
                .cloned()
                .collect();
            for key in stale {
                if let Some(old) = state.running.remove(&key) {
                    tracing::info!(listener = %key.field(), addr = %old.local, "listener stopped; its connections drain");
                    old.stop.cancel();
                }
            }
            if limits_changed {
                restart = state.running.drain().collect();
            }
        }
        for (key, listener, addr) in bound {
            tracing::info!(listener = %key.field(), %addr, "listener started");
            self.start(key, listener, addr);
        }
        for (key, old) in restart {
            old.stop.cancel();
            if let Ok(listener) = old.task.await {
                let state = self.lock();
                let running = self.spawn(&state, listener, old.configured);
                drop(state);
                self.lock().running.insert(key, running);
            }
        }
        Ok(())
    }

    /// Stops every accept loop and waits for them (connections keep draining).
    pub async fn stop_all(&self) {
        let running: Vec<Running> = self.lock().running.drain().map(|(_, r)| r).collect();
        for r in &running {
            r.stop.cancel();
        }
        for r in running {
            let _ = r.task.await;
        }
    }

    fn spawn(&self, state: &State, listener: Listener, configured: SocketAddr) -> Running {
        let local = listener.listener.local_addr().unwrap_or(configured);
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::serve(
            listener,
            self.shared.clone(),
            state.limits,
            state.permits.clone(),
            self.drain.clone(),
            stop.clone(),
        ));
        Running {
            configured,
            local,
            stop,
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
