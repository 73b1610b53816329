//! Hot reload (SPEC §7): on SIGHUP, `POST /admin/reload`, or a change of the config file on
//! disk. An invalid file is refused whole and the old config keeps serving. A valid one is
//! applied as a comparison: every upstream whose policy did not change is reused with its
//! breaker, buckets, budget and connection pool; the router is swapped atomically; in-flight
//! requests hold their own `Arc`s and finish on the policy they started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::app::{self, StartError};
use crate::config::{self, Config, ConfigError, ConfigSource, FieldError};
use crate::listeners::{self, BindError, Listeners};
use crate::proxy::Shared;

/// Why a reload was refused; the old config keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Running on the embedded default or an in-memory config: there is no file to read.
    #[error("no config file to reload (running on {0})")]
    NoFile(String),
    /// The file could not be read or is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A new listener could not be bound.
    #[error("{0}")]
    Bind(#[from] BindError),
    /// An upstream could not be built.
    #[error("{0}")]
    Build(#[from] StartError),
    /// The blocking thread that parses the file panicked or was cancelled.
    #[error("config reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ReloadError {
    /// Every problem as one line each (the admin API returns them as a list).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ReloadError::Config(ConfigError::Invalid(errors)) => {
                errors.iter().map(FieldError::to_string).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

/// What a successful reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Upstreams that are new.
    pub added: Vec<String>,
    /// Upstreams rebuilt because their policy changed (fresh state).
    pub changed: Vec<String>,
    /// Upstreams gone.
    pub removed: Vec<String>,
    /// Upstreams reused as they were (state kept).
    pub unchanged: Vec<String>,
}

/// Applies config changes to a running app; reloads are serialised.
pub struct Reloader {
    source: Option<ConfigSource>,
    /// The file's bytes when last looked at, so the watcher reloads only on real changes.
    seen: std::sync::Mutex<Option<Vec<u8>>>,
    current: Mutex<Config>,
    shared: Arc<Shared>,
    listeners: Arc<Listeners>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for an app running `config`, read from `source` when it is a file.
    pub fn new(
        source: Option<ConfigSource>,
        config: Config,
        shared: Arc<Shared>,
        listeners: Arc<Listeners>,
    ) -> Self {
        // Taken now, right after the config was loaded, so a change made before the watcher
        // task runs is still seen as a change.
        let seen = match &source {
            Some(ConfigSource::File(path)) => std::fs::read(path).ok(),
            _ => None,
        };
        Self {
            source,
            seen: std::sync::Mutex::new(seen),
            current: Mutex::new(config),
            shared,
            listeners,
        }
    }

    /// Records `bytes` as the file's content; true when they differ from what was seen last.
    fn changed(&self, bytes: Option<Vec<u8>>) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if bytes.is_none() || *seen == bytes {
            return false;
        }
        *seen = bytes;
        true
    }

    /// The config in effect (after the last successful reload).
    pub async fn current(&self) -> Config {
        self.current.lock().await.clone()
    }

    /// The config file, when there is one.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.source {
            Some(ConfigSource::File(path)) => Some(path.clone()),
            _ => None,
        }
    }

    /// Reads the file again and applies it, or refuses it and keeps the old config.
    pub async fn reload(&self, trigger: &str) -> Result<ReloadSummary, ReloadError> {
        let result = self.try_reload().await;
        self.shared.metrics.config_reload(result.is_ok());
        match &result {
            Ok(s) => tracing::info!(
                trigger,
                added = ?s.added,
                changed = ?s.changed,
                removed = ?s.removed,
                unchanged = s.unchanged.len(),
                "config reloaded"
            ),
            Err(e) => {
                for line in e.lines() {
                    tracing::error!(trigger, error = %line, "config reload refused; the old config keeps serving");
                }
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<ReloadSummary, ReloadError> {
        let source = match &self.source {
            Some(source @ ConfigSource::File(_)) => source,
            Some(other) => return Err(ReloadError::NoFile(other.describe())),
            None => return Err(ReloadError::NoFile("an in-memory config".into())),
        };
        let mut current = self.current.lock().await;
        let old_router = self.shared.router.load_full();
        // Parsing, validating and building 10,000 upstreams takes a few hundred ms: a blocking
        // thread does it so that requests keep flowing meanwhile, even on one worker thread.
        let (source, metrics, previous) = (
            source.clone(),
            self.shared.metrics.clone(),
            old_router.clone(),
        );
        let (new, router) = tokio::task::spawn_blocking(move || -> Result<_, ReloadError> {
            let new = config::load(&source, &config::env_lookup)?;
            let router = app::build_router(&new, &metrics, Some(&previous))?;
            Ok((new, router))
        })
        .await??;
        if new.admin.listen != current.admin.listen || new.runtime != current.runtime {
            tracing::warn!("admin.listen and runtime changes take effect at the next restart");
        }
        self.listeners
            .reconcile(&listeners::wanted(&new), new.limits)
            .await?;

        let mut summary = ReloadSummary::default();
        for upstream in router.upstreams() {
            let name = upstream.name().to_owned();
            match old_router.get(&name) {
                None => summary.added.push(name),
                Some(old) if Arc::ptr_eq(old, upstream) => summary.unchanged.push(name),
                Some(_) => summary.changed.push(name),
            }
        }
        summary.removed = old_router
            .upstreams()
            .iter()
            .filter(|u| router.get(u.name()).is_none())
            .map(|u| u.name().to_owned())
            .collect();
        self.shared.apply_limits(&new.limits);
        self.shared.set_admin_token(new.admin.token.clone());
        self.shared.set_connect_policy(new.connect.clone());
        self.shared.router.store(Arc::new(router));
        *current = new;
        Ok(summary)
    }
}

/// Quiet period after a file event before reloading: editors write in several steps.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Fallback re-read when file events are missed (some volume mounts deliver none).
const RESTAT_EVERY: Duration = Duration::from_secs(30);

/// Reloads when the config file's content changes: watches its directory (editors and
/// Kubernetes ConfigMaps replace the file by rename or symlink swap, which would end a watch
/// on the file itself), debounces, and re-reads periodically as a fallback. The watch is
/// registered before this returns, so no change made afterwards is missed.
pub fn watch_file(reloader: Arc<Reloader>, stop: CancellationToken) {
    let Some(path) = reloader.path() else { return };
    let dir = path
        .parent()
        .map(PathBuf::from)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(std::ffi::OsStr::to_owned);
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(16);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| may_change(&e, name.as_deref())) {
            let _ = tx.try_send(());
        }
    })
    .and_then(|mut w| {
        use notify::Watcher as _;
        w.watch(&dir, notify::RecursiveMode::NonRecursive)
            .map(|()| w)
    });
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory; relying on SIGHUP and periodic re-reads");
            None
        }
    };
    tokio::spawn(watch_loop(reloader, path, rx, watcher, stop));
}

