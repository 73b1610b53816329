//! A running rampart: binds every listener up front (so "port in use" fails start-up, not
//! the first request), builds the upstreams and router, serves, reloads, and runs the
//! shutdown sequence of SPEC §7. Used by `main` and, in-process, by the end-to-end tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::{Config, ConfigSource};
use crate::listeners::{self, BindError, ListenerKey, Listeners};
use crate::metrics::Metrics;
use crate::proxy::Shared;
use crate::reload::{self, ReloadError, ReloadSummary, Reloader};
use crate::routing::Router;
use crate::routing::passthrough::{PASSTHROUGH_LABEL, Passthrough};
use crate::server::Drain;
use crate::upstream::{self, Upstream};

/// Why rampart could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// An upstream's client could not be built (TLS material).
    #[error("upstreams.{upstream}.tls: {source}")]
    Upstream {
        /// The upstream.
        upstream: String,
        /// What failed.
        source: upstream::BuildError,
    },
}

/// How the shutdown sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every in-flight request finished within `shutdown.timeout`.
    Clean,
    /// Requests were still in flight when `shutdown.timeout` ran out.
    TimedOut,
}

/// Handle to a running app.
#[derive(Debug)]
pub struct RunningApp {
    /// The main listener's bound address.
    pub listen_addr: SocketAddr,
    /// The admin listener's bound address.
    pub admin_addr: SocketAddr,
    shared: Arc<Shared>,
    listeners: Arc<Listeners>,
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
    done: JoinHandle<Exit>,
}

impl RunningApp {
    /// Starts the shutdown sequence (what SIGTERM does); returns at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The token that starts the shutdown sequence (for signal handlers).
    pub fn shutdown_trigger(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The reloader (SIGHUP handler, tests).
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// Reloads the config file now (what SIGHUP does).
    pub async fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        self.reloader.reload("api").await
    }

    /// Waits for the shutdown sequence to end.
    pub async fn wait(self) -> Exit {
        self.done.await.unwrap_or(Exit::TimedOut)
    }

    /// The app's metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The current routing table.
    pub fn router(&self) -> Arc<Router> {
        self.shared.router.load_full()
    }

    /// The bound address of an upstream's dedicated listener.
    pub fn dedicated_addr(&self, upstream: &str) -> Option<SocketAddr> {
        self.listeners
            .addrs()
            .into_iter()
            .find_map(|(key, addr)| match key {
                ListenerKey::Upstream(name) if &*name == upstream => Some(addr),
                _ => None,
            })
    }
}

/// Binds, builds and starts serving `config`; `source` is where it came from (a file makes
/// reloads possible).
pub async fn start(config: Config, source: Option<ConfigSource>) -> Result<RunningApp, StartError> {
    let wanted = listeners::wanted(&config);
    let mut bound = Vec::with_capacity(wanted.len());
    for (key, addr) in &wanted {
        bound.push((key.clone(), listeners::bind(key, *addr).await?, *addr));
    }
    let admin_listener = listeners::bind(&ListenerKey::Main, config.admin.listen)
        .await
        .map_err(|e| BindError {
            field: "admin.listen".into(),
            ..e
        })?;
    let listen_addr = bound[0].1.local_addr().unwrap_or(config.listen);
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin.listen);

    let metrics = Metrics::new();
    let router = build_router(&config, &metrics, None)?;
    let shared = Arc::new(Shared::new(
        router,
        metrics,
        &config.limits,
        config.admin.token.clone(),
    ));
    shared.set_connect_policy(config.connect.clone());
    let drain = Drain::default();
    let listeners = Arc::new(Listeners::new(shared.clone(), config.limits, drain.clone()));
    for (key, listener, addr) in bound {
        listeners.start(key, listener, addr);
    }
    let policy = config.shutdown;
    let upstream_count = config.upstreams.len();
    let reloader = Arc::new(Reloader::new(
        source,
        config,
        shared.clone(),
        listeners.clone(),
    ));

    let ready = Arc::new(AtomicBool::new(false));
    let admin_stop = CancellationToken::new();
    let admin_state = Arc::new(AdminState {
        shared: shared.clone(),
        ready: ready.clone(),
        reloader: reloader.clone(),
    });
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        admin_state,
        admin_stop.clone(),
    ));
    reload::watch_file(reloader.clone(), admin_stop.clone());
    crate::heartbeat::spawn(admin_stop.clone());
    ready.store(true, Ordering::Release);
    tracing::info!(listen = %listen_addr, admin = %admin_addr, upstreams = upstream_count, "rampart is serving");

    let shutdown = CancellationToken::new();
    let sequence = Sequence {
        shutdown: shutdown.clone(),
        ready,
        listeners: listeners.clone(),
        drain,
        shared: shared.clone(),
        admin_stop,
        admin_task,
        policy,
    };
    let done = tokio::spawn(sequence.run());
    Ok(RunningApp {
        listen_addr,
        admin_addr,
        shared,
        listeners,
        reloader,
        shutdown,
        done,
    })
}

