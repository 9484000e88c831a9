//! The fleet on the admin listener: `GET /fleet`, the etcd revision in `/config`, and the
//! `spaced_fleet_*` metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use spaced_fleet::instance;
use spaced_net::metrics;

use super::Link;
use super::status::status_json;

/// `/fleet` asks etcd; a store that does not answer within this gets a 503, not a hang.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Adds `revision` (the etcd revision serving now) and the fleet's state to `/config`.
pub(crate) async fn config(link: &Link, body: &mut serde_json::Value) {
    let revision = link.applied_revision().await;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("revision".into(), revision.into());
        obj.insert(
            "fleet".into(),
            serde_json::json!({
                "instance": link.instance(),
                "prefix": link.config().prefix,
                "connected": link.status().is_connected(),
                "ignored": *link.ignored(),
            }),
        );
    }
}

/// `GET /fleet`: every registered instance, and whether it serves the latest revision of
/// the space's policy and dynos.
pub(crate) async fn fleet(link: &Link) -> (StatusCode, serde_json::Value) {
    let ask = async {
        let mut client = spaced_fleet::connect(link.config()).await?;
        let (_, records) = instance::list(&mut client, &link.config().prefix).await?;
        let latest = instance::latest_policy_revision(&mut client, &link.config().prefix).await?;
        Ok::<_, spaced_fleet::FleetError>((latest, records))
    };
    match tokio::time::timeout(ASK_TIMEOUT, ask).await {
        Ok(Ok((latest, records))) => (StatusCode::OK, status_json(latest, &records)),
        Ok(Err(e)) => unreachable_json(link, &e.to_string()),
        Err(_) => unreachable_json(link, "etcd did not answer in time"),
    }
}

fn unreachable_json(link: &Link, error: &str) -> (StatusCode, serde_json::Value) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({
            "error": format!("etcd unreachable: {error}"),
            "self": link.record(),
        }),
    )
}

pub(crate) fn metrics(link: &Link, out: &mut String) {
    let s = link.status();
    metrics::header(
        out,
        "spaced_fleet_connected",
        "gauge",
        "1 while a watch on the fleet's etcd is established.",
    );
    metrics::sample(
        out,
        "spaced_fleet_connected",
        "",
        u8::from(s.is_connected()),
    );
    metrics::header(
        out,
        "spaced_fleet_revision",
        "gauge",
        "The latest etcd revision seen.",
    );
    metrics::sample(
        out,
        "spaced_fleet_revision",
        "",
        s.revision.load(Ordering::Relaxed),
    );
    metrics::header(
        out,
        "spaced_fleet_changes_total",
        "counter",
        "Changes from etcd by result: applied, rejected (invalid policy), ignored (dyno keys skipped).",
    );
    for (result, n) in [
        ("applied", &s.changes_applied),
        ("rejected", &s.changes_rejected),
        ("ignored", &s.changes_ignored),
    ] {
        metrics::sample(
            out,
            "spaced_fleet_changes_total",
            &format!("result=\"{result}\""),
            n.load(Ordering::Relaxed),
        );
    }
}
