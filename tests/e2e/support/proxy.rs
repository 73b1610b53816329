//! `TestProxy`: the real rampart server started in-process on 127.0.0.1:0 from YAML, so a
//! test exercises config parsing, routing and the whole stack over real sockets.

use std::net::SocketAddr;
use std::path::PathBuf;

use rampart::app::{self, Exit, RunningApp};
use rampart::config::{Config, ConfigSource};

use super::Metrics;

pub struct TestProxy {
    app: Option<RunningApp>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The config file, for proxies started with `start_file`.
    file: Option<(tempfile::TempDir, PathBuf)>,
}

impl TestProxy {
    /// Starts rampart on `yaml`; `listen` and `admin.listen` default to 127.0.0.1:0 and
    /// shutdown is quick unless the YAML says otherwise.
    pub async fn start(yaml: &str) -> Self {
        let text = with_test_defaults(yaml);
        let config = rampart::config::parse(&text, &|_| None)
            .unwrap_or_else(|e| panic!("test config does not parse: {e:?}\n{text}"));
        Self::launch(config, None).await
    }

    /// Like `start`, but from a config file, so the proxy can reload it.
    pub async fn start_file(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.yaml");
        std::fs::write(&path, with_test_defaults(yaml)).unwrap();
        let source = ConfigSource::File(path.clone());
        let config = rampart::config::load(&source, &|_| None).expect("test config loads");
        let mut proxy = Self::launch(config, Some(source)).await;
        proxy.file = Some((dir, path));
        proxy
    }

    async fn launch(config: Config, source: Option<ConfigSource>) -> Self {
        super::init_tracing();
        let app = app::start(config, source).await.expect("rampart starts");
        Self {
            addr: app.listen_addr,
            admin: app.admin_addr,
            app: Some(app),
            file: None,
        }
    }

    /// Rewrites the config file (with the test defaults) by an atomic rename, as editors
    /// and Kubernetes ConfigMaps do.
    pub fn write_config(&self, yaml: &str) {
        let (dir, path) = self.file.as_ref().expect("started with start_file");
        let tmp = dir.path().join(".rampart.yaml.tmp");
        std::fs::write(&tmp, with_test_defaults(yaml)).unwrap();
        std::fs::rename(&tmp, path).unwrap();
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
        let app = self.app();
        Metrics::parse(&rampart::admin::scrape::render(
            app.metrics(),
            &app.router(),
        ))
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

/// Adds loopback ephemeral listeners and a quick shutdown unless the YAML sets them.
pub fn with_test_defaults(yaml: &str) -> String {
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
    text
}
