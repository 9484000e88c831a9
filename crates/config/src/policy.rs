//! The compiled, immutable policy. Components read these types; nothing here is parsed on a
//! hot path. A new `Policy` is built for every reload and swapped in whole.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::ipset::IpSet;

/// One validated, compiled policy: everything a component needs, nothing it must parse.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `[space]`.
    pub space: Space,
    /// `[router]` (listener lists empty when the section is absent).
    pub router: Router,
    /// `[[tls]]`, in file order; the first is the default certificate.
    pub tls: Vec<TlsCert>,
    /// `[resolver]` (listeners empty when absent).
    pub resolver: Resolver,
    /// `[egress]` (listeners empty when absent).
    pub egress: Egress,
    /// `[admin]`, when present.
    pub admin: Option<Admin>,
    /// `[daemon]` (defaults when absent).
    pub daemon: Daemon,
    /// `[[app]]`, in file order; an app's index here is its id within this policy.
    pub apps: Vec<Arc<App>>,
    /// Host name → app index.
    pub hosts: HostTable,
    /// Dyno IP → index of the app it belongs to (first app wins when shared), so the egress
    /// gateway can tell which app a client is by its address alone.
    pub dyno_ips: HashMap<IpAddr, usize>,
    /// Every file this policy was read from (the config itself first), for the watcher.
    pub files: Vec<PathBuf>,
    /// `[logging]` (defaults when absent).
    pub logging: crate::logging::Logging,
    /// `[[drain]]`: every line of the space goes to each.
    pub drains: Vec<crate::logging::Drain>,
    /// `[fleet]`, when present: the shared part of the policy comes from etcd.
    pub fleet: Option<Fleet>,
}

/// `[fleet]` (OPERATIONS.md "Fleet"): where the shared policy and the dyno registry live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// etcd endpoints (`http://` or `https://` URLs).
    pub etcd: Vec<String>,
    /// Every key of the space lives under it; starts with `/`, no trailing `/`.
    pub prefix: String,
    /// This process's name in the fleet; `None`: the host name.
    pub instance: Option<String>,
    /// TTL of this instance's registration lease.
    pub lease_ttl: Duration,
    /// TLS to etcd: trust anchors (PEM).
    pub ca: Option<PathBuf>,
    /// TLS client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// TLS client key (PEM).
    pub key: Option<PathBuf>,
    /// etcd user, with the password read from `password_file`.
    pub username: Option<String>,
    /// The file holding the etcd password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
}

/// `[space]`.
#[derive(Debug, Clone)]
pub struct Space {
    /// The space's name.
    pub name: String,
    /// Who is inside: may use internal listeners, the resolver and the egress gateway.
    pub internal: IpSet,
    /// Who may reach external apps (L4), `trusted` and `trusted_file` merged.
    pub trusted: IpSet,
    /// Never allowed; wins over `trusted`.
    pub blocked: IpSet,
}

/// `[router]`.
#[derive(Debug, Clone)]
pub struct Router {
    /// External plain-HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// External TLS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Listeners for clients inside the space.
    pub internal_listen: Vec<SocketAddr>,
    /// The balancing policy.
    pub balance: Balance,
    /// This router's zone, when set.
    pub zone: Option<String>,
    /// External connections must start with a PROXY header.
    pub proxy_protocol: bool,
    /// Peers whose PROXY header and X-Forwarded-For are believed.
    pub trusted_proxies: IpSet,
    /// How many other dynos a failed connect is retried on.
    pub retries: u32,
    /// Client connections at once.
    pub max_connections: usize,
    /// `[router.timeouts]`.
    pub timeouts: Timeouts,
    /// `[router.health]`; `None` means passive checks only.
    pub health: Option<HealthCheck>,
}

/// How the router picks among candidate dynos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Power of two choices by in-flight requests.
    LeastRequest,
    /// In turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
}

/// `[router.timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect to a dyno.
    pub connect: Duration,
    /// Request sent → first response byte (H12).
    pub response: Duration,
    /// Rolling idle once the response started (H15/H28).
    pub idle: Duration,
    /// A client must finish its request head within this.
    pub client_header: Duration,
    /// Idle client keep-alive connection.
    pub keepalive: Duration,
    /// Idle pooled connection to a dyno.
    pub pool_idle: Duration,
}

/// `[router.health]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Between checks of one dyno.
    pub interval: Duration,
    /// One check's deadline.
    pub timeout: Duration,
    /// `None`: a TCP connect check; else `GET path`, 2xx/3xx is up.
    pub path: Option<String>,
    /// Consecutive failures that mark a dyno down.
    pub unhealthy_after: u32,
    /// Consecutive successes that mark it up again.
    pub healthy_after: u32,
}

