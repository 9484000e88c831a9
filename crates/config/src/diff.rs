//! What a reload changes, summarised for its one log line: counts of apps, dynos and hosts
//! added, removed or changed, and which other settings moved.

use std::collections::HashSet;
use std::fmt;

use crate::ipset::IpSet;
use crate::policy::{App, Policy};

/// The difference between two policies, as [`Policy::diff`] computes it.
///
/// ```
/// use std::path::Path;
/// let source = spaced_config::Source { name: "t.toml", dir: Path::new("."), read: &|p| std::fs::read(p) };
/// let old = spaced_config::parse(b"[space]\nname = \"a\"\n", &source).unwrap();
/// let new = spaced_config::parse(
///     b"[space]\nname = \"a\"\n[[app]]\nname = \"api\"\nhosts = [\"api.x\"]\n[[app.dyno]]\naddr = \"127.0.0.1:5000\"\n",
///     &source,
/// ).unwrap();
/// let diff = old.diff(&new);
/// assert_eq!(diff.to_string(), "apps +1 -0 ~0, dynos +1 -0, hosts +1 -0");
/// assert!(!diff.is_empty());
/// assert!(new.diff(&new).is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyDiff {
    /// Apps whose name is new.
    pub apps_added: usize,
    /// Apps whose name is gone.
    pub apps_removed: usize,
    /// Apps present in both whose hosts, routing, trust, health path, token or dynos moved.
    pub apps_changed: usize,
    /// Dynos new by (app, process, number, address, zone).
    pub dynos_added: usize,
    /// Dynos gone by the same identity.
    pub dynos_removed: usize,
    /// Host names new or moved to another app.
    pub hosts_added: usize,
    /// Host names gone or moved away from their app.
    pub hosts_removed: usize,
    /// A listener address of any component changed: that needs a restart, or a
    /// reconciliation of the listener set.
    pub listeners_changed: bool,
    /// Other sections whose settings changed, among `space`, `router`, `tls`, `resolver`,
    /// `egress`, `admin` and `daemon`, in that order.
    pub sections: Vec<&'static str>,
}

impl PolicyDiff {
    /// Whether nothing at all changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for PolicyDiff {
    /// `apps +1 -0 ~2, dynos +3 -3, hosts +1 -0[, listeners changed][, changed: space router]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "apps +{} -{} ~{}, dynos +{} -{}, hosts +{} -{}",
            self.apps_added,
            self.apps_removed,
            self.apps_changed,
            self.dynos_added,
            self.dynos_removed,
            self.hosts_added,
            self.hosts_removed
        )?;
        if self.listeners_changed {
            f.write_str(", listeners changed")?;
        }
        if !self.sections.is_empty() {
            write!(f, ", changed: {}", self.sections.join(" "))?;
        }
        Ok(())
    }
}

impl Policy {
    /// What changes when `next` replaces `self`. Cost is linear in apps, dynos and ranges;
    /// it runs once per reload, off the hot path.
    pub fn diff(&self, next: &Self) -> PolicyDiff {
        let mut d = PolicyDiff::default();

        let old_apps: std::collections::HashMap<&str, &App> =
            self.apps.iter().map(|a| (a.name.as_str(), &**a)).collect();
        let new_names: HashSet<&str> = next.apps.iter().map(|a| a.name.as_str()).collect();
        for app in &next.apps {
            match old_apps.get(app.name.as_str()) {
                None => d.apps_added += 1,
                Some(old) if !same_app(old, app) => d.apps_changed += 1,
                Some(_) => {}
            }
        }
        d.apps_removed = old_apps.keys().filter(|n| !new_names.contains(*n)).count();

        let (added, removed) = counts(&dyno_keys(self), &dyno_keys(next));
        (d.dynos_added, d.dynos_removed) = (added, removed);
        let (added, removed) = counts(&host_keys(self), &host_keys(next));
        (d.hosts_added, d.hosts_removed) = (added, removed);

        d.listeners_changed = self.listeners() != next.listeners();
        let (a, b) = (&self.router, &next.router);

        let (s, t) = (&self.space, &next.space);
        if s.name != t.name
            || !same_set(&s.internal, &t.internal)
            || !same_set(&s.trusted, &t.trusted)
            || !same_set(&s.blocked, &t.blocked)
        {
            d.sections.push("space");
        }
        if a.balance != b.balance
            || a.zone != b.zone
            || a.proxy_protocol != b.proxy_protocol
            || !same_set(&a.trusted_proxies, &b.trusted_proxies)
            || a.retries != b.retries
            || a.max_connections != b.max_connections
            || a.timeouts != b.timeouts
            || a.health != b.health
        {
            d.sections.push("router");
        }
        let certs = |p: &Self| -> Vec<Vec<u8>> {
            p.tls
                .iter()
                .flat_map(|c| c.key.cert.iter().map(|der| der.as_ref().to_vec()))
                .collect()
        };
        if self.tls.len() != next.tls.len() || certs(self) != certs(next) {
            d.sections.push("tls");
        }
        let (r, q) = (&self.resolver, &next.resolver);
        if r.domain != q.domain || r.ttl != q.ttl || r.upstreams != q.upstreams {
            d.sections.push("resolver");
        }
        let (e, g) = (&self.egress, &next.egress);
        if e.source_ips != g.source_ips
            || !same_set(&e.allow, &g.allow)
            || !same_set(&e.deny, &g.deny)
            || e.ports != g.ports
            || e.max_per_destination != g.max_per_destination
            || e.max_connections != g.max_connections
            || e.default_deny != g.default_deny
            || e.connect_timeout != g.connect_timeout
            || e.idle_timeout != g.idle_timeout
        {
            d.sections.push("egress");
        }
        if self.admin.is_some() != next.admin.is_some() {
            d.sections.push("admin");
        }
        if self.daemon != next.daemon {
            d.sections.push("daemon");
        }
        d
    }
}