/// Whether a directory event may have changed the config file named `name`: a write, create,
/// rename or removal of that name, or of a `..`-prefixed entry (Kubernetes swaps the
/// `..data` symlink of a ConfigMap volume). Opens and reads are ignored: the watcher's own
/// re-read would otherwise wake it again, forever; so are other files in the directory.
fn may_change(event: &notify::Event, name: Option<&std::ffi::OsStr>) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return false;
    }
    event.paths.is_empty()
        || event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| Some(f) == name || f.as_encoded_bytes().starts_with(b".."))
        })
}

async fn watch_loop(
    reloader: Arc<Reloader>,
    path: PathBuf,
    mut events: tokio::sync::mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
    stop: CancellationToken,
) {
    let mut restat = tokio::time::interval(RESTAT_EVERY);
    restat.tick().await;
    loop {
        tokio::select! {
            Some(()) = events.recv() => {
                // Debounce: wait until events stop for a moment.
                loop {
                    tokio::select! {
                        Some(()) = events.recv() => continue,
                        () = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
            }
            _ = restat.tick() => {}
            () = stop.cancelled() => return,
        }
        if reloader.changed(tokio::fs::read(&path).await.ok()) {
            let _ = reloader.reload("file").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_change;
    use notify::Event;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
    };

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(path.into())
    }

    #[test]
    fn writes_renames_and_configmap_swaps_of_the_config_count() {
        let name = Some(std::ffi::OsStr::new("rampart.yaml"));
        let relevant = [
            event(
                EventKind::Modify(ModifyKind::Any),
                "/etc/rampart/rampart.yaml",
            ),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/etc/rampart/rampart.yaml",
            ),
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/etc/rampart/rampart.yaml",
            ),
            event(
                EventKind::Create(CreateKind::Any),
                "/etc/rampart/..data_tmp",
            ),
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/etc/rampart/..data",
            ),
            event(
                EventKind::Remove(RemoveKind::Any),
                "/etc/rampart/rampart.yaml",
            ),
            Event::new(EventKind::Any),
        ];
        for e in &relevant {
            assert!(may_change(e, name), "{e:?}");
        }
    }

    #[test]
    fn reads_and_other_files_do_not_wake_the_watcher() {
        let name = Some(std::ffi::OsStr::new("rampart.yaml"));
        let ignored = [
            event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                "/etc/rampart/rampart.yaml",
            ),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                "/etc/rampart/rampart.yaml",
            ),
            event(
                EventKind::Access(AccessKind::Read),
                "/etc/rampart/rampart.yaml",
            ),
            event(EventKind::Modify(ModifyKind::Any), "/etc/rampart/app.log"),
            event(
                EventKind::Create(CreateKind::Any),
                "/etc/rampart/.rampart.yaml.swp",
            ),
        ];
        for e in &ignored {
            assert!(!may_change(e, name), "{e:?}");
        }
    }
}
