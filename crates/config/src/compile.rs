//! Text → `Raw*` → validated, compiled [`Policy`]. Validation collects every problem before
//! failing, each located at the offending value.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::error::{ConfigError, ErrorKind, Errors};
use crate::policy::*;
use crate::raw::*;
use crate::{IpSet, parse_duration};

/// Where a config text comes from, and how to read the files it names.
pub struct Source<'a> {
    /// The name errors use (the path as the operator gave it).
    pub name: &'a str,
    /// The directory relative paths in the file are resolved against.
    pub dir: &'a Path,
    /// Reads a named file (`trusted_file`, certificates, keys). Tests and fuzzers pass a
    /// closure over an in-memory map; [`load_file`] passes `std::fs::read`.
    pub read: &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
}

/// A policy loaded from disk, with the digest `/config` reports.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled policy.
    pub policy: Policy,
    /// Lowercase hex sha256 of the config file's bytes.
    pub sha256: String,
}

/// Reads, parses, validates and compiles the config file at `path`.
///
/// # Errors
/// Every problem found, each with file, line and column.
pub fn load_file(path: &Path) -> Result<Loaded, Errors> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Errors(vec![ConfigError {
            file: name.clone(),
            line: 1,
            col: 1,
            kind: ErrorKind::Read {
                reason: e.to_string(),
            },
        }])
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let read = |p: &Path| std::fs::read(p);
    let source = Source {
        name: &name,
        dir,
        read: &read,
    };
    let mut policy = parse(&bytes, &source)?;
    policy.files.insert(0, path.to_path_buf());
    Ok(Loaded { policy, sha256 })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parses, validates and compiles config text: a pure function of the bytes and the files
/// `source.read` returns.
///
/// # Errors
/// Every problem found, each with file, line and column.
pub fn parse(bytes: &[u8], source: &Source<'_>) -> Result<Policy, Errors> {
    let mut cx = Cx {
        source,
        text: "",
        errors: Vec::new(),
        files: Vec::new(),
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        cx.push(
            0..0,
            ErrorKind::Toml {
                message: "the file is not valid UTF-8".into(),
            },
        );
        return Err(Errors(cx.errors));
    };
    cx.text = text;
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string();
            cx.push(span, ErrorKind::Toml { message });
            return Err(Errors(cx.errors));
        }
    };
    let policy = cx.compile(raw);
    if cx.errors.is_empty() {
        Ok(policy)
    } else {
        Err(Errors(cx.errors))
    }
}

struct Cx<'a> {
    source: &'a Source<'a>,
    text: &'a str,
    errors: Vec<ConfigError>,
    files: Vec<PathBuf>,
}

