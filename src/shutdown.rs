//! Process signals (SPEC §7): the first SIGTERM or SIGINT starts the graceful sequence, a
//! second one exits at once with code 1; SIGHUP reloads the config file.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Waits for signals: cancels `begin` on the first, exits the process on the second.
pub async fn watch_signals(begin: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
    begin.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("rampart: second signal, exiting now");
    std::process::exit(1);
}

/// Reloads the config on every SIGHUP (a refused reload keeps the old config serving).
pub async fn watch_hangup(
    reloader: std::sync::Arc<crate::reload::Reloader>,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    while hup.recv().await.is_some() {
        let _ = reloader.reload("SIGHUP").await;
    }
    Ok(())
}
