//! Instance registration: `instances/<name>` under this process's own lease, so an
//! operator sees which host serves which revision, and a host that dies leaves by itself.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions};
use serde::{Deserialize, Serialize};
use spaced_config::Fleet;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{error::FleetError, keys};

/// The value of `instances/<instance>` (OPERATIONS.md "Fleet").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// This process's name in the fleet.
    pub instance: String,
    /// The components running: `router`, `resolver`, `egress`.
    pub components: Vec<String>,
    /// The spaced version.
    pub version: String,
    /// The etcd revision of the policy serving now.
    pub revision: i64,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The latest rejected change's error, `None` when the latest change applied.
    pub last_error: Option<String>,
    /// The egress source IPs this host owns.
    pub source_ips: Vec<String>,
}

/// Keeps `instances/<name>` written under a lease while it runs.
pub struct Registration {
    cfg: Fleet,
    name: String,
    record: watch::Receiver<InstanceRecord>,
}

impl Registration {
    /// A registration of `name`, writing each record `record` carries.
    pub fn new(cfg: Fleet, name: String, record: watch::Receiver<InstanceRecord>) -> Self {
        Self { cfg, name, record }
    }

    /// Registers, refreshes the lease and rewrites the key on every new record, until
    /// `stop` completes; then revokes the lease (which deletes the key). Failures are
    /// retried with backoff: the registration is a report, never a reason to stop serving.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut lease = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                r = self.session(&mut lease) => {
                    if let Err(e) = r {
                        warn!(error = %e, retry_in = ?backoff, "fleet: instance registration failed");
                    }
                }
            }
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if let Some((mut client, id)) = lease {
            let revoke = async {
                let _ = Client::lease_revoke(&mut client, id).await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), revoke).await;
        }
    }

    async fn session(&mut self, lease: &mut Option<(Client, i64)>) -> Result<(), FleetError> {
        let mut client = crate::client::connect(&self.cfg).await?;
        let ttl = i64::try_from(self.cfg.lease_ttl.as_secs().max(1)).unwrap_or(10);
        let id = client.lease_grant(ttl, None).await?.id();
        *lease = Some((client.clone(), id));
        let (mut keeper, mut responses) = client.lease_keep_alive(id).await?;
        let key = keys::instance(&self.cfg.prefix, &self.name);
        // A third of the TTL: two refreshes may be lost before the key expires.
        let refresh = self.cfg.lease_ttl / 3;
        let mut written = false;
        loop {
            if !written {
                let record = self.record.borrow_and_update().clone();
                let value =
                    serde_json::to_vec(&record).map_err(|e| FleetError::Invalid(e.to_string()))?;
                client
                    .put(
                        key.as_bytes(),
                        value,
                        Some(PutOptions::new().with_lease(id)),
                    )
                    .await?;
                written = true;
                debug!(revision = record.revision, "fleet: instance registered");
            }
            tokio::select! {
                () = tokio::time::sleep(refresh) => {
                    keeper.keep_alive().await?;
                    match responses.message().await? {
                        Some(r) if r.ttl() > 0 => {}
                        // The lease expired meanwhile (a long pause): start over with a new one.
                        _ => return Err(FleetError::Invalid("registration lease expired".into())),
                    }
                }
                changed = self.record.changed() => {
                    if changed.is_err() {
                        // The daemon is going away; `stop` ends the loop.
                        std::future::pending::<()>().await;
                    }
                    written = false;
                }
            }
        }
    }
}

/// Every registered instance and the store's current revision.
///
/// # Errors
/// etcd unreachable.
pub async fn list(
    client: &mut Client,
    prefix: &str,
) -> Result<(i64, Vec<InstanceRecord>), FleetError> {
    let resp = client
        .get(
            keys::instances(prefix),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut out = Vec::with_capacity(resp.kvs().len());
    for kv in resp.kvs() {
        match serde_json::from_slice::<InstanceRecord>(kv.value()) {
            Ok(r) => out.push(r),
            Err(e) => out.push(InstanceRecord {
                instance: String::from_utf8_lossy(kv.key()).into_owned(),
                last_error: Some(format!("unreadable instance record: {e}")),
                ..InstanceRecord::default()
            }),
        }
    }
    Ok((revision, out))
}

/// The newest revision of anything spaced applies (`policy` and `dynos/…`), which is what
/// "serves the latest revision" compares against; instance keys change all the time and
/// are not policy.
///
/// # Errors
/// etcd unreachable.
pub async fn latest_policy_revision(client: &mut Client, prefix: &str) -> Result<i64, FleetError> {
    let mut latest = 0;
    let policy = client.get(keys::policy(prefix), None).await?;
    latest = policy
        .kvs()
        .iter()
        .map(|kv| kv.mod_revision())
        .fold(latest, i64::max);
    let dynos = client
        .get(
            keys::dynos(prefix),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await?;
    latest = dynos
        .kvs()
        .iter()
        .map(|kv| kv.mod_revision())
        .fold(latest, i64::max);
    Ok(latest)
}
