//! `RLIMIT_NOFILE`: raised to the hard limit at start, as Go programs and HAProxy do, and
//! compared with what the policy can hold open (OPERATIONS.md "Limits").

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use spaced_config::Policy;

/// Descriptors that are not connections: the listeners, the config watcher, log files,
/// certificates being read, health checks, the admin API.
const MARGIN: u64 = 256;

/// The egress gateway has no connection cap of its own (only `max_per_destination`):
/// this many tunnels (two sockets each) are counted for it.
const EGRESS_ALLOWANCE: u64 = 4096;

/// The resolver's TCP clients plus its forwards in flight (`spaced_resolver::Options`).
const RESOLVER_ALLOWANCE: u64 = 1024 + 1024;

/// Raises the soft limit to the hard one. Returns the soft limit now in force.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_nofile() -> std::io::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(soft_nofile())
}

/// The soft limit now (`u64::MAX` for unlimited).
pub fn soft_nofile() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The hard limit: what a start would raise the soft one to.
pub fn hard_nofile() -> u64 {
    getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX)
}

/// What the policy can hold open at once:
/// `2 × router.max_connections` (a client and a dyno socket each, when the router runs)
/// `+ 2 × 4096` (egress tunnels, when the gateway runs)
/// `+ 2048` (resolver TCP clients and forwards, when the resolver runs)
/// `+ one per listener + 256`.
pub fn needed(p: &Policy) -> u64 {
    let r = &p.router;
    let mut n = MARGIN;
    if !(r.listen.is_empty() && r.tls_listen.is_empty() && r.internal_listen.is_empty()) {
        n += 2 * r.max_connections as u64;
    }
    let e = &p.egress;
    if !(e.listen.is_empty() && e.socks_listen.is_empty() && e.transparent_listen.is_empty()) {
        n += 2 * EGRESS_ALLOWANCE;
    }
    if !p.resolver.listen.is_empty() {
        n += RESOLVER_ALLOWANCE;
    }
    n + p
        .listeners()
        .iter()
        .map(|(_, a)| a.len() as u64)
        .sum::<u64>()
}

/// The warning when `limit` is below what `p` needs.
pub fn warning(p: &Policy, limit: u64) -> Option<String> {
    let needed = needed(p);
    (limit < needed).then(|| {
        format!(
            "open file limit (RLIMIT_NOFILE) {limit} is below the {needed} this configuration can hold open; raise LimitNOFILE (systemd) or ulimit -n"
        )
    })
}