/// One `[[tls]]` entry, loaded and checked (the key matches the certificate).
#[derive(Debug, Clone)]
pub struct TlsCert {
    /// DNS names from the certificate's SANs, lowercase; `*.x` for wildcards.
    pub names: Vec<String>,
    /// The chain and signing key, ready for rustls.
    pub key: Arc<rustls::sign::CertifiedKey>,
    /// Where the chain was read from.
    pub cert_path: PathBuf,
    /// Where the key was read from.
    pub key_path: PathBuf,
}

/// `[resolver]`.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// The zone served from the policy, lowercase, without a trailing dot.
    pub domain: String,
    /// Answer and negative TTL.
    pub ttl: Duration,
    /// Where other names go; empty: REFUSED.
    pub upstreams: Vec<SocketAddr>,
}

/// `[egress]`.
#[derive(Debug, Clone)]
pub struct Egress {
    /// HTTP forward proxy and CONNECT.
    pub listen: Vec<SocketAddr>,
    /// SOCKS5.
    pub socks_listen: Vec<SocketAddr>,
    /// Connections redirected by iptables.
    pub transparent_listen: Vec<SocketAddr>,
    /// The space's stable outbound addresses, in file order.
    pub source_ips: Vec<IpAddr>,
    /// Destinations allowed; empty set means any not denied.
    pub allow: IpSet,
    /// `egress.default_deny`: whether the built-in deny list is part of `deny` (only
    /// `false` in the file turns it off; `spaced check` warns about that).
    pub default_deny: bool,
    /// Destinations never dialled: the file's `deny` plus, unless `default_deny = false`,
    /// the built-in list.
    pub deny: IpSet,
    /// The CIDRs `deny` was built from, in file order, then the built-in list: a refusal names
    /// the rule that matched, not the merged range of `deny`, which can span several rules
    /// (the defaults `224.0.0.0/4` and `240.0.0.0/4` merge into `224.0.0.0/3`).
    pub deny_rules: Vec<IpNet>,
    /// Allowed destination ports.
    pub ports: Ports,
    /// Connections at once per (source IP, destination IP, port).
    pub max_per_destination: u32,
    /// `egress.max_connections` (an addition to CONFIG.md): client connections open at
    /// once over every egress listener; beyond, a new one is closed at accept.
    pub max_connections: usize,
    /// Dial deadline.
    pub connect_timeout: Duration,
    /// A tunnel idle this long in both directions is closed.
    pub idle_timeout: Duration,
}

/// What `spaced check` warns about in `[egress]` (exit status stays 0): the built-in deny
/// list turned off, which opens loopback (the admin API among it) and cloud metadata.
pub fn egress_warning(egress: &Egress) -> Option<&'static str> {
    (!egress.default_deny).then_some(
        "egress.default_deny = false: the built-in deny list (loopback, link-local and cloud metadata, 0.0.0.0/8, 100.64.0.0/10, multicast, reserved, and their IPv6 forms) is off; apps may reach this host's admin API and the cloud metadata service",
    )
}

impl Egress {
    /// The first `deny` rule holding `ip`, as `deny` matches it; only the refusal path
    /// asks, so a scan is fine.
    pub fn deny_rule(&self, ip: IpAddr) -> Option<IpNet> {
        self.deny_rules
            .iter()
            .copied()
            .find(|&net| crate::ipset::net_holds(net, ip))
    }
}

/// Allowed destination ports: empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports(pub Vec<u16>);

impl Ports {
    /// Whether `port` is allowed.
    pub fn allows(&self, port: u16) -> bool {
        self.0.is_empty() || self.0.binary_search(&port).is_ok()
    }
}

/// `[admin]`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Metrics and control.
    pub listen: SocketAddr,
    /// Read-only probe listeners: `GET /healthz`, `/readyz`, `/metrics` only.
    pub probe_listen: Vec<SocketAddr>,
}

/// `[daemon]`: how the process stops, read at start (a reload does not change a stop
/// already under way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// After SIGTERM, how long listeners keep accepting while `/readyz` answers 503.
    pub shutdown_delay: Duration,
    /// Then, how long in-flight work gets before the process exits anyway.
    pub drain_timeout: Duration,
    /// The file the last applied policy is cached in, resolved against the config's
    /// directory; `None` when unset or empty.
    pub cache: Option<PathBuf>,
}

impl Default for Daemon {
    fn default() -> Self {
        Self {
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
            cache: None,
        }
    }
}

/// One `[[app]]`.
#[derive(Debug, Clone)]
pub struct App {
    /// Unique name.
    pub name: String,
    /// Host names as written (lowercase), `*.` wildcards included.
    pub hosts: Vec<String>,
    /// Who may reach it.
    pub routing: Routing,
    /// L7 narrowing of who may reach it.
    pub trusted: Option<IpSet>,
    /// Health-check path overriding `router.health.path`.
    pub health_path: Option<String>,
    /// Egress proxy password (user is the app name).
    pub egress_token: Option<String>,
    /// `drains`: this app's router and egress lines also go to each.
    pub drains: Vec<crate::logging::Drain>,
    /// Every dyno, numbers assigned.
    pub dynos: Vec<Dyno>,
    /// Indices into `dynos` of the `web` process, the only ones routed to.
    pub web: Vec<usize>,
}

