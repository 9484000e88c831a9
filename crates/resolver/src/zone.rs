//! The zone compiled from a policy: every name the resolver answers, mapped from its
//! lowercase wire form to records encoded ahead of time, so that a query is one hash lookup
//! and a few copies. A reload compiles a whole new [`Zone`] off to the side and the server
//! swaps it in one step.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use spaced_config::{IpSet, Policy, Routing};

use crate::wire::{self, CLASS_IN, rtype};

/// A compiled zone, immutable; see the crate docs for the names it holds.
#[derive(Debug)]
pub struct Zone {
    /// `resolver.domain` in lowercase wire form.
    pub(crate) apex: Box<[u8]>,
    pub(crate) apex_labels: usize,
    /// Answer and negative TTL, seconds.
    pub(crate) ttl: u32,
    /// SOA serial: the policy version.
    pub(crate) serial: u32,
    /// Lowercase wire name → node.
    pub(crate) names: HashMap<Box<[u8]>, Node>,
    /// `*.x` hosts of internal apps: lowercase wire suffix `x` → node.
    pub(crate) wildcards: HashMap<Box<[u8]>, Node>,
    /// `space.internal`: who may ask.
    pub(crate) internal: IpSet,
    /// `space.blocked`: never answered, even from inside (it wins over `internal`).
    pub(crate) blocked: IpSet,
    /// `resolver.upstreams`.
    pub(crate) upstreams: Arc<[SocketAddr]>,
}

/// What one name holds.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Inside `resolver.domain` (negative answers carry its SOA); internal app hosts may not be.
    pub(crate) in_domain: bool,
    /// The zone apex: SOA and NS.
    pub(crate) apex: bool,
    pub(crate) a: RrSet,
    pub(crate) aaaa: RrSet,
    pub(crate) srv: Vec<Srv>,
    /// `router.internal_listen` has `0.0.0.0` / `[::]`: also answer the address the query
    /// arrived on (the router listens on every address of this host).
    pub(crate) local_v4: bool,
    pub(crate) local_v6: bool,
}

/// Address records of one name, pre-encoded back to back with the owner a pointer to the
/// question (`0xC00C`), so rotating the order is two slice copies.
#[derive(Debug, Default)]
pub(crate) struct RrSet {
    pub(crate) wire: Vec<u8>,
    /// The dynos behind each record (several when they share an IP; none for router
    /// addresses, which are never held down).
    pub(crate) dynos: Vec<Vec<SocketAddr>>,
    pub(crate) ips: Vec<IpAddr>,
}

/// One SRV record and the address record of its target, both pre-encoded.
#[derive(Debug)]
pub(crate) struct Srv {
    pub(crate) dyno: SocketAddr,
    pub(crate) answer: Vec<u8>,
    pub(crate) additional: Vec<u8>,
}

/// Length of an encoded A / AAAA record: pointer, type, class, TTL, length, address.
pub(crate) const A_LEN: usize = 2 + 10 + 4;
pub(crate) const AAAA_LEN: usize = 2 + 10 + 16;

impl RrSet {
    pub(crate) fn len(&self) -> usize {
        self.dynos.len()
    }

    /// Adds `ip` (one record per distinct IP), remembering `dyno` behind it.
    fn add(&mut self, ip: IpAddr, dyno: Option<SocketAddr>, ttl: u32) {
        let i = match self.ips.iter().position(|&x| x == ip) {
            Some(i) => i,
            None => {
                put_addr_rr(&mut self.wire, &[0xc0, 0x0c], ip, ttl);
                self.ips.push(ip);
                self.dynos.push(Vec::new());
                self.dynos.len() - 1
            }
        };
        if let Some(d) = dyno {
            self.dynos[i].push(d);
        }
    }
}

/// Appends an A or AAAA record owned by the (already encoded) `owner`.
pub(crate) fn put_addr_rr(out: &mut Vec<u8>, owner: &[u8], ip: IpAddr, ttl: u32) {
    out.extend_from_slice(owner);
    let (ty, len) = match ip {
        IpAddr::V4(_) => (rtype::A, 4u16),
        IpAddr::V6(_) => (rtype::AAAA, 16),
    };
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

/// Why a name from the policy was left out of the zone (logged once per compile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A process name that is not a DNS label (`[a-z0-9_-]`, 1..=63 bytes).
    Process {
        /// The app.
        app: String,
        /// The process as written.
        process: String,
    },
    /// The whole name would be longer than 255 bytes.
    TooLong {
        /// The name.
        name: String,
    },
}

