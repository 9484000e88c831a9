//! The daemon's side of the fleet (OPERATIONS.md "Fleet"): every view of the store that
//! `spaced_fleet::source` publishes goes through the same compile, validate and atomic swap
//! as a file reload, merged with the local file's host part; the local file's own reloads
//! come here too, merged with the last applied view.
//!
//! A change of dyno keys alone does not compile the policy again: the compiled base (local
//! file + shared policy) is kept, and the registry's dynos are joined to it
//! (`spaced_fleet::dynos::join`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use sha2::{Digest, Sha256};
use spaced_config::{self as config, Applied, Errors, Fleet, Policy, Store};
use spaced_fleet::{InstanceRecord, Registration, Status, View, dynos, keys};
use spaced_net::Shutdown;
use tokio::sync::{Mutex, watch};
use tracing::{error, info, warn};

pub(crate) mod admin;
pub mod cli;
mod status;
pub use status::status_json;

/// How long a start waits for etcd before serving from the cache (or the local part alone).
const INITIAL_WAIT: Duration = Duration::from_secs(3);

/// The link between the store and the fleet.
pub struct Link {
    store: Arc<Store>,
    path: PathBuf,
    cfg: Fleet,
    instance: String,
    cache: Option<PathBuf>,
    status: Arc<Status>,
    state: Mutex<State>,
    record: watch::Sender<InstanceRecord>,
    /// Dyno keys skipped in the latest applied view, each with its key's name.
    ignored: arc_swap::ArcSwap<Vec<String>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("instance", &self.instance)
            .field("prefix", &self.cfg.prefix)
            .finish_non_exhaustive()
    }
}

/// What the last successful apply was made of. Behind the mutex: one apply at a time, so
/// two triggers racing never swap out of order.
#[derive(Default)]
struct State {
    /// The view whose policy serves now.
    applied: View,
    /// The local file and shared policy compiled, without the registry's dynos.
    base: Option<Arc<Policy>>,
    /// Digest of the local file (and the files it names) that `base` was compiled from.
    local: String,
    /// sha256 of the local file's bytes.
    sha256: String,
    /// The latest rejected policy document and its error, so that a dyno change while it
    /// sits in etcd does not compile it again.
    rejected: Option<(Arc<Vec<u8>>, String)>,
}

impl Link {
    /// The fleet's status (connected, revision, change counters).
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// `[fleet]` as loaded at start.
    pub fn config(&self) -> &Fleet {
        &self.cfg
    }

    /// The revision of the view serving now.
    pub async fn applied_revision(&self) -> i64 {
        self.state.lock().await.applied.revision
    }

    /// What this instance last wrote (or would write) to `instances/<name>`.
    pub fn record(&self) -> InstanceRecord {
        self.record.borrow().clone()
    }

    /// Dyno keys skipped in the latest applied view.
    pub fn ignored(&self) -> Arc<Vec<String>> {
        self.ignored.load_full()
    }

    /// A file reload (watcher, SIGHUP, `POST /reload`): the local file merged with the
    /// last applied view.
    ///
    /// # Errors
    /// The full error text when the result is rejected.
    pub async fn reload_local(&self, trigger: &'static str) -> Result<Applied, String> {
        let mut state = self.state.lock().await;
        let view = state.applied.clone();
        self.apply_locked(&mut state, view, true, trigger).await
    }

    /// A new view from the store.
    async fn apply_view(&self, view: View) -> Result<Applied, String> {
        let mut state = self.state.lock().await;
        let recompile = state.base.is_none() || state.applied.policy != view.policy;
        self.apply_locked(&mut state, view, recompile, "etcd").await
    }

