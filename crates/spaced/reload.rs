//! Every reload trigger (file watcher, SIGHUP, `POST /reload`) calls [`Reloader::reload`]:
//! parse, validate and compile the whole file off to the side, then swap it in at once, or
//! log the precise error and keep serving the old policy.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher, event::AccessKind, event::AccessMode};
use spaced_config::{Applied, Policy, Store};
use spaced_net::Shutdown;
use tokio::sync::{Mutex, mpsc};
use tracing::{debug, error, info, warn};

use crate::notify::Notifier;

/// Bursts of file events (an editor's write + rename + chmod) settle into one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

pub use spaced_config::{Loaded, load_file as load};

/// Serialises reloads of one config file into one store.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    store: Arc<Store>,
    /// One reload at a time: two triggers racing must not swap out of order.
    gate: Mutex<()>,
    /// Tells systemd a reload's start and result (`Type=notify-reload`); silent when unset.
    notifier: Arc<Notifier>,
    /// With `[fleet]`: reloads merge the file with the fleet's view (`fleet.rs`).
    fleet: OnceLock<Arc<crate::fleet::Link>>,
}

impl Reloader {
    /// A reloader of `path` into `store`.
    pub fn new(path: PathBuf, store: Arc<Store>) -> Self {
        Self {
            path,
            store,
            gate: Mutex::new(()),
            notifier: Arc::default(),
            fleet: OnceLock::new(),
        }
    }

    /// Reports every reload through `notifier` (sd_notify).
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// From now on, reloads merge the file with the fleet's view.
    pub fn set_fleet(&self, link: Arc<crate::fleet::Link>) {
        let _ = self.fleet.set(link);
    }

    /// The config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads now. `trigger` names the cause for the log (`signal`, `file`, `admin`).
    ///
    /// # Errors
    /// The full error text (every located problem) when the new file is rejected; the old
    /// policy keeps serving and the error is recorded for `/config`.
    pub async fn reload(&self, trigger: &'static str) -> Result<Applied, String> {
        let _one_at_a_time = self.gate.lock().await;
        self.notifier.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            crate::notify::monotonic_usec()
        ));
        // With [fleet], the file is merged with the fleet's view (which `fleet.rs`
        // serialises with the etcd watch's own swaps).
        let result = match self.fleet.get() {
            Some(fleet) => fleet.reload_local(trigger).await,
            None => self.reload_now(trigger).await,
        };
        let version = self.store.meta().version;
        let status = match &result {
            Ok(_) => format!("serving version {version}"),
            Err(e) => format!("serving version {version}; reload rejected: {e}"),
        };
        self.notifier
            .send(&format!("READY=1\n{}", crate::notify::status_line(&status)));
        result
    }

    async fn reload_now(&self, trigger: &'static str) -> Result<Applied, String> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&path))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
        match loaded {
            Ok(next) => {
                let prev = self.store.load_full();
                let summary = summary(&prev, &next.policy);
                warn_listener_changes(&prev, &next.policy);
                let applied = self
                    .store
                    .apply_content(next.policy, next.sha256, next.content);
                match applied {
                    Applied::Swapped(v) => {
                        info!(reload.generation = v, reload.trigger = trigger, %summary, "policy reloaded");
                    }
                    Applied::Unchanged(v) => {
                        debug!(
                            reload.generation = v,
                            reload.trigger = trigger,
                            "policy unchanged"
                        );
                    }
                }
                Ok(applied)
            }
            Err(errors) => {
                let message = errors.to_string();
                error!(reload.trigger = trigger, error = %message, "reload rejected; the old policy keeps serving");
                self.store.reject(message.clone());
                Err(message)
            }
        }
    }
}

fn summary(prev: &Policy, next: &Policy) -> String {
    prev.diff(next).to_string()
}

/// Listener addresses are bound at start only (spec: "a reload that changes them logs that a
/// restart is needed and applies everything else").
fn warn_listener_changes(prev: &Policy, next: &Policy) {
    for ((key, a), (_, b)) in prev.listeners().into_iter().zip(next.listeners()) {
        if a != b {
            warn!(
                key,
                "listener addresses changed: restart spaced to apply them; everything else is applied now"
            );
        }
    }
}

/// Watches the config file and every file it names. Directories are watched, not files:
/// editors and orchestrators replace files by rename, and Kubernetes swaps a symlinked
/// `..data` directory, and both only show up as events in the parent directory.
///
/// # Errors
/// When the OS watcher cannot be created.
pub fn spawn_watcher(reloader: Arc<Reloader>, shutdown: Shutdown) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Vec<PathBuf>>(64);
    let mut watched = Watched::default();
    // Events on other names are dropped on the watcher's own thread: a file written beside
    // the config (a log, a benchmark's output) changes it on every write, and each event
    // passed on would wake a runtime worker for nothing (measured: a DNS load generator
    // writing its per-answer lines into the config's directory cost the resolver a worker
    // wake-up per query, 2.6 µs of its 25; benches/README.md "Moderate load").
    let names = watched.names.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(ev) if relevant(&ev.kind) && concerns(&names.load(), &ev.paths) => {
                let _ = tx.try_send(ev.paths);
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "file watcher error"),
        })?;
    rewatch(&mut watcher, &mut watched, &reloader);
    let task_shutdown = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            let paths = tokio::select! {
                biased;
                () = task_shutdown.cancelled() => break,
                got = rx.recv() => match got {
                    Some(paths) => paths,
                    None => break,
                },
            };
            if !concerns(&watched.names.load(), &paths) {
                continue;
            }
            // Let the burst settle, then drop what queued meanwhile.
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let _ = reloader.reload("file").await;
            rewatch(&mut watcher, &mut watched, &reloader);
        }
    });
    Ok(())
}

/// What the watcher listens to: directories (see [`spawn_watcher`]), and the names in them
/// whose changes matter.
#[derive(Default)]
struct Watched {
    dirs: HashSet<PathBuf>,
    /// Shared with the watcher's callback (its own thread), which filters with it.
    names: Arc<ArcSwap<HashSet<OsString>>>,
}

/// Whether an event on `paths` can change the policy: one of the files it is read from (in
/// `names`), or a `..`-named entry (Kubernetes swaps `..data` to update a ConfigMap). A log
/// file or socket written beside the config is not a reason to parse it again; the reload
/// counter would stop meaning reloads. No path: the backend lost track, so reload.
fn concerns(names: &HashSet<OsString>, paths: &[PathBuf]) -> bool {
    paths.is_empty()
        || paths.iter().any(|p| match p.file_name() {
            Some(name) => names.contains(name) || name.as_encoded_bytes().starts_with(b".."),
            None => true,
        })
}

/// Reads, and closing a file opened read-only, are not changes (and our own reads of the
/// config would otherwise trigger reloads forever).
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
        _ => true,
    }
}

fn rewatch(watcher: &mut impl Watcher, watched: &mut Watched, reloader: &Reloader) {
    let policy = reloader.store.load_full();
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    let mut names = HashSet::new();
    for file in std::iter::once(reloader.path()).chain(policy.files.iter().map(PathBuf::as_path)) {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        dirs.insert(dir);
        if let Some(name) = file.file_name() {
            names.insert(name.to_os_string());
        }
    }
    watched.names.store(Arc::new(names));
    for gone in watched.dirs.difference(&dirs).cloned().collect::<Vec<_>>() {
        let _ = watcher.unwatch(&gone);
        watched.dirs.remove(&gone);
    }
    for dir in dirs {
        if watched.dirs.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.dirs.insert(dir);
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot watch directory; reload with SIGHUP or POST /reload")
            }
        }
    }
}
