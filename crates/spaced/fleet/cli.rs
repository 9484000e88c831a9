//! `spaced fleet put | register | status` (OPERATIONS.md "Fleet").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use spaced_config::{self as config, Fleet};
use spaced_fleet::etcd_client::PutOptions;
use spaced_fleet::{instance, keys};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

/// Where the fleet is: `--config FILE` (its `[fleet]`) or `--etcd URL --prefix P`.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// A host's file with `[fleet]`.
    pub config: Option<PathBuf>,
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// The space's prefix.
    pub prefix: Option<String>,
}

impl Target {
    /// The `[fleet]` to use.
    ///
    /// # Errors
    /// Neither form given, or a file without a valid `[fleet]`.
    pub fn fleet(&self) -> Result<Fleet> {
        if let Some(path) = &self.config {
            let loaded = config::load_file(path).map_err(|e| anyhow!("{e}"))?;
            let mut fleet = loaded
                .policy
                .fleet
                .ok_or_else(|| anyhow!("{}: no [fleet] section", path.display()))?;
            if !self.etcd.is_empty() {
                fleet.etcd.clone_from(&self.etcd);
            }
            if let Some(p) = &self.prefix {
                fleet.prefix = prefix(p)?;
            }
            return Ok(fleet);
        }
        let (false, Some(p)) = (self.etcd.is_empty(), &self.prefix) else {
            bail!("say where the fleet is: --config FILE, or --etcd URL --prefix P");
        };
        Ok(Fleet {
            etcd: self.etcd.clone(),
            prefix: prefix(p)?,
            instance: None,
            lease_ttl: Duration::from_secs(10),
            ca: None,
            cert: None,
            key: None,
            username: None,
            password_file: None,
        })
    }
}

fn prefix(p: &str) -> Result<String> {
    let trimmed = p.trim_end_matches('/');
    if !p.starts_with('/') || trimmed.is_empty() {
        bail!(
            "invalid prefix {p:?}: expected a key prefix starting with '/', e.g. \"/spaced/demo\""
        );
    }
    Ok(trimmed.to_string())
}

/// A host part for validating a policy with no host file at hand: every listener kind a
/// policy may need (an internal app needs an internal listener), bound nowhere.
const STAND_IN_HOST: &str =
    "[space]\nname = \"fleet-put\"\n[router]\ninternal_listen = [\"127.0.0.1:1\"]\n";

/// `spaced fleet put FILE`: validates the document (merged with the `--config` host file,
/// or a stand-in host part), then writes it as `policy`. Returns the revision written.
///
/// # Errors
/// Every located problem of the document, or etcd refusing the write.
pub async fn put(target: &Target, file: &Path) -> Result<i64> {
    let fleet = target.fleet()?;
    let doc = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let (host, dir, host_name) = match &target.config {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            path.display().to_string(),
        ),
        None => (
            STAND_IN_HOST.as_bytes().to_vec(),
            PathBuf::from("."),
            "(host part)".to_string(),
        ),
    };
    let read = |p: &Path| std::fs::read(p);
    let source = config::Source {
        name: &host_name,
        dir: &dir,
        read: &read,
    };
    let name = file.display().to_string();
    config::parse_fleet(&host, &source, Some(&doc), &name).map_err(|e| anyhow!("{e}"))?;
    let mut client = spaced_fleet::connect(&fleet).await?;
    let resp = client
        .put(keys::policy(&fleet.prefix), doc, None)
        .await
        .context("write the policy")?;
    Ok(resp.header().map_or(0, |h| h.revision()))
}

/// What `spaced fleet register` writes.
#[derive(Debug, Clone)]
pub struct Dyno {
    /// The app.
    pub app: String,
    /// The process type.
    pub process: String,
    /// Its number.
    pub number: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its zone.
    pub zone: Option<String>,
    /// The lease's TTL.
    pub ttl: Duration,
}

/// `spaced fleet register`: writes the dyno's key under a lease and keeps the lease alive
/// until SIGTERM or SIGINT, then deletes the key (a clean stop leaves no stale dyno; a
/// crash leaves it until the lease expires).
///
/// # Errors
/// Invalid arguments; etcd unreachable at the start (later outages are retried: the lease
/// outlives a short one).
pub async fn register(target: &Target, dyno: &Dyno) -> Result<()> {
    let fleet = target.fleet()?;
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 30
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !name_ok(&dyno.app) || !name_ok(&dyno.process) {
        bail!("app and process names are 1 to 30 characters of [a-z0-9-]");
    }
    if !(1..=1_000_000).contains(&dyno.number) {
        bail!("the dyno number is a whole number from 1 to 1000000");
    }
    let ttl = i64::try_from(dyno.ttl.as_secs()).unwrap_or(i64::MAX);
    if ttl < 1 {
        bail!("--ttl is at least 1s (etcd leases count whole seconds)");
    }
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let key = keys::dyno(&fleet.prefix, &dyno.app, &dyno.process, dyno.number);
    let value = serde_json::json!({ "addr": dyno.addr.to_string(), "zone": dyno.zone }).to_string();
    let mut client = spaced_fleet::connect(&fleet).await?;
    let mut lease = 0;
    loop {
        // (Re)register: at start, and after an outage long enough for the lease to expire.
        let session = async {
            let id = client.lease_grant(ttl, None).await?.id();
            lease = id;
            client
                .put(
                    key.as_bytes(),
                    value.as_bytes(),
                    Some(PutOptions::new().with_lease(id)),
                )
                .await?;
            info!(key, lease = id, "dyno registered");
            let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
            loop {
                tokio::time::sleep(dyno.ttl / 3).await;
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(r) if r.ttl() > 0 => {}
                    _ => return Err(anyhow!("lease expired")),
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        };
        tokio::select! {
            r = session => {
                if let Err(e) = r { warn!(error = %e, "registration lost; registering again"); }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let cleanup = async {
        let _ = client.delete(key.as_bytes(), None).await;
        if lease != 0 {
            let _ = client.lease_revoke(lease).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), cleanup).await;
    info!(key, "dyno deregistered");
    Ok(())
}

/// `spaced fleet status`: every registered instance and whether it serves the latest
/// revision; `(all latest, text or JSON)`.
///
/// # Errors
/// etcd unreachable.
pub async fn status(target: &Target, as_json: bool) -> Result<(bool, String)> {
    let fleet = target.fleet()?;
    let mut client = spaced_fleet::connect(&fleet).await?;
    let (_, records) = instance::list(&mut client, &fleet.prefix).await?;
    let latest = instance::latest_policy_revision(&mut client, &fleet.prefix).await?;
    let all = !records.is_empty()
        && records
            .iter()
            .all(|r| r.revision >= latest && r.last_error.is_none());
    if as_json {
        return Ok((all, super::status_json(latest, &records).to_string()));
    }
    let mut out = format!("latest revision {latest}, {} instances\n", records.len());
    out.push_str("INSTANCE\tREVISION\tLATEST\tAPPLIED_AT\tCOMPONENTS\tSOURCE_IPS\tLAST_ERROR\n");
    for r in &records {
        let latest = r.revision >= latest && r.last_error.is_none();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.instance,
            r.revision,
            if latest { "yes" } else { "no" },
            r.applied_at,
            r.components.join(","),
            r.source_ips.join(","),
            r.last_error.as_deref().unwrap_or("-").replace('\n', " | "),
        ));
    }
    Ok((all, out))
}