    async fn apply_locked(
        &self,
        state: &mut State,
        view: View,
        recompile: bool,
        trigger: &'static str,
    ) -> Result<Applied, String> {
        if !view.unknown.is_empty() {
            warn!(keys = ?view.unknown, "fleet: keys under the prefix that spaced does not read");
        }
        // A rejected policy: the previous one keeps serving, but the registry's dynos still
        // join it, so dynos keep coming and going while someone fixes the document.
        let mut rejection = None;
        let mut view = view;
        if recompile {
            let known = state
                .rejected
                .as_ref()
                .filter(|(bytes, _)| trigger == "etcd" && view.policy.as_ref() == Some(bytes))
                .map(|(_, message)| message.clone());
            let compiled = match known {
                // The same bad document again (a dyno changed): no need to compile it.
                Some(message) => Err(message),
                None => {
                    let path = self.path.clone();
                    let policy = view.policy.clone();
                    let name = keys::policy_name(&self.cfg.prefix);
                    tokio::task::spawn_blocking(move || compile(&path, policy.as_deref(), &name))
                        .await
                        .map_err(|e| format!("compile task failed: {e}"))?
                        .map_err(|errors| {
                            let message = errors.to_string();
                            error!(trigger, revision = view.revision, error = %message, "fleet: policy rejected; the previous one keeps serving");
                            if trigger == "etcd" {
                                self.status.changes_rejected.fetch_add(1, Ordering::Relaxed);
                            }
                            message
                        })
                }
            };
            match compiled {
                Ok((base, sha256, local)) => {
                    state.base = Some(Arc::new(base));
                    state.sha256 = sha256;
                    state.local = local;
                    state.rejected = None;
                }
                Err(message) => {
                    if state.base.is_none() || trigger != "etcd" {
                        self.store.reject(message.clone());
                        self.record
                            .send_modify(|r| r.last_error = Some(message.clone()));
                        return Err(message);
                    }
                    if let Some(bytes) = &view.policy {
                        state.rejected = Some((bytes.clone(), message.clone()));
                    }
                    view.policy = state.applied.policy.clone();
                    rejection = Some(message);
                }
            }
        }
        let Some(base) = state.base.clone() else {
            return Err("no compiled policy".into());
        };
        let (policy, ignored) = dynos::join(&base, &self.cfg.prefix, &view.dynos);
        for e in &ignored {
            warn!(error = %e, "fleet: dyno key ignored");
        }
        if trigger == "etcd" && rejection.is_none() {
            self.status.changes_applied.fetch_add(1, Ordering::Relaxed);
            self.status
                .changes_ignored
                .fetch_add(ignored.len() as u64, Ordering::Relaxed);
        }
        let content = content_digest(&state.local, &view);
        let prev = self.store.load_full();
        let summary = prev.diff(&policy).to_string();
        let applied = self
            .store
            .apply_content(policy, state.sha256.clone(), content);
        if let Applied::Swapped(v) = applied {
            info!(reload.generation = v, reload.trigger = trigger, revision = view.revision, %summary, "policy reloaded");
        }
        if let Some(cache) = &self.cache
            && view.revision > 0
        {
            // Off the runtime's workers (a registry of 10,000 dynos is a megabyte), and
            // awaited under the state lock so two writes never land out of order.
            let (cache, prefix, cached) = (cache.clone(), self.cfg.prefix.clone(), view.clone());
            let written = tokio::task::spawn_blocking(move || {
                spaced_fleet::cache::write(&cache, &prefix, &cached)
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "fleet: cannot write the cache"),
                Err(e) => warn!(error = %e, "fleet: cache task failed"),
            }
        }
        let sources = self
            .store
            .load()
            .egress
            .source_ips
            .iter()
            .map(ToString::to_string)
            .collect();
        // Rewritten only when it says something new: each write is an etcd revision.
        self.record.send_if_modified(|r| {
            let changed =
                r.revision != view.revision || r.last_error != rejection || r.source_ips != sources;
            if changed {
                r.revision = view.revision;
                r.applied_at = spaced_logs::format::rfc3339_seconds(SystemTime::now());
                r.last_error.clone_from(&rejection);
                r.source_ips = sources;
            }
            changed
        });
        self.ignored.store(Arc::new(ignored));
        state.applied = view;
        if let Some(message) = rejection {
            // After the swap, which cleared it: `/config` shows why the document waits.
            self.store.reject(message.clone());
            return Err(message);
        }
        Ok(applied)
    }
}

/// sha256 over what the served policy is made of: the local files, the shared policy and
/// the registry. Equal digests: nothing to swap.
fn content_digest(local: &str, view: &View) -> String {
    let mut h = Sha256::new();
    h.update(local.as_bytes());
    if let Some(p) = &view.policy {
        h.update(b"\x00policy\x00");
        h.update(p.as_slice());
    }
    for (k, v) in view.dynos.iter() {
        h.update(b"\x00dyno\x00");
        h.update(k.as_bytes());
        h.update(b"\x00");
        h.update(v);
    }
    spaced_config::hex(&h.finalize())
}