impl Zone {
    /// Compiles the resolver's view of `policy`; `version` becomes the SOA serial. Names the
    /// policy allows but DNS cannot hold are left out and reported.
    pub fn compile(policy: &Policy, version: u64) -> (Self, Vec<Skipped>) {
        let r = &policy.resolver;
        // The config validated the domain; fall back to the root rather than panic.
        let apex = wire::encode_name(&r.domain).unwrap_or_else(|| vec![0]);
        let ttl = u32::try_from(r.ttl.as_secs()).unwrap_or(u32::MAX);
        let mut b = Builder {
            apex: apex.clone(),
            ttl,
            names: HashMap::new(),
            wildcards: HashMap::new(),
            skipped: Vec::new(),
        };
        b.node(&apex, true).apex = true;
        for app in &policy.apps {
            for d in &app.dynos {
                b.dyno(&app.name, &d.process, d.number, d.addr);
            }
            if app.routing == Routing::Internal {
                for host in &app.hosts {
                    b.host(host, &policy.router.internal_listen);
                }
            }
        }
        let zone = Self {
            apex_labels: wire::label_count(&apex),
            apex: apex.into_boxed_slice(),
            ttl,
            serial: version as u32,
            names: b.names,
            wildcards: b.wildcards,
            internal: policy.space.internal.clone(),
            blocked: policy.space.blocked.clone(),
            upstreams: r.upstreams.clone().into(),
        };
        (zone, b.skipped)
    }

    /// Whether `ip` may use the resolver: in `space.internal` and not in `space.blocked`
    /// (IPv4-mapped folded).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = spaced_config::canonical(ip);
        self.internal.contains(ip) && !self.blocked.contains(ip)
    }

    /// Whether `ip` is in `space.blocked`: such a client gets no answer at all (its
    /// datagrams are dropped, its TCP connections closed at accept), not even the REFUSED
    /// an outsider gets, so a blocked address cannot use the resolver as a reflector.
    pub fn blocks(&self, ip: IpAddr) -> bool {
        self.blocked.contains(spaced_config::canonical(ip))
    }

    /// The upstream servers names outside the zone go to.
    pub fn upstreams(&self) -> &Arc<[SocketAddr]> {
        &self.upstreams
    }

    /// How many names the zone holds (wildcards included).
    pub fn len(&self) -> usize {
        self.names.len() + self.wildcards.len()
    }

    /// Whether the zone holds no name (never: the apex is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Builder {
    apex: Vec<u8>,
    ttl: u32,
    names: HashMap<Box<[u8]>, Node>,
    wildcards: HashMap<Box<[u8]>, Node>,
    skipped: Vec<Skipped>,
}

impl Builder {
    /// The node for `wire`, created with every ancestor down to the apex as an empty
    /// non-terminal (those answer NODATA, not NXDOMAIN: RFC 8020).
    fn node(&mut self, wire: &[u8], in_domain: bool) -> &mut Node {
        if in_domain {
            let mut pos = 0;
            while wire.len() - pos > self.apex.len() {
                pos += 1 + usize::from(wire[pos]);
                self.names
                    .entry(wire[pos..].into())
                    .or_insert_with(|| Node {
                        in_domain: true,
                        ..Node::default()
                    });
            }
        }
        self.names.entry(wire.into()).or_insert_with(|| Node {
            in_domain,
            ..Node::default()
        })
    }

    fn in_domain(&self, wire: &[u8]) -> bool {
        wire.ends_with(&self.apex)
            && (wire.len() == self.apex.len() || {
                // The suffix must start on a label boundary.
                let mut pos = 0;
                while wire.len() - pos > self.apex.len() {
                    pos += 1 + usize::from(wire[pos]);
                }
                wire.len() - pos == self.apex.len()
            })
    }

