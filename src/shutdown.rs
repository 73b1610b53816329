//! Process signals (SPEC §7): the first SIGTERM or SIGINT starts the graceful sequence, a
//! second one exits at once with code 1; SIGHUP reloads the config file.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::reload::Reloader;

/// SIGTERM and SIGINT with rampart's handlers registered: from `install` on, neither can
/// kill the process with the default action, so install them before serving.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Registers the handlers now (needs a running tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for signals: SIGHUP reloads through `reloader`; the first SIGTERM or SIGINT
    /// cancels `begin`, the second exits the process.
    pub async fn watch(mut self, begin: CancellationToken, reloader: Arc<Reloader>) {
        let mut hup = self.hup;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = reloader.reload("SIGHUP").await;
            }
        });
        tokio::select! {
            _ = self.term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = self.int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
        begin.cancel();
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        eprintln!("rampart: second signal, exiting now");
        std::process::exit(1);
    }
}