/// Compiles the local file merged with `policy`: `(policy, sha256 of the file, digest of
/// the file and every file it names)`.
fn compile(
    path: &Path,
    policy: Option<&Vec<u8>>,
    name: &str,
) -> Result<(Policy, String, String), Errors> {
    let loaded = spaced_config::load_with(path, |bytes, source| {
        config::parse_fleet(bytes, source, policy.map(Vec::as_slice), name)
    })?;
    Ok((loaded.policy, loaded.sha256, loaded.content))
}

/// `spaced check` of a host's file with `[fleet]`: the local part as the fleet merges it,
/// so a shared key written in the file is named.
///
/// # Errors
/// Every located problem.
pub fn check_local(path: &Path) -> Result<(), Errors> {
    compile(path, None, "(fleet policy)").map(|_| ())
}

/// The host name, for `instance` when the file does not say.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "spaced".to_string())
}

/// Connects the store to the fleet: waits a moment for etcd's first view (else serves the
/// cache, else the local part alone), applies it, and starts the watch, the applier and the
/// instance registration.
///
/// # Errors
/// The local file is invalid in fleet mode (a shared key in it, say).
pub async fn start(path: &Path, store: Arc<Store>, shutdown: &Shutdown) -> Result<Arc<Link>> {
    let policy = store.load_full();
    let Some(cfg) = policy.fleet.clone() else {
        return Err(anyhow!("no [fleet] section"));
    };
    let instance = cfg.instance.clone().unwrap_or_else(host_name);
    let mut components = Vec::new();
    let r = &policy.router;
    if !(r.listen.is_empty() && r.tls_listen.is_empty() && r.internal_listen.is_empty()) {
        components.push("router".to_string());
    }
    if !policy.resolver.listen.is_empty() {
        components.push("resolver".to_string());
    }
    let e = &policy.egress;
    if !(e.listen.is_empty() && e.socks_listen.is_empty() && e.transparent_listen.is_empty()) {
        components.push("egress".to_string());
    }
    let (record, record_rx) = watch::channel(InstanceRecord {
        instance: instance.clone(),
        components,
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..InstanceRecord::default()
    });
    let link = Arc::new(Link {
        store,
        path: path.to_path_buf(),
        cache: policy.daemon.cache.clone(),
        cfg: cfg.clone(),
        instance: instance.clone(),
        status: Arc::new(Status::default()),
        state: Mutex::new(State::default()),
        record,
        ignored: arc_swap::ArcSwap::from_pointee(Vec::new()),
    });
    drop(policy);

    let (tx, mut rx) = watch::channel(View::default());
    let source = spaced_fleet::source::run(cfg.clone(), tx, link.status.clone());
    let task = shutdown.clone();
    shutdown.spawn(async move {
        tokio::select! {
            () = task.cancelled() => {}
            () = source => {}
        }
    });

    // The first view: from etcd if it answers soon; else, or when etcd's policy is
    // rejected, the cache; else the local part alone.
    let from_etcd = tokio::time::timeout(INITIAL_WAIT, rx.wait_for(|v| v.revision > 0))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|v| v.clone());
    if from_etcd.is_none() {
        warn!(etcd = ?cfg.etcd, "fleet: etcd unreachable at start");
    }
    let mut rejected = None;
    let mut applied = false;
    if let Some(view) = from_etcd {
        match link.apply_view(view).await {
            Ok(_) => applied = true,
            Err(e) => rejected = Some(e),
        }
    }
    if !applied && let Some(cache) = &link.cache {
        match spaced_fleet::cache::read(cache, &cfg.prefix) {
            Ok(view) => {
                info!(revision = view.revision, cache = %cache.display(), "fleet: serving the cached policy");
                applied = link.apply_view(view).await.is_ok();
            }
            Err(e) => warn!(error = %e, "fleet: no usable cache"),
        }
    }
    if !applied {
        // Nothing from the fleet applies: the local part alone must, or the file is wrong.
        warn!("fleet: serving the local part alone until etcd's policy applies");
        link.apply_view(View::default())
            .await
            .map_err(|e| anyhow!("{e}"))?;
    }
    if let Some(message) = rejected {
        // What serves is a fallback: etcd's policy was rejected, and says so.
        link.store.reject(message.clone());
        link.record.send_modify(|r| r.last_error = Some(message));
    }

    let applier = link.clone();
    let task = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            tokio::select! {
                () = task.cancelled() => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            let view = rx.borrow_and_update().clone();
            let _ = applier.apply_view(view).await;
        }
    });
    let registration = Registration::new(cfg, instance, record_rx);
    let task = shutdown.clone();
    shutdown.spawn(async move { registration.run(task.cancelled()).await });
    Ok(link)
}
