//! Process signals (SPEC §7): the first SIGTERM or SIGINT starts the graceful sequence, a
//! second one exits at once with code 1.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT with rampart's handlers registered: from `install` on, neither can
/// kill the process with the default action, so install them before serving.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Registers the handlers now (needs a running tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for signals: cancels `begin` on the first, exits the process on the second.
    pub async fn watch(mut self, begin: CancellationToken) {
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

/// Installs the handlers and watches them (see [`Signals`]).
pub async fn watch_signals(begin: CancellationToken) -> std::io::Result<()> {
    Signals::install()?.watch(begin).await;
    Ok(())
}
