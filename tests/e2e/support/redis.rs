//! A private redis-server on a free loopback port (no persistence), stopped when dropped.

use std::net::SocketAddr;
use std::time::Duration;

use super::binary::{self, Cmd, Process};

pub struct TestRedis {
    addr: SocketAddr,
    _process: Process,
}

// === impl TestRedis ===

impl TestRedis {
    /// `None` (after saying so) when redis-server is not installed and the run is not strict.
    pub async fn start() -> Option<Self> {
        let program = binary::tool("redis-server")?;
        let port = binary::free_port();
        let port_arg = port.to_string();
        let args = [
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        let process = Cmd::new(program, &args).spawn();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            binary::wait_for_port(addr, Duration::from_secs(5)).await,
            "redis-server did not listen on {addr}:\n{}",
            process.output()
        );
        Some(Self {
            addr,
            _process: process,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT/0`, as `rate_limit.global.redis` takes it.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }
}
