//! The policy source against a real etcd: resuming from a revision that was compacted
//! meanwhile reads everything again; registration writes and revokes its key.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use spaced_config::Fleet;
use spaced_fleet::etcd_client::Client;
use spaced_fleet::{InstanceRecord, Registration, Status, View, source};
use spaced_testkit::etcd::Etcd;
use tokio::sync::watch;

fn fleet(etcd: &Etcd, prefix: &str) -> Fleet {
    Fleet {
        etcd: etcd.endpoints(),
        prefix: prefix.to_string(),
        instance: Some("t".into()),
        lease_ttl: Duration::from_secs(2),
        ca: None,
        cert: None,
        key: None,
        username: None,
        password_file: None,
    }
}

#[tokio::test]
async fn a_compacted_revision_is_read_again() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut c = etcd.client().await;
    let first = c.put("/s/policy", "a", None).await.unwrap();
    let old = first.header().unwrap().revision();
    c.put("/s/dynos/api/web/1", "{}", None).await.unwrap();
    let last = c.put("/s/policy", "c", None).await.unwrap();
    c.compact(last.header().unwrap().revision(), None)
        .await
        .unwrap();

    // As after a long outage: the view is at a revision etcd no longer has.
    let stale = View {
        revision: old,
        policy: Some(Arc::new(b"a".to_vec())),
        ..View::default()
    };
    let (tx, mut rx) = watch::channel(stale);
    let status = Arc::new(Status::default());
    let task = tokio::spawn(source::run(fleet(&etcd, "/s"), tx, status.clone()));
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|v| v.policy.as_deref().map(Vec::as_slice) == Some(b"c")),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert_eq!(got.dynos.len(), 1);
    assert!(got.revision >= last.header().unwrap().revision());
    task.abort();
}

#[tokio::test]
async fn registration_writes_its_key_and_removes_it_on_stop() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let record = InstanceRecord {
        instance: "t".into(),
        revision: 7,
        ..InstanceRecord::default()
    };
    let (tx, rx) = watch::channel(record);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reg = Registration::new(fleet(&etcd, "/r"), "t".into(), rx);
    let task = tokio::spawn(reg.run(async {
        let _ = stop_rx.await;
    }));
    let mut c = etcd.client().await;
    let read =
        |mut c: Client| async move { spaced_fleet::instance::list(&mut c, "/r").await.unwrap().1 };
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = read(c.clone()).await;
        if seen.first().is_some_and(|r| r.revision == 7) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.len(), 1);
    tx.send_modify(|r| r.revision = 8);
    for _ in 0..100 {
        seen = read(c.clone()).await;
        if seen.first().is_some_and(|r| r.revision == 8) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.first().map(|r| r.revision), Some(8));
    // Kept alive past its TTL (the pause is the test: the lease would have expired).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(read(c.clone()).await.len(), 1);
    let _ = stop_tx.send(());
    task.await.unwrap();
    assert!(
        c.get("/r/instances/t", None)
            .await
            .unwrap()
            .kvs()
            .is_empty()
    );
}

#[tokio::test]
async fn username_and_password_file() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut c = etcd.client().await;
    c.user_add("root", "s3cret", None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.auth_enable().await.unwrap();
    let dir = std::env::temp_dir().join(format!("spaced-fleet-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let password = dir.join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let mut cfg = fleet(&etcd, "/a");
    cfg.username = Some("root".into());
    cfg.password_file = Some(password.clone());
    let mut authed = spaced_fleet::connect(&cfg).await.unwrap();
    authed.put("/a/policy", "x", None).await.unwrap();
    std::fs::write(&password, "wrong").unwrap();
    assert!(spaced_fleet::connect(&cfg).await.is_err());
    cfg.password_file = Some(dir.join("missing"));
    let err = spaced_fleet::connect(&cfg).await.err().unwrap().to_string();
    assert!(err.starts_with("cannot read fleet.password_file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA and one certificate for 127.0.0.1 signed by it, written to `dir`.
fn tls_files(dir: &std::path::Path) -> spaced_testkit::etcd::Tls {
    let pki = spaced_testkit::pki::Pki::new();
    let leaf = pki.leaf(&["127.0.0.1", "localhost"]);
    let files = spaced_testkit::etcd::Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.ca, pki.ca_pem()).unwrap();
    std::fs::write(&files.cert, &leaf.cert_pem).unwrap();
    std::fs::write(&files.key, &leaf.key_pem).unwrap();
    files
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let dir = std::env::temp_dir().join(format!("spaced-fleet-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = tls_files(&dir);
    let Some(etcd) = Etcd::start_tls(files.clone()).await else {
        return;
    };
    let mut cfg = fleet(&etcd, "/t");
    assert!(cfg.etcd[0].starts_with("https://"));
    cfg.ca = Some(files.ca.clone());
    cfg.cert = Some(files.cert.clone());
    cfg.key = Some(files.key.clone());
    let mut c = spaced_fleet::connect(&cfg).await.unwrap();
    c.put("/t/policy", "x", None).await.unwrap();
    // Without the client certificate etcd refuses.
    cfg.cert = None;
    cfg.key = None;
    let refused = async {
        let mut c = spaced_fleet::connect(&cfg).await?;
        c.get("/t/policy", None).await?;
        Ok::<_, spaced_fleet::FleetError>(())
    };
    assert!(refused.await.is_err());
    cfg.cert = Some(files.cert.clone());
    assert_eq!(
        spaced_fleet::connect(&cfg)
            .await
            .err()
            .map(|e| e.to_string()),
        Some("fleet.cert and fleet.key must be given together".to_string())
    );
    drop(etcd);
    let _ = std::fs::remove_dir_all(&dir);
}