    fn dyno(&mut self, app: &str, process: &str, number: u32, addr: SocketAddr) {
        let label = process.to_ascii_lowercase();
        let ok = !label.is_empty()
            && label.len() <= 62 // room for the SRV `_`
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            let s = Skipped::Process {
                app: app.into(),
                process: process.into(),
            };
            if !self.skipped.contains(&s) {
                self.skipped.push(s);
            }
            return;
        }
        let mut app_wire = Vec::with_capacity(1 + app.len() + self.apex.len());
        app_wire.push(app.len() as u8);
        app_wire.extend_from_slice(app.as_bytes());
        app_wire.extend_from_slice(&self.apex);
        let n = number.to_string();
        let process_wire = prepend(&[&label], &app_wire);
        let numbered_wire = prepend(&[&n, &label], &app_wire);
        let srv_label = format!("_{label}");
        let srv_wire = prepend(&[&srv_label, "_tcp"], &app_wire);
        for wire in [&process_wire, &numbered_wire, &srv_wire] {
            if wire.len() > wire::MAX_NAME {
                let s = Skipped::TooLong {
                    name: format!("{n}.{label}.{app}"),
                };
                if !self.skipped.contains(&s) {
                    self.skipped.push(s);
                }
                return;
            }
        }
        let (ttl, ip) = (self.ttl, addr.ip());
        add_ip(self.node(&process_wire, true), ip, Some(addr), ttl);
        add_ip(self.node(&numbered_wire, true), ip, Some(addr), ttl);
        // The SRV target `<n>.<process>.<app>.<domain>` shares the question's suffix from
        // the app label on: `_<process>` and `_tcp` precede it.
        let app_offset = wire::HEADER + 1 + srv_label.len() + 1 + 4;
        let mut target = Vec::with_capacity(n.len() + label.len() + 4);
        for l in [n.as_str(), label.as_str()] {
            target.push(l.len() as u8);
            target.extend_from_slice(l.as_bytes());
        }
        wire::put_pointer(&mut target, app_offset);
        let mut answer = Vec::with_capacity(18 + target.len());
        answer.extend_from_slice(&[0xc0, 0x0c]);
        answer.extend_from_slice(&rtype::SRV.to_be_bytes());
        answer.extend_from_slice(&CLASS_IN.to_be_bytes());
        answer.extend_from_slice(&ttl.to_be_bytes());
        answer.extend_from_slice(&(6 + target.len() as u16).to_be_bytes());
        answer.extend_from_slice(&0u16.to_be_bytes()); // priority
        answer.extend_from_slice(&1u16.to_be_bytes()); // weight
        answer.extend_from_slice(&addr.port().to_be_bytes());
        answer.extend_from_slice(&target);
        let mut additional = Vec::with_capacity(target.len() + 26);
        put_addr_rr(&mut additional, &target, ip, ttl);
        self.node(&srv_wire, true).srv.push(Srv {
            dyno: addr,
            answer,
            additional,
        });
    }

    fn host(&mut self, host: &str, routers: &[SocketAddr]) {
        let (wild, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let Some(wire) = wire::encode_name(name) else {
            self.skipped.push(Skipped::TooLong { name: host.into() });
            return;
        };
        let in_domain = self.in_domain(&wire);
        let ttl = self.ttl;
        let node = if wild {
            if in_domain {
                // `x` itself exists as a parent of the names the wildcard covers.
                self.node(&wire, true);
            }
            match self.wildcards.entry(wire.into()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(Node {
                    in_domain,
                    ..Node::default()
                }),
            }
        } else {
            self.node(&wire, in_domain)
        };
        for r in routers {
            match spaced_config::canonical(r.ip()) {
                IpAddr::V4(v4) if v4.is_unspecified() => node.local_v4 = true,
                IpAddr::V6(v6) if v6.is_unspecified() => {
                    // `[::]` is dual-stack (IPV6_V6ONLY off): it takes IPv4 too.
                    node.local_v4 = true;
                    node.local_v6 = true;
                }
                ip => add_ip(node, ip, None, ttl),
            }
        }
    }
}

fn add_ip(node: &mut Node, ip: IpAddr, dyno: Option<SocketAddr>, ttl: u32) {
    match spaced_config::canonical(ip) {
        ip @ IpAddr::V4(_) => node.a.add(ip, dyno, ttl),
        ip @ IpAddr::V6(_) => node.aaaa.add(ip, dyno, ttl),
    }
}

/// `labels` (dotted-free) in front of an encoded suffix.
fn prepend(labels: &[&str], suffix: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(suffix.len() + labels.iter().map(|l| l.len() + 1).sum::<usize>());
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.extend_from_slice(suffix);
    out
}

#[cfg(test)]
#[path = "zone/tests.rs"]
mod tests;
