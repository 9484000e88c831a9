//! [`status_json`], the body of `GET /fleet` and of `spaced fleet status --json`; a leaf
//! that the admin side (`fleet::admin`) and the command line (`fleet::cli`) both use.

use spaced_fleet::instance;

/// The body of `/fleet` and of `spaced fleet status --json`.
pub fn status_json(latest: i64, records: &[instance::InstanceRecord]) -> serde_json::Value {
    let instances: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert(
                    "latest".into(),
                    (r.revision >= latest && r.last_error.is_none()).into(),
                );
            }
            v
        })
        .collect();
    serde_json::json!({ "revision": latest, "instances": instances })
}
