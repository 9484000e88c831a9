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
use tracing::{error, info, warn};

pub use crate::components::Bound;
use crate::components::Components;
use crate::notify::{self, Notifier};
use crate::reload::{self, Reloader};
use crate::{admin, limits, upgrade};

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The policy file.
    pub config: PathBuf,
    /// Watch the file and the files it names, reloading on change.
    pub watch: bool,
    /// How long a stop waits for in-flight work, when not `[daemon] drain_timeout` (tests).
    pub grace: Option<Duration>,
    /// Speak sd_notify when `NOTIFY_SOCKET` names a socket (`spaced run` does; in-process
    /// test daemons stay silent).
    pub notify: bool,
}

impl Options {
    /// Defaults for `path`: watching on, the policy's `[daemon]` timings, no sd_notify.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            config: path.into(),
            watch: true,
            grace: None,
            notify: false,
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
    /// `admin.probe_listen`, in file order.
    pub probe: Vec<SocketAddr>,
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
    grace: Option<Duration>,
    /// sd_notify (empty unless `Options::notify`).
    notifier: Arc<Notifier>,
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
        let probe_addrs = loaded
            .policy
            .admin
            .as_ref()
            .map(|a| a.probe_listen.clone())
            .unwrap_or_default();
        crate::warnings::log(&loaded.policy);
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
        // With [fleet], the shared policy joins before any component starts.
        let fleet = if store.load().fleet.is_some() {
            Some(crate::fleet::start(&opts.config, store.clone(), &shutdown.child()).await?)
        } else {
            None
        };
        let (components, bound) = Components::spawn(store.clone(), board, &shutdown).await?;
        let components = Arc::new(components);
        let notifier = Arc::new(if opts.notify {
            Notifier::from_env()
        } else {
            Notifier::default()
        });
        let reloader = Arc::new(
            Reloader::new(opts.config.clone(), store.clone()).with_notifier(notifier.clone()),
        );
        if let Some(link) = &fleet {
            reloader.set_fleet(link.clone());
        }
        if opts.watch {
            reload::spawn_watcher(reloader.clone(), shutdown.child())
                .context("start the config file watcher")?;
        }
        let ready = Arc::new(AtomicBool::new(false));
        let admin_shutdown = Shutdown::new();
        let state = Arc::new(admin::State {
            store: store.clone(),
            reloader: reloader.clone(),
            components,
            ready: ready.clone(),
            cuts: Default::default(),
            fleet: fleet.clone(),
        });
        let admin = match admin_addr {
            Some(addr) => Some(admin::spawn(addr, state.clone(), admin_shutdown.clone()).await?),
            None => None,
        };
        let mut probe = Vec::with_capacity(probe_addrs.len());
        for addr in probe_addrs {
            probe.push(admin::spawn_probe(addr, state.clone(), admin_shutdown.clone()).await?);
        }
        // Every listener is bound and a policy is loaded.
        ready.store(true, Ordering::Release);
        info!(config = %opts.config.display(), version = store.meta().version, "spaced ready");
        Ok(Self {
            store,
            reloader,
            shutdown,
            admin_shutdown,
            ready,
            addrs: Addrs {
                bound,
                admin,
                probe,
            },
            grace: opts.grace,
            notifier,
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

    /// How the policy now in force says to stop: (`shutdown_delay`, drain timeout).
    fn timings(&self) -> (Duration, Duration) {
        let d = self.store.load_full().daemon.clone();
        (d.shutdown_delay, self.grace.unwrap_or(d.drain_timeout))
    }

    /// `/readyz` turns 503 at once; listeners keep accepting for `[daemon] shutdown_delay`
    /// (so load balancers stop sending first); then they close and in-flight work gets
    /// `drain_timeout`; then the admin listener stops. Returns whether everything finished
    /// in time.
    pub async fn stop(self) -> bool {
        self.ready.store(false, Ordering::Release);
        let (delay, drain) = self.timings();
        if !delay.is_zero() {
            info!("stopping: /readyz answers 503; listeners keep accepting for {delay:?}");
            tokio::time::sleep(delay).await;
        }
        self.drain(drain).await
    }

    /// After an upgrade: the new process accepts on the very same sockets (admin too), so
    /// no delay is needed, and this one stops accepting at once, the admin API included
    /// (its `/readyz` would contradict the new process's on the shared socket).
    pub async fn stop_for_upgrade(self) -> bool {
        self.ready.store(false, Ordering::Release);
        self.admin_shutdown.cancel();
        let (_, drain) = self.timings();
        self.drain(drain).await
    }

    async fn drain(self, grace: Duration) -> bool {
        info!("stopping: no new connections; in-flight work has {grace:?}");
        // The kept duplicates would hold closed listeners open: connections would queue in
        // a backlog nobody accepts from instead of being refused.
        spaced_net::listeners::release();
        let clean = self.shutdown.drain(grace).await;
        // Admin exchanges are short; a scrape in progress gets a moment to finish.
        self.admin_shutdown.drain(ADMIN_GRACE).await;
        crate::logging::flush().await;
        clean
    }
}

/// Why the serving loop ended.
enum Stop {
    /// SIGTERM or SIGINT.
    Signal,
    /// SIGUSR2, and the new process is ready.
    Upgraded,
}

/// `spaced run`: raise the descriptor limit, start (on inherited sockets when given), speak
/// sd_notify, reload on SIGHUP, upgrade on SIGUSR2, stop on SIGTERM/SIGINT (a second one
/// stops at once).
///
/// # Errors
/// Start-up failures; signals that cannot be installed.
pub async fn run(mut opts: Options) -> Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("install SIGUSR2 handler")?;
    let nofile = match limits::raise_nofile() {
        Ok(n) => Some(n),
        Err(e) => {
            warn!(error = %e, "cannot raise the open file limit");
            None
        }
    };
    // This process may hand its sockets to an upgraded one.
    spaced_net::listeners::keep_for_handoff();
    opts.notify = true;
    let daemon = Daemon::start(opts).await?;
    for (transport, addr, name) in spaced_net::listeners::close_unclaimed() {
        warn!(
            transport = transport.name(),
            server.addr = %addr,
            name,
            "an inherited socket matches no configured listener; closed"
        );
    }
    if let Some(w) = nofile.and_then(|n| limits::warning(&daemon.store.load_full(), n)) {
        warn!("{w}");
    }
    let version = daemon.store.meta().version;
    let mut state = format!(
        "READY=1\n{}",
        notify::status_line(&format!("serving version {version}"))
    );
    if Notifier::is_upgrade() {
        // Under systemd the service's main process is now this one.
        state = format!("MAINPID={}\n{state}", std::process::id());
    }
    daemon.notifier.send(&state);
    if let Some(every) = notify::watchdog_interval() {
        let notifier = daemon.notifier.clone();
        // A plain task on the same runtime: it ticks only while the runtime runs tasks.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notifier.send("WATCHDOG=1");
            }
        });
    }
    let why = loop {
        tokio::select! {
            _ = hup.recv() => { let _ = daemon.reloader.reload("signal").await; }
            _ = term.recv() => break Stop::Signal,
            _ = int.recv() => break Stop::Signal,
            _ = usr2.recv() => match upgrade::start().await {
                Ok(pid) => {
                    info!(pid, "upgrade: the new process is ready; this one drains and exits");
                    break Stop::Upgraded;
                }
                Err(e) => error!(error = %format!("{e:#}"), "upgrade failed; this process keeps serving"),
            },
        }
    };
    let stop = match why {
        Stop::Signal => {
            daemon.notifier.send("STOPPING=1");
            futures_stop(daemon, false)
        }
        // Not STOPPING=1: the service goes on, in the new process.
        Stop::Upgraded => futures_stop(daemon, true),
    };
    tokio::select! {
        clean = stop => {
            if !clean { warn!("drain timeout over; exiting with work still in flight"); }
        }
        _ = term.recv() => warn!("second signal: stopping now"),
        _ = int.recv() => warn!("second signal: stopping now"),
    }
    Ok(())
}

fn futures_stop(
    daemon: Daemon,
    upgraded: bool,
) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> {
    if upgraded {
        Box::pin(daemon.stop_for_upgrade())
    } else {
        Box::pin(daemon.stop())
    }
}