impl App {
    /// The `web` dynos, in file order.
    pub fn web_dynos(&self) -> impl ExactSizeIterator<Item = &Dyno> + '_ {
        self.web.iter().map(move |&i| &self.dynos[i])
    }
}

/// Whether an app is reachable from outside the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// From `space.trusted`, on external and internal listeners.
    External,
    /// Only on internal listeners.
    Internal,
}

/// One `[[app.dyno]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dyno {
    /// Process type (`web`, `worker`, …).
    pub process: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its zone, when known.
    pub zone: Option<String>,
    /// Its number within its process, from 1.
    pub number: u32,
}

/// Host name → app index: exact names in a hash map, `*.` wildcards by suffix.
#[derive(Debug, Clone, Default)]
pub struct HostTable {
    /// Lowercase exact names.
    pub exact: HashMap<String, usize>,
    /// Lowercase suffixes of wildcards, without the `*.`.
    pub wildcard: HashMap<String, usize>,
}

impl HostTable {
    /// The app for a Host header or SNI value: port and case ignored, a trailing dot too;
    /// exact names win, then the longest wildcard suffix (a wildcard matches one or more
    /// labels).
    pub fn lookup(&self, host: &str) -> Option<usize> {
        let host = strip_port(host);
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        // Hosts are lowercase in the table; lowercase the input only when needed, on the
        // stack for the usual lengths.
        let mut buf = [0u8; 256];
        let lower: &str = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            if host.len() > buf.len() {
                return None;
            }
            let out = &mut buf[..host.len()];
            out.copy_from_slice(host.as_bytes());
            out.make_ascii_lowercase();
            std::str::from_utf8(out).ok()?
        } else {
            host
        };
        if let Some(&i) = self.exact.get(lower) {
            return Some(i);
        }
        let mut rest = lower;
        while let Some(dot) = rest.find('.') {
            if dot == 0 {
                // An empty label (`.api.test`, `a..api.test`) is no label: the name is
                // invalid, and a wildcard matches one or more labels.
                return None;
            }
            rest = &rest[dot + 1..];
            if let Some(&i) = self.wildcard.get(rest) {
                return Some(i);
            }
        }
        None
    }
}

/// `host:port` → `host`, `[v6]:port` → `v6`, anything else unchanged.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rfind(':') {
        Some(i) if host[..i].find(':').is_none() => &host[..i],
        _ => host,
    }
}

impl Policy {
    /// Every listener address by its config key, the admin one included. They are bound at
    /// start only, so this one list serves the start-up check, the reload warning and the
    /// diff.
    pub fn listeners(&self) -> [(&'static str, &[SocketAddr]); 9] {
        let admin = self
            .admin
            .as_ref()
            .map_or(&[][..], |a| std::slice::from_ref(&a.listen));
        let probe = self.admin.as_ref().map_or(&[][..], |a| &a.probe_listen[..]);
        [
            ("router.listen", &self.router.listen),
            ("router.tls_listen", &self.router.tls_listen),
            ("router.internal_listen", &self.router.internal_listen),
            ("resolver.listen", &self.resolver.listen),
            ("egress.listen", &self.egress.listen),
            ("egress.socks_listen", &self.egress.socks_listen),
            ("egress.transparent_listen", &self.egress.transparent_listen),
            ("admin.listen", admin),
            ("admin.probe_listen", probe),
        ]
    }

    /// The app serving `host`, if any (see [`HostTable::lookup`]).
    pub fn app_for_host(&self, host: &str) -> Option<&Arc<App>> {
        self.hosts.lookup(host).and_then(|i| self.apps.get(i))
    }

    /// The app by name.
    pub fn app(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// How many dynos, over all apps.
    pub fn dyno_count(&self) -> usize {
        self.apps.iter().map(|a| a.dynos.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lookup() {
        let mut t = HostTable::default();
        t.exact.insert("api.example.com".into(), 0);
        t.wildcard.insert("api.example.com".into(), 1);
        t.wildcard.insert("example.com".into(), 2);
        assert_eq!(t.lookup("API.example.com:8080"), Some(0));
        assert_eq!(t.lookup("x.api.example.com"), Some(1));
        assert_eq!(t.lookup("a.b.api.example.com."), Some(1));
        assert_eq!(t.lookup("www.example.com"), Some(2));
        assert_eq!(t.lookup("example.com"), None);
        assert_eq!(t.lookup(""), None);
        assert_eq!(t.lookup(".api.example.com"), None);
        assert_eq!(t.lookup("x..api.example.com"), None);
        assert_eq!(t.lookup("[::1]:80"), None);
    }
}
