//! The pure core: one query's bytes in, one response's bytes (or a decision to forward or
//! drop) out. No sockets, no clock, no allocation beyond growing the caller's buffer: the
//! server, the fuzz target and the benches all call [`answer`].

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::wire::{
    self, CLASS_ANY, CLASS_IN, CLASSIC_UDP, EDNS_SIZE, HEADER, Malformed, Question, Rcode, rtype,
};
use crate::zone::{A_LEN, AAAA_LEN, Node, RrSet, Srv, Zone, put_addr_rr};

/// How the query arrived: it decides the size limit of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// At most 512 bytes, or the client's EDNS0 size (capped at 1232); beyond: TC.
    Udp,
    /// Whole answers (up to the 65535 bytes the length prefix allows).
    Tcp,
}

/// One query and what the server knows around it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The query message.
    pub query: &'a [u8],
    /// Whether the client is in `space.internal` (see [`Zone::allows`]); else REFUSED.
    pub client_in_space: bool,
    /// UDP or TCP.
    pub transport: Transport,
    /// The address the query arrived on, when the listener is bound to a specific one: it
    /// stands in for a `0.0.0.0`/`[::]` router internal listener in split-horizon answers.
    pub local: Option<IpAddr>,
    /// Dyno addresses down (health checks or quarantine: `DynoBoard::down`); `None` if none.
    pub down: Option<&'a HashSet<SocketAddr>>,
    /// Where the rotation of multi-record answers starts (any counter).
    pub rotate: usize,
}

/// What [`answer`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response is in `out`.
    Reply(Reply),
    /// The name is outside the zone and upstreams exist: relay the query.
    Forward(Forward),
    /// Not worth an answer (shorter than a header, or a response): `out` is empty.
    Drop,
}

/// A response written by [`answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The question's type, when the question could be read.
    pub qtype: Option<u16>,
    /// The response code.
    pub rcode: Rcode,
    /// TC was set: the answer did not fit the UDP size.
    pub truncated: bool,
    /// Refused because the client is outside the space.
    pub refused_acl: bool,
}

/// A query to relay upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The client's id, to put back into the relayed answer.
    pub id: u16,
    /// The question's type.
    pub qtype: u16,
    /// Offset of the end of the question in the query.
    pub question_end: usize,
    /// The most the client accepts over UDP (ignored over TCP).
    pub udp_limit: usize,
    /// The query carried an EDNS0 OPT record (so must any answer we write ourselves).
    pub edns: bool,
}

/// Answers one query from `zone` into `out` (cleared first).
pub fn answer(zone: &Zone, req: &Request<'_>, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    let ra = !zone.upstreams.is_empty();
    let q = match wire::parse(req.query) {
        Ok(q) => q,
        Err(Malformed::Drop) => return Outcome::Drop,
        Err(Malformed::Reply { id, flags, rcode }) => {
            let flags = wire::response_flags(flags, false, ra, rcode);
            wire::put_header(out, id, flags, [0; 4]);
            return reply(None, rcode, false);
        }
    };
    let udp_limit = match q.edns {
        Some(e) => usize::from(e.udp_size.min(EDNS_SIZE)).max(CLASSIC_UDP),
        None => CLASSIC_UDP,
    };
    let limit = match req.transport {
        Transport::Udp => udp_limit,
        Transport::Tcp => usize::from(u16::MAX),
    };
    if !req.client_in_space {
        // Refused before anything else is looked at: outsiders learn nothing of the zone.
        let r = bare(zone, &q, req.query, Rcode::Refused, false, out);
        return Outcome::Reply(Reply {
            refused_acl: true,
            ..r
        });
    }
    if q.edns.is_some_and(|e| e.version > 0) {
        return Outcome::Reply(bare(zone, &q, req.query, Rcode::BadVers, false, out));
    }
    let n = q.label_count();
    let in_domain = n >= zone.apex_labels && q.suffix(n - zone.apex_labels) == &*zone.apex;
    let node = zone.names.get(q.name()).or_else(|| {
        if zone.wildcards.is_empty() {
            return None;
        }
        (1..n).find_map(|i| zone.wildcards.get(q.suffix(i)))
    });
    if (in_domain || node.is_some()) && q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
        return Outcome::Reply(bare(zone, &q, req.query, Rcode::Refused, true, out));
    }
    match node {
        Some(node) => authoritative(zone, &q, node, req, limit, out),
        None if in_domain => nxdomain(zone, &q, req.query, limit, out),
        None if ra => Outcome::Forward(Forward {
            id: q.id,
            qtype: q.qtype,
            question_end: q.end,
            udp_limit,
            edns: q.edns.is_some(),
        }),
        None => Outcome::Reply(bare(zone, &q, req.query, Rcode::Refused, false, out)),
    }
}

