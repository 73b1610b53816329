//! A private redis-server on a free loopback port (no persistence), stopped when dropped; it
//! can be stopped and started again on the same port (Redis outage tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::binary::{self, Cmd, Process};

pub struct TestRedis {
    addr: SocketAddr,
    program: PathBuf,
    extra: Vec<String>,
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
        let program = binary::tool("redis-server")?;
        let port = binary::free_port();
        let mut redis = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            program,
            extra: extra.iter().map(|s| s.to_string()).collect(),
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
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
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

    /// `redis://127.0.0.1:PORT/0`, as `rate_limit.global.redis` takes it.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }
}
