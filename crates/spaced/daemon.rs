//! Start, run and stop the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use spaced_config::{Applied, DynoBoard, Store};
use spaced_net::Shutdown;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::admin;
pub use crate::components::Bound;
use crate::components::Components;
use crate::reload::{self, Reloader};

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The policy file.
    pub config: PathBuf,
    /// Watch the file and the files it names, reloading on change.
    pub watch: bool,
    /// How long a stop waits for in-flight work.
    pub grace: Duration,
}

impl Options {
    /// Defaults for `path`: watching on, 30 s grace.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            config: path.into(),
            watch: true,
            grace: Duration::from_secs(30),
        }
    }
}

/// How long a stopping daemon waits for admin requests in progress, after the drain.
const ADMIN_GRACE: Duration = Duration::from_secs(1);

/// Every bound address, for tests and the demo.
#[derive(Debug, Clone, Default)]
pub struct Addrs {
    /// Component listeners.
    pub bound: Bound,
    /// The admin listener, when configured.
    pub admin: Option<SocketAddr>,
}

/// A running daemon.
pub struct Daemon {
    store: Arc<Store>,
    reloader: Arc<Reloader>,
    shutdown: Shutdown,
    /// The admin listener's own: it stays up through a drain (`/readyz` answering 503, so a
    /// load balancer or orchestrator sees the drain) and stops after it.
    admin_shutdown: Shutdown,
    ready: Arc<AtomicBool>,
    addrs: Addrs,
    grace: Duration,
}

impl Daemon {
    /// Loads the policy, binds every listener, starts the components, the watcher and the
    /// admin API.
    ///
    /// # Errors
    /// An invalid policy (every located problem in the message) or a listener that cannot
    /// be bound.
    pub async fn start(opts: Options) -> Result<Self> {
        let path = opts.config.clone();
        let loaded = tokio::task::spawn_blocking(move || reload::load(&path))
            .await
            .context("load task")?
            .map_err(|e| anyhow!("{e}"))?;
        let admin_addr = loaded.policy.admin.as_ref().map(|a| a.listen);
        // Listeners share their port with SO_REUSEPORT; another daemon already on one of
        // them must be an error, not a silent split of its traffic.
        // The resolver's UDP sockets sit on the addresses of its TCP ones.
        for addr in loaded
            .policy
            .listeners()
            .into_iter()
            .flat_map(|(_, a)| a.iter().copied())
        {
            spaced_net::ensure_unbound(addr).with_context(|| {
                format!("listener {addr} is already in use (is another spaced running?)")
            })?;
        }
        let store = Arc::new(Store::with_content(
            loaded.policy,
            loaded.sha256,
            loaded.content,
        ));
        let board = Arc::new(DynoBoard::new());
        let shutdown = Shutdown::new();
        crate::logging::attach(&store, &shutdown);
        let (components, bound) = Components::spawn(store.clone(), board, &shutdown).await?;
        let components = Arc::new(components);
        let reloader = Arc::new(Reloader::new(opts.config.clone(), store.clone()));
        if opts.watch {
            reload::spawn_watcher(reloader.clone(), shutdown.child())
                .context("start the config file watcher")?;
        }
        let ready = Arc::new(AtomicBool::new(false));
        let admin_shutdown = Shutdown::new();
        let admin = match admin_addr {
            Some(addr) => {
                let state = admin::State {
                    store: store.clone(),
                    reloader: reloader.clone(),
                    components,
                    ready: ready.clone(),
                };
                Some(admin::spawn(addr, state, admin_shutdown.clone()).await?)
            }
            None => None,
        };
        // Every listener is bound and a policy is loaded.
        ready.store(true, Ordering::Release);
        info!(config = %opts.config.display(), version = store.meta().version, "spaced ready");
        Ok(Self {
            store,
            reloader,
            shutdown,
            admin_shutdown,
            ready,
            addrs: Addrs { bound, admin },
            grace: opts.grace,
        })
    }

    /// The bound addresses.
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The policy store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Reloads now (as SIGHUP does).
    ///
    /// # Errors
    /// The rejection message when the file is invalid.
    pub async fn reload(&self) -> Result<Applied, String> {
        self.reloader.reload("api").await
    }

    /// The root shutdown handle.
    pub fn shutdown_handle(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Stops accepting, lets in-flight work finish within the grace period, then stops the
    /// admin listener, which answers `/readyz` with 503 meanwhile. Returns whether
    /// everything finished in time.
    pub async fn stop(self) -> bool {
        self.ready.store(false, Ordering::Release);
        let clean = self.shutdown.drain(self.grace).await;
        // Admin exchanges are short; a scrape in progress gets a moment to finish.
        self.admin_shutdown.drain(ADMIN_GRACE).await;
        crate::logging::flush().await;
        clean
    }
}

/// `spaced run`: start, reload on SIGHUP, drain on SIGTERM/SIGINT (a second one stops at
/// once).
///
/// # Errors
/// Start-up failures; signals that cannot be installed.
pub async fn run(opts: Options) -> Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let daemon = Daemon::start(opts).await?;
    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = daemon.reloader.reload("signal").await; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!(
        "stopping: no new connections; in-flight work has {:?}",
        daemon.grace
    );
    let stop = daemon.stop();
    tokio::select! {
        clean = stop => {
            if !clean { warn!("grace period over; exiting with work still in flight"); }
        }
        _ = term.recv() => warn!("second signal: stopping now"),
        _ = int.recv() => warn!("second signal: stopping now"),
    }
    Ok(())
}
