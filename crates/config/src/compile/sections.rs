//! `[space]`, `[router]`, `[[tls]]`, `[resolver]` and `[egress]`: defaults, then the file's
//! values, each checked where it is written.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::{Cx, parse_cidr, valid_host};
use crate::error::ErrorKind;
use crate::ipset::IpSet;
use crate::policy::{
    Balance, Egress, HealthCheck, Ports, Resolver, Router, Space, Timeouts, TlsCert,
};
use crate::raw::{RawEgress, RawPort, RawResolver, RawRouter, RawSpace, RawTls, items};

impl Cx<'_> {
    pub(super) fn space(&mut self, raw: Option<Spanned<RawSpace>>) -> Space {
        let Some(raw) = raw else {
            // No `[space]` at all: there is nothing to point at but the file's start.
            self.push(0..0, ErrorKind::MissingSpaceName);
            return Space {
                name: String::new(),
                internal: IpSet::empty(),
                trusted: IpSet::empty(),
                blocked: IpSet::empty(),
            };
        };
        // The span of a header table starts at its `[space]` line.
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
            // A new space trusts everyone. Saying anything about trust (`trusted` or
            // `trusted_file`) replaces that default: otherwise a file-only allowlist
            // would be added to "everyone" and narrow nothing.
            None if raw.trusted_file.is_none() => vec![
                IpNet::V4(ipnet::Ipv4Net::default()),
                IpNet::V6(ipnet::Ipv6Net::default()),
            ],
            None => Vec::new(),
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

    /// One CIDR a line; blank lines and `#` comments (whole-line or trailing) ignored.
    /// Errors in it are located in that file, not in the config.
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
                    // `entry` is `body` trimmed, and `body` a prefix of `line`.
                    let offset = body.len() - body.trim_start().len();
                    let col = line.get(..offset).map_or(1, |p| p.chars().count() + 1);
                    self.push_at(&name, i + 1, col, kind);
                }
            }
        }
        nets
    }

    pub(super) fn router(&mut self, raw: Option<RawRouter>) -> Router {
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
        router.listen = self.listeners("router.listen", &raw.listen);
        router.tls_listen = self.listeners("router.tls_listen", items(&raw.tls_listen));
        router.internal_listen = self.listeners("router.internal_listen", &raw.internal_listen);
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
        router.zone = raw.zone.as_ref().and_then(|z| self.zone("router.zone", z));
        router.proxy_protocol = raw.proxy_protocol;
        router.trusted_proxies = self.ipset(&raw.trusted_proxies);
        if let Some(n) = &raw.retries {
            let v = self.int(n, "router.retries", 0, 100, "a whole number from 0 to 100");
            router.retries = v.map_or(router.retries, |v| v as u32);
        }
        if let Some(n) = &raw.max_connections {
            let v = self.int(
                n,
                "router.max_connections",
                1,
                10_000_000,
                "a whole number from 1 to 10000000",
            );
            router.max_connections = v.map_or(router.max_connections, |v| v as usize);
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
                if let Some(parsed) = value.as_ref().and_then(|v| self.duration(v, true)) {
                    *slot = parsed;
                }
            }
        }
        if let Some(h) = &raw.health {
            router.health = Some(self.health(h));
        }
        router
    }

    fn health(&mut self, h: &crate::raw::RawHealth) -> HealthCheck {
        let mut health = HealthCheck {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            path: None,
            unhealthy_after: 2,
            healthy_after: 2,
        };
        if let Some(v) = h.interval.as_ref().and_then(|v| self.duration(v, true)) {
            health.interval = v;
        }
        if let Some(v) = h.timeout.as_ref().and_then(|v| self.duration(v, true)) {
            health.timeout = v;
        }
        if let Some(p) = &h.path {
            health.path = self.path(p);
        }
        let range = "a whole number from 1 to 1000";
        if let Some(n) = &h.unhealthy_after {
            let v = self.int(n, "router.health.unhealthy_after", 1, 1000, range);
            health.unhealthy_after = v.map_or(health.unhealthy_after, |v| v as u32);
        }
        if let Some(n) = &h.healthy_after {
            let v = self.int(n, "router.health.healthy_after", 1, 1000, range);
            health.healthy_after = v.map_or(health.healthy_after, |v| v as u32);
        }
        health
    }

    pub(super) fn tls(&mut self, raw: &RawTls) -> Option<TlsCert> {
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
            Err((culprit, kind)) => {
                let span = match culprit {
                    crate::tls::Culprit::Key => raw.key.span(),
                    crate::tls::Culprit::Cert => raw.cert.span(),
                };
                self.push(span, kind);
                None
            }
        }
    }

    pub(super) fn resolver(&mut self, raw: Option<RawResolver>) -> Resolver {
        let mut resolver = Resolver {
            listen: Vec::new(),
            domain: "app.localspace".into(),
            ttl: Duration::from_secs(5),
            upstreams: Vec::new(),
        };
        let Some(raw) = raw else { return resolver };
        resolver.listen = self.listeners("resolver.listen", &raw.listen);
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
        // A zero TTL is legal DNS ("do not cache").
        if let Some(t) = raw.ttl.as_ref().and_then(|t| self.duration(t, false)) {
            resolver.ttl = t;
        }
        resolver
    }

    pub(super) fn egress(&mut self, raw: Option<RawEgress>) -> Egress {
        let mut egress = Egress {
            listen: Vec::new(),
            socks_listen: Vec::new(),
            transparent_listen: Vec::new(),
            source_ips: Vec::new(),
            allow: IpSet::empty(),
            default_deny: true,
            deny: IpSet::from_nets(builtin_deny()),
            deny_rules: builtin_deny(),
            ports: Ports::default(),
            max_per_destination: 50_000,
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(350),
        };
        let Some(raw) = raw else { return egress };
        egress.listen = self.listeners("egress.listen", items(&raw.listen));
        egress.socks_listen = self.listeners("egress.socks_listen", items(&raw.socks_listen));
        egress.transparent_listen =
            self.listeners("egress.transparent_listen", items(&raw.transparent_listen));
        for ip in &raw.source_ips {
            match ip.get_ref().parse::<IpAddr>() {
                Ok(a) => egress.source_ips.push(crate::ipset::canonical(a)),
                Err(_) => self.push(
                    ip.span(),
                    ErrorKind::BadAddr {
                        text: ip.get_ref().clone(),
                    },
                ),
            }
        }
        // Without a stable source address the space's outbound identity is whatever the
        // kernel picks, which is what the gateway exists to prevent.
        if raw.source_ips.is_empty() {
            let first_listener = [&raw.listen, &raw.socks_listen, &raw.transparent_listen]
                .into_iter()
                .flatten()
                .find(|l| !l.get_ref().is_empty());
            if let Some(list) = first_listener {
                self.push(list.span(), ErrorKind::EgressWithoutSourceIps);
            }
        }
        egress.allow = self.ipset(&raw.allow);
        // `deny` is added to the built-in list, never replacing it (CONFIG.md, second
        // revision): a copied example with its own `deny` once opened loopback, the admin
        // API included. Only `default_deny = false` turns the built-in list off. The file's
        // rules come first so that a refusal names the rule the operator wrote.
        egress.default_deny = raw.default_deny.unwrap_or(true);
        let mut rules = raw.deny.as_ref().map(|d| self.nets(d)).unwrap_or_default();
        if egress.default_deny {
            rules.extend(builtin_deny());
        }
        egress.deny = IpSet::from_nets(rules.iter().copied());
        egress.deny_rules = rules;
        egress.ports = self.ports(&raw.ports);
        if let Some(n) = &raw.max_per_destination {
            let v = self.int(
                n,
                "egress.max_per_destination",
                1,
                10_000_000,
                "a whole number from 1 to 10000000",
            );
            egress.max_per_destination = v.map_or(egress.max_per_destination, |v| v as u32);
        }
        if let Some(n) = &raw.max_connections {
            let v = self.int(
                n,
                "egress.max_connections",
                1,
                10_000_000,
                "a whole number from 1 to 10000000",
            );
            egress.max_connections = v.map_or(egress.max_connections, |v| v as usize);
        }
        if let Some(t) = raw
            .connect_timeout
            .as_ref()
            .and_then(|t| self.duration(t, true))
        {
            egress.connect_timeout = t;
        }
        if let Some(t) = raw
            .idle_timeout
            .as_ref()
            .and_then(|t| self.duration(t, true))
        {
            egress.idle_timeout = t;
        }
        egress
    }

    fn ports(&mut self, raw: &[Spanned<RawPort>]) -> Ports {
        let mut ports = Vec::with_capacity(raw.len());
        for p in raw {
            let parsed = match p.get_ref() {
                RawPort::Int(n) => u16::try_from(*n).ok(),
                RawPort::Text(t) => t.parse::<u16>().ok(),
            };
            match parsed.filter(|&n| n > 0) {
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
        Ports(ports)
    }
}

/// The built-in deny list (`egress.default_deny`): loopback, link-local (cloud metadata),
/// this-network, CGNAT, multicast and reserved: what an egress gateway must never be
/// tricked into dialling. The IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64
/// `64:ff9b::/96`, 6to4) are not listed one by one: the egress matches IPv4 rules against
/// the embedded address too (`spaced_config::embedded_v4`), so the metadata address through
/// NAT64 falls under `169.254.0.0/16`. Listed whole are the IPv6 ranges no public
/// destination lives in: IPv4-compatible `::/96` (deprecated, RFC 4291), SIIT
/// `::ffff:0:0:0/96`, local-use NAT64 `64:ff9b:1::/48` (RFC 8215, not global), discard
/// `100::/64`, deprecated site-local `fec0::/10`.
fn builtin_deny() -> Vec<IpNet> {
    let nets = [
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "::/128",
        "::/96",
        "::ffff:0:0:0/96",
        "64:ff9b:1::/48",
        "100::/64",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ];
    nets.iter().filter_map(|n| n.parse().ok()).collect()
}
