//! A private redis-server on a free loopback port (no persistence), stopped when dropped; it
//! can be stopped and started again on the same port (Redis outage tests). With TLS it serves
//! only `rediss://`, with a certificate from a `TestCa`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::TestCa;
use super::binary::{self, Cmd, Process};

pub struct TestRedis {
    addr: SocketAddr,
    program: PathBuf,
    extra: Vec<String>,
    tls: bool,
    process: Option<Process>,
}

// === impl TestRedis ===

impl TestRedis {
    /// `None` (after saying so) when redis-server is not installed and the run is not strict.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// Like `start`, with extra redis-server arguments (e.g. `--requirepass`, `pw`).
    pub async fn start_with(extra: &[&str]) -> Option<Self> {
        Self::launch(extra.iter().map(|s| s.to_string()).collect(), false).await
    }

    /// TLS only (`--port 0`), with `ca`'s server certificate for 127.0.0.1; with
    /// `require_client_cert`, clients must present a certificate `ca` signed.
    pub async fn start_tls(ca: &TestCa, require_client_cert: bool) -> Option<Self> {
        let path = |p: PathBuf| p.display().to_string();
        let extra = vec![
            "--tls-cert-file".into(),
            path(ca.server_cert_file()),
            "--tls-key-file".into(),
            path(ca.server_key_file()),
            "--tls-ca-cert-file".into(),
            path(ca.ca_file()),
            "--tls-auth-clients".into(),
            if require_client_cert { "yes" } else { "no" }.into(),
        ];
        Self::launch(extra, true).await
    }

    async fn launch(extra: Vec<String>, tls: bool) -> Option<Self> {
        let program = binary::tool("redis-server")?;
        let port = binary::free_port();
        let mut redis = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            program,
            extra,
            tls,
            process: None,
        };
        redis.restart().await;
        Some(redis)
    }

    /// Kills the server and waits until it is gone (its port then refuses connections).
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal("KILL");
            process.wait_exit(Duration::from_secs(5)).await;
        }
    }

    /// Starts the server (again) on the same port, empty, and waits until it listens.
    pub async fn restart(&mut self) {
        self.stop().await;
        let port = self.addr.port().to_string();
        let mut args = match self.tls {
            false => vec!["--port", &port],
            true => vec!["--port", "0", "--tls-port", &port],
        };
        args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        args.extend(self.extra.iter().map(String::as_str));
        let process = Cmd::new(self.program.clone(), &args).spawn();
        assert!(
            binary::wait_for_port(self.addr, Duration::from_secs(5)).await,
            "redis-server did not listen on {}:\n{}",
            self.addr,
            process.output()
        );
        self.process = Some(process);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` with TLS), as `rate_limit.global.redis`
    /// takes it.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{}/0", self.addr)
    }
}
