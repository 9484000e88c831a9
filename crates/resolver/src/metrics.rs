//! The resolver's counters, rendered in Prometheus text by the admin listener.

use spaced_net::metrics::{self, Counter, Histogram};

use crate::wire::{Rcode, rtype};

/// Type labels, by index; the last two catch the rest and the unreadable.
const TYPES: [&str; 13] = [
    "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "HTTPS", "ANY", "other", "none",
];

/// Every counter of one resolver.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    queries: [[Counter; Rcode::ALL.len()]; TYPES.len()],
    /// Queries from outside `space.internal`.
    pub(crate) refused_acl: Counter,
    /// Messages and TCP connections from `space.blocked`, dropped unanswered.
    pub(crate) blocked: Counter,
    /// UDP answers sent with TC.
    pub(crate) truncated: Counter,
    /// Messages dropped without an answer (no header, or a response).
    pub(crate) dropped: Counter,
    /// Forwarded queries by result.
    pub(crate) forwarded_ok: Counter,
    pub(crate) forwarded_failed: Counter,
    /// Forwards refused because too many were in flight.
    pub(crate) forwarded_overload: Counter,
    /// Upstream round trips.
    pub(crate) upstream_latency: Histogram,
    /// TCP connections accepted, and closed at once for being beyond the cap.
    pub(crate) tcp_accepted: Counter,
    pub(crate) tcp_rejected: Counter,
}

fn type_index(qtype: Option<u16>) -> usize {
    match qtype {
        None => 12,
        Some(rtype::A) => 0,
        Some(rtype::NS) => 1,
        Some(5) => 2,
        Some(rtype::SOA) => 3,
        Some(12) => 4,
        Some(15) => 5,
        Some(16) => 6,
        Some(rtype::AAAA) => 7,
        Some(rtype::SRV) => 8,
        Some(65) => 9,
        Some(rtype::ANY) => 10,
        Some(_) => 11,
    }
}

impl Metrics {
    /// Counts one answered query.
    #[inline]
    pub(crate) fn query(&self, qtype: Option<u16>, rcode: Rcode) {
        let r = Rcode::ALL.iter().position(|&x| x == rcode).unwrap_or(0);
        self.queries[type_index(qtype)][r].inc();
    }

    /// Appends the Prometheus text.
    pub(crate) fn render(&self, out: &mut String) {
        let q = "spaced_dns_queries_total";
        metrics::header(
            out,
            q,
            "counter",
            "DNS queries answered, by type and rcode.",
        );
        for (t, row) in TYPES.iter().zip(&self.queries) {
            for (r, c) in Rcode::ALL.iter().zip(row) {
                let v = c.get();
                // Only series seen so far: 91 mostly-zero lines would drown the page.
                if v > 0 || (*t == "A" && *r == Rcode::NoError) {
                    let labels = format!("type=\"{t}\",rcode=\"{}\"", r.name());
                    metrics::sample(out, q, &labels, v);
                }
            }
        }
        let simple: [(&str, &str, &Counter); 6] = [
            (
                "spaced_dns_refused_acl_total",
                "DNS queries refused: client outside space.internal.",
                &self.refused_acl,
            ),
            (
                "spaced_dns_blocked_total",
                "DNS datagrams and TCP connections from space.blocked, dropped unanswered.",
                &self.blocked,
            ),
            (
                "spaced_dns_truncated_total",
                "DNS answers sent over UDP with TC set.",
                &self.truncated,
            ),
            (
                "spaced_dns_dropped_total",
                "DNS messages dropped unanswered (no header, or a response).",
                &self.dropped,
            ),
            (
                "spaced_dns_tcp_connections_total",
                "DNS TCP connections accepted.",
                &self.tcp_accepted,
            ),
            (
                "spaced_dns_tcp_rejected_total",
                "DNS TCP connections closed at once: too many open.",
                &self.tcp_rejected,
            ),
        ];
        for (name, help, c) in simple {
            metrics::header(out, name, "counter", help);
            metrics::sample(out, name, "", c.get());
        }
        let f = "spaced_dns_forwarded_total";
        metrics::header(
            out,
            f,
            "counter",
            "DNS queries forwarded upstream, by result.",
        );
        metrics::sample(out, f, "result=\"ok\"", self.forwarded_ok.get());
        metrics::sample(out, f, "result=\"failed\"", self.forwarded_failed.get());
        metrics::sample(out, f, "result=\"overload\"", self.forwarded_overload.get());
        let h = "spaced_dns_upstream_latency_seconds";
        metrics::header(out, h, "histogram", "Round trip of forwarded DNS queries.");
        self.upstream_latency.render(out, h, "");
    }
}