/// Same addresses, however they were written.
fn same_set(a: &IpSet, b: &IpSet) -> bool {
    a.v4_ranges().eq(b.v4_ranges()) && a.v6_ranges().eq(b.v6_ranges())
}

fn same_app(a: &App, b: &App) -> bool {
    let trusted_same = match (&a.trusted, &b.trusted) {
        (None, None) => true,
        (Some(x), Some(y)) => same_set(x, y),
        _ => false,
    };
    a.hosts == b.hosts
        && a.routing == b.routing
        && trusted_same
        && a.health_path == b.health_path
        && a.egress_token == b.egress_token
        && a.dynos == b.dynos
}

fn dyno_keys(p: &Policy) -> HashSet<String> {
    p.apps
        .iter()
        .flat_map(|a| {
            a.dynos.iter().map(move |d| {
                format!(
                    "{}\0{}\0{}\0{}\0{}",
                    a.name,
                    d.process,
                    d.number,
                    d.addr,
                    d.zone.as_deref().unwrap_or("")
                )
            })
        })
        .collect()
}

fn host_keys(p: &Policy) -> HashSet<String> {
    p.apps
        .iter()
        .flat_map(|a| a.hosts.iter().map(move |h| format!("{h}\0{}", a.name)))
        .collect()
}

/// `(in new but not old, in old but not new)`.
fn counts(old: &HashSet<String>, new: &HashSet<String>) -> (usize, usize) {
    (new.difference(old).count(), old.difference(new).count())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Source;

    fn policy(text: &str) -> Policy {
        let source = Source {
            name: "t.toml",
            dir: Path::new("."),
            read: &|p| std::fs::read(p),
        };
        crate::parse(text.as_bytes(), &source).unwrap()
    }

    const BASE: &str = r#"
[space]
name = "s"
[router]
listen = ["127.0.0.1:8080"]
[[app]]
name = "a"
hosts = ["a.x", "b.x"]
[[app.dyno]]
addr = "127.0.0.1:5000"
[[app.dyno]]
addr = "127.0.0.1:5001"
[[app]]
name = "b"
hosts = ["c.x"]
"#;

    #[test]
    fn identical_is_empty() {
        let d = policy(BASE).diff(&policy(BASE));
        assert!(d.is_empty(), "{d}");
        assert_eq!(d.to_string(), "apps +0 -0 ~0, dynos +0 -0, hosts +0 -0");
    }

    #[test]
    fn counts_every_kind_of_change() {
        let next = r#"
[space]
name = "s"
trusted = ["10.0.0.0/8"]
[router]
listen = ["127.0.0.1:8081"]
retries = 5
[[app]]
name = "a"
hosts = ["a.x", "d.x"]
[[app.dyno]]
addr = "127.0.0.1:5000"
[[app.dyno]]
addr = "127.0.0.1:5002"
[[app.dyno]]
addr = "127.0.0.1:5003"
[[app]]
name = "c"
hosts = ["c.x"]
"#;
        let d = policy(BASE).diff(&policy(next));
        assert_eq!(
            d.to_string(),
            "apps +1 -1 ~1, dynos +2 -1, hosts +2 -2, listeners changed, changed: space router"
        );
    }

    #[test]
    fn equal_sets_written_differently_are_unchanged() {
        let a = "[space]\nname = \"s\"\ntrusted = [\"10.0.0.0/9\", \"10.128.0.0/9\"]\n";
        let b = "[space]\nname = \"s\"\ntrusted = [\"10.0.0.0/8\"]\n";
        assert!(policy(a).diff(&policy(b)).is_empty());
    }
}