fn reply(qtype: Option<u16>, rcode: Rcode, truncated: bool) -> Outcome {
    Outcome::Reply(Reply {
        qtype,
        rcode,
        truncated,
        refused_acl: false,
    })
}

/// Header, question, OPT: nothing else.
fn bare(
    zone: &Zone,
    q: &Question,
    query: &[u8],
    rcode: Rcode,
    aa: bool,
    out: &mut Vec<u8>,
) -> Reply {
    let ra = !zone.upstreams.is_empty();
    let ar = u16::from(q.edns.is_some());
    wire::put_header(
        out,
        q.id,
        wire::response_flags(q.flags, aa, ra, rcode),
        [1, 0, 0, ar],
    );
    out.extend_from_slice(&query[HEADER..q.end]);
    if q.edns.is_some() {
        wire::put_opt(out, rcode);
    }
    Reply {
        qtype: Some(q.qtype),
        rcode,
        truncated: false,
        refused_acl: false,
    }
}

/// NXDOMAIN, with the SOA of the domain in authority (RFC 2308 §3).
fn nxdomain(zone: &Zone, q: &Question, query: &[u8], limit: usize, out: &mut Vec<u8>) -> Outcome {
    let ra = !zone.upstreams.is_empty();
    let flags = wire::response_flags(q.flags, true, ra, Rcode::NxDomain);
    wire::put_header(out, q.id, flags, [1, 0, 1, 0]);
    out.extend_from_slice(&query[HEADER..q.end]);
    put_soa(zone, q, out);
    finish(q, q.end, out.len(), Rcode::NxDomain, limit, out)
}

fn authoritative(
    zone: &Zone,
    q: &Question,
    node: &Node,
    req: &Request<'_>,
    limit: usize,
    out: &mut Vec<u8>,
) -> Outcome {
    if matches!(q.qtype, rtype::AXFR | rtype::IXFR) {
        // Zone transfers would hand the whole space's layout to anyone who asks.
        return Outcome::Reply(bare(zone, q, req.query, Rcode::Refused, true, out));
    }
    let ra = !zone.upstreams.is_empty();
    let flags = wire::response_flags(q.flags, true, ra, Rcode::NoError);
    wire::put_header(out, q.id, flags, [1, 0, 0, 0]);
    out.extend_from_slice(&req.query[HEADER..q.end]);
    let question_end = out.len();
    let any = q.qtype == rtype::ANY;
    let mut an = 0usize;
    if q.qtype == rtype::A || any {
        an += put_addrs(&node.a, A_LEN, node.local_v4, false, zone.ttl, req, out);
    }
    if q.qtype == rtype::AAAA || any {
        an += put_addrs(
            &node.aaaa,
            AAAA_LEN,
            node.local_v6,
            true,
            zone.ttl,
            req,
            out,
        );
    }
    if (q.qtype == rtype::SRV || any) && !node.srv.is_empty() {
        for s in srv_order(node, req) {
            out.extend_from_slice(&s.answer);
            an += 1;
        }
    }
    if node.apex && (q.qtype == rtype::SOA || any) {
        put_soa(zone, q, out);
        an += 1;
    }
    if node.apex && (q.qtype == rtype::NS || any) {
        put_ns(zone, q, out);
        an += 1;
    }
    if an == 0 {
        // NODATA: the name exists (maybe only as a parent of others), the type does not.
        out.truncate(question_end);
        if node.in_domain {
            put_soa(zone, q, out);
            wire::set_count(out, 2, 1);
        }
        return finish(q, question_end, out.len(), Rcode::NoError, limit, out);
    }
    wire::set_count(out, 1, u16::try_from(an).unwrap_or(u16::MAX));
    let answer_end = out.len();
    let mut ar = 0u16;
    if q.qtype == rtype::SRV || any {
        // Same order and filter as the answers: one target address per SRV record.
        for s in srv_order(node, req) {
            out.extend_from_slice(&s.additional);
            ar += 1;
        }
    }
    wire::set_count(out, 3, ar);
    finish(q, question_end, answer_end, Rcode::NoError, limit, out)
}

