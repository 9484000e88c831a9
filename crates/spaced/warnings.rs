//! What `spaced check` and `spaced run` warn about: choices a file may make on purpose but
//! that usually are mistakes. Warnings never reject a file (`spaced check` exits 0).

use spaced_config::Policy;
use tracing::warn;

/// Every warning about `policy`, one sentence each.
pub fn collect(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(admin) = &policy.admin {
        let ip = spaced_config::canonical(admin.listen.ip());
        // `POST /reload` and the JSON views have no authentication: anyone who can reach a
        // non-loopback address can read the policy's shape and trigger reloads.
        if !ip.is_loopback() {
            out.push(format!(
                "admin.listen {} is not a loopback address: the admin API has no authentication \
                 (POST /reload, /config); keep it on 127.0.0.1 and give probes and scrapers \
                 admin.probe_listen",
                admin.listen
            ));
        }
    }
    // A warning, not an error: the demo and local samples dial their dynos on loopback.
    if let Some(w) = spaced_config::egress_warning(&policy.egress) {
        out.push(w.to_owned());
    }
    out
}

/// Logs [`collect`]'s warnings (at start).
pub fn log(policy: &Policy) {
    for w in collect(policy) {
        warn!("{w}");
    }
}
