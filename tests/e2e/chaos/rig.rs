//! The pieces of a chaos or soak run: the fault upstream (two ports), a refusing port, and
//! the rampart binary on the chaos config, with what the checks read from it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::time::Instant;

use super::routes::{TUNING, config};
use crate::support::Metrics;
use crate::support::binary::{self, Process, free_port};
use crate::support::fault_upstream::{FaultUpstream, refusing_port};

/// How long pools and connections may take to close after the load.
const SETTLE: Duration = Duration::from_secs(10);

pub struct Rig {
    pub upstream: FaultUpstream,
    _refusing: TcpSocket,
    pub proxy: Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Rig {
    /// Starts the upstream and the rampart binary of this build (debug, or release under
    /// `cargo test --release`) on the chaos config.
    pub async fn start() -> Self {
        let upstream = FaultUpstream::start(TUNING, 2).await;
        let (refusing, refused) = refusing_port();
        let (port, admin_port) = (free_port(), free_port());
        let yaml = config(
            port,
            admin_port,
            &upstream.urls(),
            &format!("http://{refused}"),
        );
        let proxy = binary::rampart(&["run"])
            .env("RAMPART_LOG", "warn")
            .env("RAMPART_LOG_FORMAT", "json")
            .config(&yaml)
            .spawn();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        for a in [addr, admin] {
            assert!(
                binary::wait_for_port(a, Duration::from_secs(10)).await,
                "rampart did not listen on {a}:\n{}",
                proxy.output()
            );
        }
        Self {
            upstream,
            _refusing: refusing,
            proxy,
            addr,
            admin,
        }
    }

    pub async fn scrape(&self) -> Metrics {
        Metrics::scrape(&format!("http://{}/metrics", self.admin)).await
    }

    /// Waits (polling, at most `SETTLE`) until the proxy holds no TCP connection (every
    /// client and upstream connection closed, pools idled out); returns its descriptor count
    /// then.
    pub async fn settle(&self) -> usize {
        let deadline = Instant::now() + SETTLE;
        while self.proxy.tcp_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.proxy.open_fds().len()
    }
}
