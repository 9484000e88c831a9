//! The policy source: read the space's prefix at one revision, then watch it from the next
//! one, publishing the whole [`View`] after every change.
//!
//! A `watch` channel carries the views: a consumer busy compiling sees only the latest
//! one when it looks again, so a burst of changes costs one compile, not one each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use spaced_config::Fleet;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{error::FleetError, keys};

/// First wait after a failure; doubled each time up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest wait between attempts: an outage's end is noticed within this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Everything under the prefix that spaced reads, at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The etcd revision this view is complete at (0: nothing read yet).
    pub revision: i64,
    /// The `policy` document, when written.
    pub policy: Option<Arc<Vec<u8>>>,
    /// `dynos/…` keys, by their path below `dynos/` (`api/web/1`), with their values.
    pub dynos: Arc<BTreeMap<String, Vec<u8>>>,
    /// Keys under the prefix that mean nothing to spaced (a typo such as `polcy`), by their
    /// path below the prefix: reported, never applied.
    pub unknown: Arc<Vec<String>>,
}

/// What the source reports about the store, for metrics and `/fleet`.
#[derive(Debug, Default)]
pub struct Status {
    /// Whether a watch is established now.
    pub connected: AtomicBool,
    /// The latest revision seen.
    pub revision: AtomicI64,
    /// Views that were applied.
    pub changes_applied: AtomicU64,
    /// Views whose policy was rejected (the previous one keeps serving).
    pub changes_rejected: AtomicU64,
    /// Dyno keys skipped for being wrong (counted per change).
    pub changes_ignored: AtomicU64,
}

impl Status {
    /// Whether a watch is established now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// Reads and watches `cfg.prefix` until the returned future is dropped, sending every new
/// view on `tx`. Never returns: failures are logged and retried with backoff, the last view
/// staying what it was (so the daemon keeps serving it).
pub async fn run(cfg: Fleet, tx: watch::Sender<View>, status: Arc<Status>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut view = tx.borrow().clone();
        let was = view.revision;
        let result = session(&cfg, &tx, &status, &mut view).await;
        status.connected.store(false, Ordering::Relaxed);
        if view.revision > was {
            // It worked for a while: the next failure starts from a short wait again.
            backoff = BACKOFF_MIN;
        }
        if let Err(e) = result {
            warn!(error = %e, retry_in = ?backoff, "fleet: etcd unreachable; serving the last applied policy");
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A wait between 75 % and 125 % of `d`, so that a fleet does not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0)
}

async fn session(
    cfg: &Fleet,
    tx: &watch::Sender<View>,
    status: &Status,
    view: &mut View,
) -> Result<(), FleetError> {
    let mut client = crate::client::connect(cfg).await?;
    let all = keys::all(&cfg.prefix);
    if view.revision == 0 {
        *view = read_all(&mut client, &cfg.prefix).await?;
        publish(tx, status, view);
    }
    loop {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(view.revision + 1);
        let mut stream = client.watch(all.as_bytes(), Some(opts)).await?;
        status.connected.store(true, Ordering::Relaxed);
        info!(revision = view.revision, "fleet: watching etcd");
        let compacted = loop {
            let Some(resp) = stream.message().await? else {
                return Err(FleetError::Watch("the watch stream ended".into()));
            };
            if resp.compact_revision() > 0 {
                break true;
            }
            if resp.canceled() {
                return Err(FleetError::Watch(format!(
                    "cancelled by etcd: {}",
                    resp.cancel_reason()
                )));
            }
            if resp.events().is_empty() {
                continue;
            }
            let mut next = view.clone();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let value = match event.event_type() {
                    EventType::Put => Some(kv.value()),
                    EventType::Delete => None,
                };
                set(&mut next, &cfg.prefix, kv.key(), value);
            }
            next.revision = resp
                .header()
                .map_or(view.revision, |h| h.revision())
                .max(view.revision);
            // Instances rewrite their own keys on every change they apply: publishing
            // those would make every instance apply (and rewrite its key) again, forever.
            let relevant = next.policy != view.policy
                || next.dynos != view.dynos
                || next.unknown != view.unknown;
            *view = next;
            if relevant {
                publish(tx, status, view);
            } else {
                status.revision.store(view.revision, Ordering::Relaxed);
            }
        };
        if compacted {
            // The revision we would resume from is gone: changes may be lost, so the
            // only sound state is a fresh read.
            warn!(
                revision = view.revision,
                "fleet: watch revision compacted; reading everything again"
            );
            *view = read_all(&mut client, &cfg.prefix).await?;
            publish(tx, status, view);
        }
    }
}

fn publish(tx: &watch::Sender<View>, status: &Status, view: &View) {
    status.revision.store(view.revision, Ordering::Relaxed);
    tx.send_replace(view.clone());
}

/// Every key under the prefix, at one revision.
///
/// # Errors
/// etcd unreachable.
pub async fn read_all(client: &mut Client, prefix: &str) -> Result<View, FleetError> {
    let resp = client
        .get(keys::all(prefix), Some(GetOptions::new().with_prefix()))
        .await?;
    let mut view = View {
        revision: resp.header().map_or(0, |h| h.revision()),
        ..View::default()
    };
    for kv in resp.kvs() {
        put_kv(&mut view, prefix, kv);
    }
    Ok(view)
}

fn put_kv(view: &mut View, prefix: &str, kv: &KeyValue) {
    set(view, prefix, kv.key(), Some(kv.value()));
}

/// Applies one key's new value (`None`: deleted) to a view.
fn set(view: &mut View, prefix: &str, key: &[u8], value: Option<&[u8]>) {
    let Some(rest) = key
        .strip_prefix(prefix.as_bytes())
        .and_then(|k| k.strip_prefix(b"/"))
    else {
        return;
    };
    let rest = String::from_utf8_lossy(rest).into_owned();
    if rest == "policy" {
        view.policy = value.map(|v| Arc::new(v.to_vec()));
    } else if let Some(dyno) = rest.strip_prefix("dynos/") {
        let dynos = Arc::make_mut(&mut view.dynos);
        match value {
            Some(v) => dynos.insert(dyno.to_string(), v.to_vec()),
            None => dynos.remove(dyno),
        };
    } else if !rest.starts_with("instances/") {
        let unknown = Arc::make_mut(&mut view.unknown);
        unknown.retain(|k| *k != rest);
        if value.is_some() {
            unknown.push(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_in_their_place() {
        let mut v = View::default();
        set(&mut v, "/s", b"/s/policy", Some(b"x"));
        set(&mut v, "/s", b"/s/dynos/api/web/1", Some(b"{}"));
        set(&mut v, "/s", b"/s/instances/edge-1", Some(b"{}"));
        set(&mut v, "/s", b"/s/polcy", Some(b"y"));
        set(&mut v, "/s", b"/s2/policy", Some(b"z"));
        assert_eq!(v.policy.as_deref().map(Vec::as_slice), Some(&b"x"[..]));
        assert_eq!(v.dynos.len(), 1);
        assert_eq!(*v.unknown, vec!["polcy".to_string()]);
        set(&mut v, "/s", b"/s/dynos/api/web/1", None);
        set(&mut v, "/s", b"/s/polcy", None);
        assert!(v.dynos.is_empty());
        assert!(v.unknown.is_empty());
    }
}
