//! The `[daemon] cache` file: the last view whose policy applied, so that a process
//! starting while etcd is unreachable serves what the fleet last agreed on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{error::FleetError, source::View};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cached {
    prefix: String,
    revision: i64,
    policy: Option<String>,
    dynos: BTreeMap<String, String>,
}

/// Writes `view` to `path` atomically (a temporary file renamed over it): a crash mid-write
/// must never leave half a policy for the next start.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, prefix: &str, view: &View) -> Result<(), FleetError> {
    let cached = Cached {
        prefix: prefix.to_string(),
        revision: view.revision,
        policy: view
            .policy
            .as_ref()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        dynos: view
            .dynos
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
    };
    let io = |e: std::io::Error| FleetError::File {
        what: "daemon.cache",
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let json = serde_json::to_vec(&cached).map_err(|e| FleetError::Invalid(e.to_string()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads the view cached for `prefix`; a cache of another prefix is an error (a file
/// copied between spaces must not serve the wrong policy).
///
/// # Errors
/// Unreadable, malformed, or written for another prefix.
pub fn read(path: &Path, prefix: &str) -> Result<View, FleetError> {
    let bytes = std::fs::read(path).map_err(|e| FleetError::File {
        what: "daemon.cache",
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let cached: Cached = serde_json::from_slice(&bytes)
        .map_err(|e| FleetError::Invalid(format!("{}: {e}", path.display())))?;
    if cached.prefix != prefix {
        return Err(FleetError::Invalid(format!(
            "{}: written for prefix {:?}, not {prefix:?}",
            path.display(),
            cached.prefix
        )));
    }
    Ok(View {
        revision: cached.revision,
        policy: cached.policy.map(|p| Arc::new(p.into_bytes())),
        dynos: Arc::new(
            cached
                .dynos
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        ),
        unknown: Arc::default(),
    })
}
