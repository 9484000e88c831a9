//! The reload store: the current policy behind an `ArcSwap`, plus what `/config` reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use crate::policy::Policy;

/// What `GET /config` reports about the loaded policy.
#[derive(Debug, Clone)]
pub struct Meta {
    /// 1 at start, +1 for each applied reload whose content differs.
    pub version: u64,
    /// Lowercase hex sha256 of the config file's bytes.
    pub sha256: String,
    /// When the current policy was swapped in.
    pub loaded_at: SystemTime,
    /// When the latest successful load ended, an unchanged file included
    /// (`spaced_config_last_reload_seconds`): alerting on its age shows a process whose
    /// reloads stopped succeeding, which `loaded_at` cannot tell from one with no edits.
    pub last_ok_at: SystemTime,
    /// The error of the latest attempt, `None` when it succeeded.
    pub last_error: Option<String>,
    /// Digest of the config file and every file it names: what decides whether a reload
    /// changed anything (an edited `trusted_file` changes it, `sha256` does not).
    pub content: String,
}

/// What [`Store::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The policy was swapped in as this version.
    Swapped(u64),
    /// The file's bytes were unchanged; the version stays.
    Unchanged(u64),
}

impl Applied {
    /// The version now serving.
    pub fn version(self) -> u64 {
        match self {
            Self::Swapped(v) | Self::Unchanged(v) => v,
        }
    }
}

/// The current policy, swapped atomically on reload.
///
/// Hot paths call [`Store::load`] once per unit of work (connection or request) and keep
/// that view to the end, which is why a reload never changes a request half-way. Slow
/// reactors (listener sets, health-check tasks, the DNS zone) [`Store::subscribe`] to the
/// version and reconcile.
#[derive(Debug)]
pub struct Store {
    policy: ArcSwap<Policy>,
    meta: ArcSwap<Meta>,
    /// Sends the new version after each swap; receivers reconcile.
    version: watch::Sender<u64>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Store {
    /// A store serving `policy` as version 1.
    pub fn new(policy: Policy, sha256: String) -> Self {
        let content = sha256.clone();
        Self::with_content(policy, sha256, content)
    }

    /// A store serving `policy` as version 1, with the content digest of [`Store::apply_content`].
    pub fn with_content(policy: Policy, sha256: String, content: String) -> Self {
        let (version, _) = watch::channel(1);
        let now = SystemTime::now();
        Self {
            policy: ArcSwap::from_pointee(policy),
            meta: ArcSwap::from_pointee(Meta {
                version: 1,
                sha256,
                loaded_at: now,
                last_ok_at: now,
                last_error: None,
                content,
            }),
            version,
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    /// A short-lived view of the current policy (do not hold it across `.await`).
    #[inline]
    pub fn load(&self) -> Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// An owned view of the current policy, for work that awaits.
    #[inline]
    pub fn load_full(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// What `/config` reports.
    pub fn meta(&self) -> Arc<Meta> {
        self.meta.load_full()
    }

    /// A receiver of the version, changed after each swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Swaps in a validated policy, unless the file's bytes are unchanged. Clears
    /// `last_error` either way: the latest attempt succeeded.
    pub fn apply(&self, policy: Policy, sha256: String) -> Applied {
        let content = sha256.clone();
        self.apply_content(policy, sha256, content)
    }

    /// Like [`Store::apply`], but decides "unchanged" by `content`, a digest over the config
    /// file and the files it names, so an edit of an included file alone still applies.
    pub fn apply_content(&self, policy: Policy, sha256: String, content: String) -> Applied {
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        let meta = self.meta.load_full();
        if meta.content == content {
            self.meta.store(Arc::new(Meta {
                last_error: None,
                last_ok_at: SystemTime::now(),
                ..Meta::clone(&meta)
            }));
            return Applied::Unchanged(meta.version);
        }
        let version = meta.version + 1;
        let now = SystemTime::now();
        self.policy.store(Arc::new(policy));
        self.meta.store(Arc::new(Meta {
            version,
            sha256,
            loaded_at: now,
            last_ok_at: now,
            last_error: None,
            content,
        }));
        self.version.send_replace(version);
        Applied::Swapped(version)
    }

    /// Records a rejected reload; the current policy keeps serving.
    pub fn reject(&self, error: String) {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        let meta = self.meta.load_full();
        self.meta.store(Arc::new(Meta {
            last_error: Some(error),
            ..Meta::clone(&meta)
        }));
    }

    /// `(applied, rejected)` reload attempts since start.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }
}
