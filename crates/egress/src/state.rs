//! The gateway's shared runtime state: the policy store, connection counts, per-source
//! statistics and refusal counters, plus their Prometheus and `GET /nat` renderings.

use std::net::IpAddr;
use std::sync::Arc;

use spaced_config::Store;
use spaced_net::metrics::{Counter, header, sample};

use crate::limits::{DestCounts, Sources};

/// Shared by every listener and connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The policy; read once per connection.
    pub(crate) store: Arc<Store>,
    /// Connections per (source, destination).
    pub(crate) dests: Arc<DestCounts>,
    /// Per-source statistics.
    pub(crate) sources: Sources,
    /// Refusals before any dial, by reason.
    pub(crate) refused: Refused,
    /// `egress.max_connections` over every listener; the accept loop sets the cap from
    /// the policy it reads per connection, so a reload applies to the next accept.
    pub(crate) limit: spaced_net::ConnLimit,
}

/// Refusal counters (`spaced_egress_refused_total{reason=…}`).
#[derive(Debug, Default)]
pub(crate) struct Refused {
    pub(crate) outside: Counter,
    pub(crate) auth: Counter,
    pub(crate) denied: Counter,
    pub(crate) bad_request: Counter,
    pub(crate) resolve: Counter,
    pub(crate) no_source: Counter,
    /// Closed at accept: `egress.max_connections` reached.
    pub(crate) over_limit: Counter,
}

impl Refused {
    fn all(&self) -> [(&'static str, &Counter); 7] {
        [
            ("outside", &self.outside),
            ("auth", &self.auth),
            ("denied", &self.denied),
            ("bad_request", &self.bad_request),
            ("resolve", &self.resolve),
            ("no_source", &self.no_source),
            ("over_limit", &self.over_limit),
        ]
    }

    /// The counter for an identity refusal.
    pub(crate) fn identity(&self, r: crate::identity::Refusal) -> &Counter {
        match r {
            crate::identity::Refusal::Outside => &self.outside,
            _ => &self.auth,
        }
    }
}

impl Shared {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        let limit = spaced_net::ConnLimit::new(store.load().egress.max_connections);
        Self {
            store,
            dests: Arc::default(),
            sources: Sources::default(),
            refused: Refused::default(),
            limit,
        }
    }

    /// Every source to report: the current pool first (even unused), then the sources a
    /// reload removed while tunnels from them are still open. Once those end, the source
    /// leaves `/metrics` and `/nat`, as the router drops the series of a removed dyno: a
    /// pool that rotates addresses does not grow the series for ever.
    fn report_sources(&self) -> Vec<(IpAddr, bool)> {
        let policy = self.store.load();
        let pool = &policy.egress.source_ips;
        let mut v: Vec<(IpAddr, bool)> = pool.iter().map(|&ip| (ip, true)).collect();
        for (ip, s) in self.sources.all() {
            if !pool.contains(&ip) && s.active.get() > 0 {
                v.push((ip, false));
            }
        }
        v
    }

    pub(crate) fn render_metrics(&self, out: &mut String) {
        let sources: Vec<_> = self
            .report_sources()
            .into_iter()
            .map(|(ip, _)| (ip, self.sources.get(ip)))
            .collect();
        let name = "spaced_egress_connections_total";
        header(
            out,
            name,
            "counter",
            "Egress dials by source IP and result.",
        );
        for (ip, s) in &sources {
            for (result, c) in [
                ("ok", &s.ok),
                ("connect_failed", &s.connect_failed),
                ("limit", &s.limited),
                ("source_unusable", &s.unusable),
            ] {
                sample(
                    out,
                    name,
                    &format!("source_ip=\"{ip}\",result=\"{result}\""),
                    c.get(),
                );
            }
        }
        let name = "spaced_egress_active_tunnels";
        header(out, name, "gauge", "Egress tunnels open now, by source IP.");
        for (ip, s) in &sources {
            sample(out, name, &format!("source_ip=\"{ip}\""), s.active.get());
        }
        let name = "spaced_egress_bytes_total";
        header(
            out,
            name,
            "counter",
            "Bytes relayed by the egress gateway (out: client to destination).",
        );
        for (ip, s) in &sources {
            sample(
                out,
                name,
                &format!("source_ip=\"{ip}\",direction=\"out\""),
                s.bytes_out.get(),
            );
            sample(
                out,
                name,
                &format!("source_ip=\"{ip}\",direction=\"in\""),
                s.bytes_in.get(),
            );
        }
        let name = "spaced_egress_refused_total";
        header(
            out,
            name,
            "counter",
            "Egress requests refused before any dial, by reason.",
        );
        for (reason, c) in self.refused.all() {
            sample(out, name, &format!("reason=\"{reason}\""), c.get());
        }
    }

    pub(crate) fn nat_json(&self) -> serde_json::Value {
        let sources: Vec<serde_json::Value> = self
            .report_sources()
            .into_iter()
            .map(|(ip, in_pool)| {
                let s = self.sources.get(ip);
                serde_json::json!({
                    "ip": ip.to_string(),
                    "in_pool": in_pool,
                    "active": s.active.get(),
                    "connections": s.ok.get(),
                    "connect_failed": s.connect_failed.get(),
                    "limited": s.limited.get(),
                    "unusable": s.unusable.get(),
                    "bytes_out": s.bytes_out.get(),
                    "bytes_in": s.bytes_in.get(),
                })
            })
            .collect();
        serde_json::json!({ "state": "enabled", "sources": sources })
    }
}
