//! `TestProxy`: the real rampart server started in-process on 127.0.0.1:0 from YAML, so a
//! test exercises config parsing, routing and the whole stack over real sockets.

use std::net::SocketAddr;

use rampart::app::{self, Exit, RunningApp};

use super::Metrics;

pub struct TestProxy {
    app: Option<RunningApp>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl TestProxy {
    /// Starts rampart on `yaml`; `listen` and `admin.listen` default to 127.0.0.1:0 and
    /// shutdown is quick unless the YAML says otherwise.
    pub async fn start(yaml: &str) -> Self {
        super::init_tracing();
        let mut text = String::new();
        if !yaml.lines().any(|l| l.starts_with("listen:")) {
            text.push_str("listen: 127.0.0.1:0\n");
        }
        if !yaml.lines().any(|l| l.starts_with("admin:")) {
            text.push_str("admin: { listen: 127.0.0.1:0 }\n");
        }
        if !yaml.lines().any(|l| l.starts_with("shutdown:")) {
            text.push_str("shutdown: { drain_delay: 0s, timeout: 5s }\n");
        }
        text.push_str(yaml);
        let config = rampart::config::parse(&text, &|_| None)
            .unwrap_or_else(|e| panic!("test config does not parse: {e:?}\n{text}"));
        let app = app::start(config).await.expect("rampart starts");
        Self {
            addr: app.listen_addr,
            admin: app.admin_addr,
            app: Some(app),
        }
    }

    /// `http://<proxy>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://<admin>/<path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The dedicated listener of `upstream`.
    pub fn dedicated(&self, upstream: &str) -> SocketAddr {
        self.app()
            .dedicated_addr(upstream)
            .expect("upstream has a dedicated listener")
    }

    /// The metrics as /metrics renders them now.
    pub fn metrics(&self) -> Metrics {
        let metrics = self.app().metrics();
        metrics.upkeep();
        Metrics::parse(&metrics.render())
    }

    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().expect("running")
    }

    /// Starts the shutdown sequence and waits for it.
    pub async fn shutdown(mut self) -> Exit {
        let app = self.app.take().expect("running");
        app.begin_shutdown();
        app.wait().await
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(app) = &self.app {
            app.begin_shutdown();
        }
    }
}