/// Appends the OPT record and applies the size limit: additional records go first (no TC,
/// RFC 2181 §9), then everything after the question goes with TC set.
fn finish(
    q: &Question,
    question_end: usize,
    answer_end: usize,
    rcode: Rcode,
    limit: usize,
    out: &mut Vec<u8>,
) -> Outcome {
    const OPT_LEN: usize = 11;
    let opt = if q.edns.is_some() { OPT_LEN } else { 0 };
    let mut truncated = false;
    if out.len() + opt > limit {
        out.truncate(answer_end);
        wire::set_count(out, 3, 0);
        if out.len() + opt > limit {
            out.truncate(question_end);
            for section in 1..=3 {
                wire::set_count(out, section, 0);
            }
            wire::set_tc(out);
            truncated = true;
        }
    }
    if q.edns.is_some() {
        wire::put_opt(out, rcode);
        let ar = u16::from_be_bytes([out[10], out[11]]);
        wire::set_count(out, 3, ar + 1);
    }
    reply(Some(q.qtype), rcode, truncated)
}

/// Whether the record behind `dynos` has a dyno that is not held down.
fn up(dynos: &[SocketAddr], down: &HashSet<SocketAddr>) -> bool {
    dynos.is_empty() || dynos.iter().any(|d| !down.contains(d))
}

/// Appends the address records of `set`, rotated, skipping those held down unless all
/// are; plus the local address for a wildcard router listener. Returns how many.
fn put_addrs(
    set: &RrSet,
    rec_len: usize,
    local_wild: bool,
    v6: bool,
    ttl: u32,
    req: &Request<'_>,
    out: &mut Vec<u8>,
) -> usize {
    let mut n = 0;
    let len = set.len();
    if len > 0 {
        let start = req.rotate % len;
        let down = req
            .down
            .filter(|d| !d.is_empty())
            .filter(|d| set.dynos.iter().any(|dy| up(dy, d)));
        match down {
            None => {
                out.extend_from_slice(&set.wire[start * rec_len..]);
                out.extend_from_slice(&set.wire[..start * rec_len]);
                n = len;
            }
            Some(d) => {
                for i in (start..len).chain(0..start) {
                    if up(&set.dynos[i], d) {
                        out.extend_from_slice(&set.wire[i * rec_len..(i + 1) * rec_len]);
                        n += 1;
                    }
                }
            }
        }
    }
    if local_wild {
        let local = req
            .local
            .map(spaced_config::canonical)
            .filter(|ip| !ip.is_unspecified() && ip.is_ipv6() == v6 && !set.ips.contains(ip));
        if let Some(ip) = local {
            put_addr_rr(out, &[0xc0, 0x0c], ip, ttl);
            n += 1;
        }
    }
    n
}

/// The SRV records to answer, rotated, those of dynos held down left out unless all are.
fn srv_order<'z>(node: &'z Node, req: &Request<'_>) -> impl Iterator<Item = &'z Srv> {
    let len = node.srv.len();
    let start = if len == 0 { 0 } else { req.rotate % len };
    let down = req
        .down
        .filter(|d| !d.is_empty())
        .filter(|d| node.srv.iter().any(|s| !d.contains(&s.dyno)));
    node.srv[start..]
        .iter()
        .chain(&node.srv[..start])
        .filter(move |s| !down.is_some_and(|d| d.contains(&s.dyno)))
}

/// The SOA of the domain; owner and MNAME point at the domain's labels in the question,
/// so they keep the question's case.
fn put_soa(zone: &Zone, q: &Question, out: &mut Vec<u8>) {
    let apex_at = q.label_offset(q.label_count().saturating_sub(zone.apex_labels));
    wire::put_pointer(out, apex_at);
    out.extend_from_slice(&rtype::SOA.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&zone.ttl.to_be_bytes());
    out.extend_from_slice(&35u16.to_be_bytes());
    wire::put_pointer(out, apex_at);
    out.push(10);
    out.extend_from_slice(b"hostmaster");
    wire::put_pointer(out, apex_at);
    // Serial, refresh, retry, expire, minimum (= the negative TTL, RFC 2308 §4).
    for v in [zone.serial, 3600, 600, 86400, zone.ttl] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// The NS of the domain: the domain itself, as RFC 6303 does for locally served zones.
fn put_ns(zone: &Zone, q: &Question, out: &mut Vec<u8>) {
    let apex_at = q.label_offset(q.label_count().saturating_sub(zone.apex_labels));
    wire::put_pointer(out, apex_at);
    out.extend_from_slice(&rtype::NS.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&zone.ttl.to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    wire::put_pointer(out, apex_at);
}

#[cfg(test)]
#[path = "answer/tests.rs"]
pub(crate) mod tests;