impl Cx<'_> {
    fn push(&mut self, span: Range<usize>, kind: ErrorKind) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.source.name.to_string(),
            line,
            col,
            kind,
        });
    }

    fn compile(&mut self, raw: RawConfig) -> Policy {
        let space = self.space(raw.space);
        let router = self.router(raw.router);
        let tls = raw
            .tls
            .iter()
            .filter_map(|t| self.tls(t))
            .collect::<Vec<_>>();
        let resolver = self.resolver(raw.resolver);
        let egress = self.egress(raw.egress);
        let admin = raw
            .admin
            .and_then(|a| self.socket_addr(&a.listen).map(|listen| Admin { listen }));
        let (apps, hosts, dyno_ips) = self.apps(raw.app, &router);
        if !router.tls_listen.is_empty() && tls.is_empty() {
            self.push(0..0, ErrorKind::TlsListenWithoutTls);
        }
        Policy {
            space,
            router,
            tls,
            resolver,
            egress,
            admin,
            apps,
            hosts,
            dyno_ips,
            files: std::mem::take(&mut self.files),
        }
    }

    fn space(&mut self, raw: Option<Spanned<RawSpace>>) -> Space {
        let Some(raw) = raw else {
            self.push(0..0, ErrorKind::MissingSpaceName);
            return empty_space();
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let name = match &raw.name {
            Some(n) => {
                self.name("space", n);
                n.get_ref().clone()
            }
            None => {
                self.push(span, ErrorKind::MissingSpaceName);
                String::new()
            }
        };
        let internal = self.ipset(&raw.internal);
        let mut trusted_nets = match &raw.trusted {
            Some(list) => self.nets(list),
            None => vec![
                IpNet::V4(ipnet::Ipv4Net::default()),
                IpNet::V6(ipnet::Ipv6Net::default()),
            ],
        };
        if let Some(file) = &raw.trusted_file {
            trusted_nets.extend(self.trusted_file(file));
        }
        Space {
            name,
            internal,
            trusted: IpSet::from_nets(trusted_nets),
            blocked: self.ipset(&raw.blocked),
        }
    }

    fn trusted_file(&mut self, file: &Spanned<String>) -> Vec<IpNet> {
        let path = self.source.dir.join(file.get_ref());
        self.files.push(path.clone());
        let bytes = match (self.source.read)(&path) {
            Ok(b) => b,
            Err(e) => {
                self.push(
                    file.span(),
                    ErrorKind::Read {
                        reason: format!("{}: {e}", path.display()),
                    },
                );
                return Vec::new();
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let name = path.display().to_string();
        let mut nets = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let body = line.split('#').next().unwrap_or("");
            let entry = body.trim();
            if entry.is_empty() {
                continue;
            }
            match parse_cidr(entry) {
                Ok(net) => nets.push(net),
                Err(kind) => {
                    let col = line
                        .find(entry)
                        .map_or(1, |c| line[..c].chars().count() + 1);
                    self.errors.push(ConfigError {
                        file: name.clone(),
                        line: i + 1,
                        col,
                        kind,
                    });
                }
            }
        }
        nets
    }

    fn router(&mut self, raw: Option<RawRouter>) -> Router {
        let mut router = Router {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            internal_listen: Vec::new(),
            balance: Balance::LeastRequest,
            zone: None,
            proxy_protocol: false,
            trusted_proxies: IpSet::empty(),
            retries: 2,
            max_connections: 100_000,
            timeouts: Timeouts {
                connect: Duration::from_secs(5),
                response: Duration::from_secs(30),
                idle: Duration::from_secs(55),
                client_header: Duration::from_secs(10),
                keepalive: Duration::from_secs(60),
                pool_idle: Duration::from_secs(90),
            },
            health: None,
        };
        let Some(raw) = raw else { return router };
        router.listen = self.socket_addrs(&raw.listen);
        router.tls_listen = self.socket_addrs(&raw.tls_listen);
        router.internal_listen = self.socket_addrs(&raw.internal_listen);
        if let Some(b) = &raw.balance {
            router.balance = match b.get_ref().as_str() {
                "least-request" => Balance::LeastRequest,
                "round-robin" => Balance::RoundRobin,
                "random" => Balance::Random,
                other => {
                    self.push(
                        b.span(),
                        ErrorKind::Invalid {
                            key: "router.balance",
                            value: other.into(),
                            expected: "\"least-request\", \"round-robin\" or \"random\"",
                        },
                    );
                    Balance::LeastRequest
                }
            };
        }
        router.zone = raw.zone;
        router.proxy_protocol = raw.proxy_protocol;
        router.trusted_proxies = self.ipset(&raw.trusted_proxies);
        if let Some(n) = &raw.retries {
            router.retries = self.int(n, "router.retries", 0, 100) as u32;
        }
        if let Some(n) = &raw.max_connections {
            router.max_connections = self.int(n, "router.max_connections", 1, 10_000_000) as usize;
        }
        if let Some(t) = &raw.timeouts {
            let d = &mut router.timeouts;
            for (slot, value) in [
                (&mut d.connect, &t.connect),
                (&mut d.response, &t.response),
                (&mut d.idle, &t.idle),
                (&mut d.client_header, &t.client_header),
                (&mut d.keepalive, &t.keepalive),
                (&mut d.pool_idle, &t.pool_idle),
            ] {
                if let Some(v) = value {
                    if let Some(parsed) = duration(&mut self.errors, self.source.name, self.text, v)
                    {
                        *slot = parsed;
                    }
                }
            }
        }
        if let Some(h) = &raw.health {
            let mut health = HealthCheck {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                path: None,
                unhealthy_after: 2,
                healthy_after: 2,
            };
            if let Some(v) = &h.interval {
                health.interval = self.duration(v).unwrap_or(health.interval);
            }
            if let Some(v) = &h.timeout {
                health.timeout = self.duration(v).unwrap_or(health.timeout);
            }
            if let Some(p) = &h.path {
                health.path = self.path(p);
            }
            if let Some(n) = &h.unhealthy_after {
                health.unhealthy_after =
                    self.int(n, "router.health.unhealthy_after", 1, 1000) as u32;
            }
            if let Some(n) = &h.healthy_after {
                health.healthy_after = self.int(n, "router.health.healthy_after", 1, 1000) as u32;
            }
            router.health = Some(health);
        }
        router
    }

    fn tls(&mut self, raw: &RawTls) -> Option<TlsCert> {
        let cert_path = self.source.dir.join(raw.cert.get_ref());
        let key_path = self.source.dir.join(raw.key.get_ref());
        self.files.push(cert_path.clone());
        self.files.push(key_path.clone());
        match crate::tls::load(self.source.read, &cert_path, &key_path) {
            Ok((names, key)) => Some(TlsCert {
                names,
                key,
                cert_path,
                key_path,
            }),
            Err((is_key, kind)) => {
                let span = if is_key {
                    raw.key.span()
                } else {
                    raw.cert.span()
                };
                self.push(span, kind);
                None
            }
        }
    }

    fn resolver(&mut self, raw: Option<RawResolver>) -> Resolver {
        let mut resolver = Resolver {
            listen: Vec::new(),
            domain: "app.localspace".into(),
            ttl: Duration::from_secs(5),
            upstreams: Vec::new(),
        };
        let Some(raw) = raw else { return resolver };
        resolver.listen = self.socket_addrs(&raw.listen);
        resolver.upstreams = self.socket_addrs(&raw.upstreams);
        if let Some(d) = &raw.domain {
            let domain = d.get_ref().trim_end_matches('.').to_ascii_lowercase();
            if domain.is_empty() || !valid_host(&domain) {
                self.push(
                    d.span(),
                    ErrorKind::Invalid {
                        key: "resolver.domain",
                        value: d.get_ref().clone(),
                        expected: "a DNS name such as \"app.localspace\"",
                    },
                );
            } else {
                resolver.domain = domain;
            }
        }
        if let Some(t) = &raw.ttl {
            resolver.ttl = self.duration(t).unwrap_or(resolver.ttl);
        }
        resolver
    }

    fn egress(&mut self, raw: Option<RawEgress>) -> Egress {
        let mut egress = Egress {
            listen: Vec::new(),
            socks_listen: Vec::new(),
            transparent_listen: Vec::new(),
            source_ips: Vec::new(),
            allow: IpSet::empty(),
            deny: default_deny(),
            ports: Ports::default(),
            max_per_destination: 50_000,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(350),
        };
        let Some(raw) = raw else { return egress };
        egress.listen = self.socket_addrs(&raw.listen);
        egress.socks_listen = self.socket_addrs(&raw.socks_listen);
        egress.transparent_listen = self.socket_addrs(&raw.transparent_listen);
        for ip in &raw.source_ips {
            match ip.get_ref().parse::<IpAddr>() {
                Ok(a) => egress.source_ips.push(crate::canonical(a)),
                Err(_) => self.push(
                    ip.span(),
                    ErrorKind::BadAddr {
                        text: ip.get_ref().clone(),
                    },
                ),
            }
        }
        let listeners = raw.listen.len() + raw.socks_listen.len() + raw.transparent_listen.len();
        if listeners > 0 && raw.source_ips.is_empty() {
            let span = raw
                .listen
                .first()
                .or(raw.socks_listen.first())
                .or(raw.transparent_listen.first())
                .map_or(0..0, Spanned::span);
            self.push(span, ErrorKind::EgressWithoutSourceIps);
        }
        egress.allow = self.ipset(&raw.allow);
        if let Some(deny) = &raw.deny {
            egress.deny = self.ipset(deny);
        }
        let mut ports = Vec::new();
        for p in &raw.ports {
            let parsed = match p.get_ref() {
                RawPort::Int(n) => u16::try_from(*n).ok().filter(|&n| n > 0),
                RawPort::Text(t) => t.parse::<u16>().ok().filter(|&n| n > 0),
            };
            match parsed {
                Some(n) => ports.push(n),
                None => self.push(
                    p.span(),
                    ErrorKind::Invalid {
                        key: "egress.ports",
                        value: match p.get_ref() {
                            RawPort::Int(n) => n.to_string(),
                            RawPort::Text(t) => t.clone(),
                        },
                        expected: "a port from 1 to 65535",
                    },
                ),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        egress.ports = Ports(ports);
        if let Some(n) = &raw.max_per_destination {
            egress.max_per_destination =
                self.int(n, "egress.max_per_destination", 1, 10_000_000) as u32;
        }
        if let Some(t) = &raw.connect_timeout {
            egress.connect_timeout = self.duration(t).unwrap_or(egress.connect_timeout);
        }
        if let Some(t) = &raw.idle_timeout {
            egress.idle_timeout = self.duration(t).unwrap_or(egress.idle_timeout);
        }
        egress
    }

    fn apps(
        &mut self,
        raw: Vec<RawApp>,
        router: &Router,
    ) -> (Vec<Arc<App>>, HostTable, HashMap<IpAddr, usize>) {
        let mut apps = Vec::with_capacity(raw.len());
        let mut names: HashSet<String> = HashSet::new();
        let mut hosts = HostTable::default();
        let mut dyno_ips = HashMap::new();
        for (index, raw) in raw.into_iter().enumerate() {
            self.name("app", &raw.name);
            let name = raw.name.get_ref().clone();
            if !names.insert(name.clone()) {
                self.push(
                    raw.name.span(),
                    ErrorKind::DuplicateApp { name: name.clone() },
                );
            }
            let routing = match raw.routing.as_ref().map(|r| r.get_ref().as_str()) {
                None | Some("external") => Routing::External,
                Some("internal") => Routing::Internal,
                Some(other) => {
                    let span = raw.routing.as_ref().map_or(0..0, Spanned::span);
                    self.push(
                        span,
                        ErrorKind::Invalid {
                            key: "app.routing",
                            value: other.into(),
                            expected: "\"external\" or \"internal\"",
                        },
                    );
                    Routing::External
                }
            };
            if routing == Routing::Internal && router.internal_listen.is_empty() {
                let span = raw.routing.as_ref().map_or(raw.name.span(), Spanned::span);
                self.push(
                    span,
                    ErrorKind::InternalAppUnreachable { app: name.clone() },
                );
            }
            let mut app_hosts = Vec::new();
            for h in &raw.hosts {
                let host = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
                let (table, key) = match host.strip_prefix("*.") {
                    Some(suffix) => (&mut hosts.wildcard, suffix.to_string()),
                    None => (&mut hosts.exact, host.clone()),
                };
                if !valid_host(&key) {
                    self.push(
                        h.span(),
                        ErrorKind::BadHost {
                            host: h.get_ref().clone(),
                            reason: "expected DNS labels of [a-z0-9-], optionally starting with *.",
                        },
                    );
                    continue;
                }
                if let Some(&first) = table.get(&key) {
                    let first: &Arc<App> = &apps[first];
                    let first = first.name.clone();
                    self.push(h.span(), ErrorKind::DuplicateHost { host, first });
                    continue;
                }
                if app_hosts.contains(&host) {
                    self.push(
                        h.span(),
                        ErrorKind::DuplicateHost {
                            host,
                            first: name.clone(),
                        },
                    );
                    continue;
                }
                table.insert(key, index);
                app_hosts.push(host);
            }
            let trusted = raw.trusted.as_ref().map(|t| self.ipset(t));
            let health_path = raw.health_path.as_ref().and_then(|p| self.path(p));
            let (dynos, web) = self.dynos(&name, &raw.dyno);
            for d in &dynos {
                dyno_ips
                    .entry(crate::canonical(d.addr.ip()))
                    .or_insert(index);
            }
            apps.push(Arc::new(App {
                name,
                hosts: app_hosts,
                routing,
                trusted,
                health_path,
                egress_token: raw.egress_token.map(Spanned::into_inner),
                dynos,
                web,
            }));
        }
        (apps, hosts, dyno_ips)
    }

    fn dynos(&mut self, app: &str, raw: &[RawDyno]) -> (Vec<Dyno>, Vec<usize>) {
        let mut dynos = Vec::with_capacity(raw.len());
        let mut per_process: HashMap<String, u32> = HashMap::new();
        let mut taken: HashSet<(String, u32)> = HashSet::new();
        for d in raw {
            let process = d
                .process
                .as_ref()
                .map_or("web", |p| p.get_ref().as_str())
                .to_string();
            let position = per_process.entry(process.clone()).or_insert(0);
            *position += 1;
            let number = match &d.number {
                Some(n) => self.int(n, "dyno.number", 1, 1_000_000) as u32,
                None => *position,
            };
            if !taken.insert((process.clone(), number)) {
                let span = d.number.as_ref().map_or(d.addr.span(), Spanned::span);
                self.push(
                    span,
                    ErrorKind::DuplicateDynoNumber {
                        app: app.into(),
                        process: process.clone(),
                        number,
                    },
                );
            }
            let Some(addr) = self.socket_addr(&d.addr) else {
                continue;
            };
            dynos.push(Dyno {
                process,
                addr,
                zone: d.zone.clone(),
                number,
            });
        }
        let web = dynos
            .iter()
            .enumerate()
            .filter(|(_, d)| d.process == "web")
            .map(|(i, _)| i)
            .collect();
        (dynos, web)
    }

    fn name(&mut self, what: &'static str, name: &Spanned<String>) {
        let n = name.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 30
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.push(
                name.span(),
                ErrorKind::BadName {
                    what,
                    name: n.clone(),
                },
            );
        }
    }

    fn nets(&mut self, list: &[Spanned<String>]) -> Vec<IpNet> {
        let mut nets = Vec::with_capacity(list.len());
        for item in list {
            match parse_cidr(item.get_ref()) {
                Ok(net) => nets.push(net),
                Err(kind) => self.push(item.span(), kind),
            }
        }
        nets
    }

    fn ipset(&mut self, list: &[Spanned<String>]) -> IpSet {
        let nets = self.nets(list);
        IpSet::from_nets(nets)
    }

    fn socket_addr(&mut self, s: &Spanned<String>) -> Option<SocketAddr> {
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    s.span(),
                    ErrorKind::BadSocketAddr {
                        text: s.get_ref().clone(),
                    },
                );
                None
            }
        }
    }

    fn socket_addrs(&mut self, list: &[Spanned<String>]) -> Vec<SocketAddr> {
        list.iter().filter_map(|s| self.socket_addr(s)).collect()
    }

    fn duration(&mut self, s: &Spanned<String>) -> Option<Duration> {
        duration(&mut self.errors, self.source.name, self.text, s)
    }

    fn path(&mut self, s: &Spanned<String>) -> Option<String> {
        let p = s.get_ref();
        if p.starts_with('/') && !p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            Some(p.clone())
        } else {
            self.push(
                s.span(),
                ErrorKind::Invalid {
                    key: "path",
                    value: p.clone(),
                    expected: "an absolute request path such as \"/health\"",
                },
            );
            None
        }
    }

    fn int(&mut self, n: &Spanned<i64>, key: &'static str, min: i64, max: i64) -> i64 {
        let v = *n.get_ref();
        if (min..=max).contains(&v) {
            v
        } else {
            self.push(
                n.span(),
                ErrorKind::Invalid {
                    key,
                    value: v.to_string(),
                    expected: "a whole number in range",
                },
            );
            min
        }
    }
}