/// Builds the routing table for `config`, reusing every upstream of `previous` whose policy
/// is unchanged (so its breaker, buckets, budget and pool survive a reload).
pub fn build_router(
    config: &Config,
    metrics: &Arc<Metrics>,
    previous: Option<&Router>,
) -> Result<Router, StartError> {
    let upstreams = config
        .upstreams
        .iter()
        .map(|p| {
            match previous
                .and_then(|r| r.get(&p.name))
                .filter(|u| u.policy() == p)
            {
                Some(same) => Ok(same.clone()),
                None => Upstream::new(p.clone(), metrics).map_err(|source| StartError::Upstream {
                    upstream: p.name.clone(),
                    source,
                }),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let passthrough = match previous
        .and_then(Router::passthrough)
        .filter(|p| config.passthrough.enabled && p.policy() == &config.passthrough)
    {
        Some(same) => Some(same.clone()),
        None if config.passthrough.enabled => {
            let d = &config.passthrough.defaults;
            let client = upstream::client::Connector::plain(d.timeouts.connect, d.timeouts.idle);
            Some(Arc::new(Passthrough::new(
                config.passthrough.clone(),
                client,
                metrics.upstream(PASSTHROUGH_LABEL),
            )))
        }
        None => None,
    };
    Ok(Router::new(upstreams, passthrough))
}

/// The shutdown sequence of SPEC §7, waiting for its trigger.
struct Sequence {
    shutdown: CancellationToken,
    ready: Arc<AtomicBool>,
    listeners: Arc<Listeners>,
    drain: Drain,
    shared: Arc<Shared>,
    admin_stop: CancellationToken,
    admin_task: JoinHandle<()>,
    policy: crate::config::ShutdownPolicy,
}

impl Sequence {
    async fn run(self) -> Exit {
        self.shutdown.cancelled().await;
        self.ready.store(false, Ordering::Release);
        tracing::info!(
            drain_delay_ms = self.policy.drain_delay.as_millis() as u64,
            "shutdown: /readyz is 503, still serving"
        );
        tokio::time::sleep(self.policy.drain_delay).await;

        self.listeners.stop_all().await;
        tracing::info!(
            timeout_ms = self.policy.timeout.as_millis() as u64,
            connections = self.drain.open(),
            "shutdown: stopped accepting, draining in-flight requests"
        );
        self.drain.begin();
        self.shared.tunnels.close();
        let drain = self.drain.clone();
        let tunnels = self.shared.tunnels.clone();
        let drained = tokio::time::timeout(self.policy.timeout, async move {
            drain.wait().await;
            tunnels.wait().await;
        })
        .await;
        self.shared.cancel.cancel();
        let exit = if drained.is_ok() {
            tracing::info!("shutdown: drained");
            Exit::Clean
        } else {
            tracing::warn!(
                connections = self.drain.open(),
                "shutdown: timed out with requests still in flight"
            );
            Exit::TimedOut
        };
        self.admin_stop.cancel();
        let _ = self.admin_task.await;
        exit
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::*;
    use crate::config::{
        AdminPolicy, ConnectPolicy, DefaultPolicies, LimitsPolicy, PassthroughPolicy,
        RuntimePolicy, ShutdownPolicy,
    };
    use crate::retry::policy::RetryPolicy;
    use crate::secret::Secret;
    use crate::upstream::policy::*;
    use tokio::net::TcpListener;

    /// A loopback upstream that answers every request with its path and Host header.
    async fn echo_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            let host = req
                                .headers()
                                .get("host")
                                .map(|h| h.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let text = format!("{} {}", req.uri(), host);
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from(text)),
                            ))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    fn timeouts() -> TimeoutPolicy {
        let s = Duration::from_secs(2);
        TimeoutPolicy {
            connect: s,
            request: s,
            per_try: s,
            idle: s,
        }
    }

    fn config(upstream: SocketAddr) -> Config {
        let policy = UpstreamPolicy {
            name: "svc".into(),
            endpoints: vec![EndpointPolicy {
                url: format!("http://{upstream}").parse().unwrap(),
                weight: 1,
            }],
            hosts: vec![HostMatch {
                host: "svc".into(),
                port: None,
            }],
            path_prefix: None,
            strip_prefix: false,
            listen: None,
            load_balancing: LoadBalancing::RoundRobin,
            protocol: UpstreamProtocol::Auto,
            tls: TlsPolicy::default(),
            timeouts: timeouts(),
            retry: RetryPolicy::disabled(),
            rate_limit: None,
            circuit_breaker: None,
            routes: Vec::new(),
            concurrency: None,
            fallback: None,
            health_check: None,
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        Config {
            listen: any,
            admin: AdminPolicy {
                listen: any,
                token: Secret::default(),
            },
            runtime: RuntimePolicy {
                worker_threads: None,
            },
            limits: LimitsPolicy {
                max_connections: 100,
                max_request_header_bytes: 65536,
                max_request_headers: 100,
                header_read_timeout: Duration::from_secs(5),
            },
            shutdown: ShutdownPolicy {
                drain_delay: Duration::ZERO,
                timeout: Duration::from_secs(2),
            },
            connect: ConnectPolicy::default(),
            passthrough: PassthroughPolicy {
                enabled: true,
                max_hosts: 10,
                defaults: DefaultPolicies {
                    timeouts: timeouts(),
                    retry: RetryPolicy::disabled(),
                    circuit_breaker: None,
                    rate_limit: None,
                    concurrency: None,
                },
            },
            upstreams: vec![policy],
        }
    }

    async fn get(uri: &str, host: Option<&str>) -> (u16, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut req = http::Request::get(uri);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let resp = client
            .request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            String::from_utf8(
                resp.into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn routes_by_host_passes_through_and_drains_cleanly() {
        let upstream = echo_upstream().await;
        let app = start(config(upstream), None).await.unwrap();
        let base = format!("http://{}", app.listen_addr);

        let (status, body) = get(&format!("{base}/a?b=1"), Some("svc")).await;
        assert_eq!((status, body.as_str()), (200, "/a?b=1 svc"));

        // A host no upstream names goes to passthrough (here: the same server).
        let (status, body) = get(&format!("{base}/x"), Some(&upstream.to_string())).await;
        assert_eq!((status, body), (200, format!("/x {upstream}")));

        let metrics = app.metrics().render();
        assert!(
            metrics.contains("rampart_requests_total{upstream=\"svc\",code=\"200\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("rampart_requests_total{upstream=\"passthrough\",code=\"200\"} 1"),
            "{metrics}"
        );

        app.begin_shutdown();
        assert_eq!(app.wait().await, Exit::Clean);
    }
}