fn duration(
    errors: &mut Vec<ConfigError>,
    file: &str,
    text: &str,
    s: &Spanned<String>,
) -> Option<Duration> {
    let parsed = parse_duration(s.get_ref());
    if parsed.is_none() {
        let (line, col) = line_col(text, s.span().start);
        errors.push(ConfigError {
            file: file.into(),
            line,
            col,
            kind: ErrorKind::BadDuration {
                text: s.get_ref().clone(),
            },
        });
    }
    parsed
}

/// A CIDR, or a bare address as /32 or /128; host bits set is an error.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, ErrorKind> {
    let net = if text.contains('/') {
        text.parse::<IpNet>()
            .map_err(|_| ErrorKind::BadCidr { text: text.into() })?
    } else {
        let ip = text
            .parse::<IpAddr>()
            .map_err(|_| ErrorKind::BadCidr { text: text.into() })?;
        IpNet::from(ip)
    };
    if net.trunc() != net {
        return Err(ErrorKind::HostBitsSet {
            text: text.into(),
            suggestion: net.trunc().to_string(),
        });
    }
    Ok(net)
}

fn valid_host(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn empty_space() -> Space {
    Space {
        name: String::new(),
        internal: IpSet::empty(),
        trusted: IpSet::empty(),
        blocked: IpSet::empty(),
    }
}

/// Loopback, link-local (cloud metadata), this-network, CGNAT, multicast and reserved:
/// what an egress gateway must never be tricked into dialling.
fn default_deny() -> IpSet {
    let nets = [
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "::/128",
        "fe80::/10",
        "ff00::/8",
    ];
    IpSet::from_nets(nets.iter().filter_map(|n| n.parse().ok()))
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}
