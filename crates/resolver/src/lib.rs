//! spaced-resolver: DNS service discovery for the private space (BEHAVIOR.md "Resolver").
//!
//! It answers, authoritatively and from memory, the names the policy implies under
//! `resolver.domain`: `<process>.<app>.<domain>` (A/AAAA of every dyno of that process,
//! rotated; those held down by the router's health checks left out unless all are),
//! `<n>.<process>.<app>.<domain>`, `_<process>._tcp.<app>.<domain>` (SRV with the targets'
//! addresses as additional records), the `hosts` of internal apps (the router's internal
//! listeners: split horizon), and SOA/NS at the apex. Other names are forwarded to
//! `resolver.upstreams`; clients outside `space.internal` are refused everything.
//!
//! It does not recurse, cache, sign (DNSSEC) or transfer zones. The binary drives it:
//! [`spawn`] binds every `resolver.listen` address (UDP and TCP on one port) and follows
//! policy reloads by recompiling a whole [`Zone`] and swapping it in one step.
//!
//! The per-query path is the pure [`answer`] function over a precompiled [`Zone`]: a
//! lowercase wire name looked up in a hash map, pre-encoded records copied out.
#![forbid(unsafe_code)]

mod answer;
mod bind;
mod error;
mod forward;
mod metrics;
mod options;
mod server;
mod wire;
mod zone;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use spaced_config::{DynoBoard, Store};
use spaced_net::{BindError, Shutdown};
use tokio::sync::Semaphore;

pub use answer::{Forward, Outcome, Reply, Request, Transport, answer};
pub use error::ResolverError;
pub use forward::ForwardError;
/// The wire-format library, re-exported so tests and fuzzers decode with the very version
/// the resolver links.
pub use hickory_proto as proto;
pub use options::Options;
pub use wire::Rcode;
pub use zone::{Skipped, Zone};

use server::Ctx;

/// TCP connections from outside the space at once (each answered REFUSED once, then closed).
const OUTSIDER_TCP: usize = 16;

/// A running resolver.
#[derive(Debug, Clone)]
pub struct Handle {
    /// The bound addresses, one per `resolver.listen` entry; UDP and TCP share the port.
    pub listen: Vec<SocketAddr>,
    ctx: Arc<Ctx>,
}

impl Handle {
    /// Appends the resolver's metrics in Prometheus text.
    pub fn render_metrics(&self, out: &mut String) {
        self.ctx.metrics.render(out);
    }

    /// The zone serving now.
    pub fn zone(&self) -> Arc<Zone> {
        self.ctx.zone.load_full()
    }
}

/// Starts the resolver with default [`Options`]: see [`spawn_with`].
///
/// # Errors
/// When a listen address cannot be bound (UDP, or TCP on the same port).
pub async fn spawn(
    store: Arc<Store>,
    board: Arc<DynoBoard>,
    shutdown: Shutdown,
) -> Result<Handle, ResolverError> {
    spawn_with(store, board, shutdown, Options::default()).await
}

/// Binds every `resolver.listen` address (read now, not on reload) for UDP and TCP on the
/// same port (port 0 picks one free for both), compiles the zone, and serves until
/// `shutdown` is cancelled. The zone follows every policy version the store publishes.
///
/// # Errors
/// When a listen address cannot be bound.
pub async fn spawn_with(
    store: Arc<Store>,
    board: Arc<DynoBoard>,
    shutdown: Shutdown,
    options: Options,
) -> Result<Handle, ResolverError> {
    // Subscribe before reading the policy: a reload landing in between then shows up as a
    // change (and a recompile) instead of being missed.
    let mut versions = store.subscribe();
    let version = *versions.borrow_and_update();
    let policy = store.load_full();
    let udp_tasks = match options.udp_tasks {
        0 => default_udp_tasks(std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    };
    let mut bound = Vec::new();
    for &addr in &policy.resolver.listen {
        bound.push(bind::bind_group(addr, udp_tasks)?);
    }
    let (zone, skipped) = Zone::compile(&policy, version);
    server::log_skipped(&skipped);
    let ctx = Arc::new(Ctx {
        zone: ArcSwap::from_pointee(zone),
        board,
        metrics: metrics::Metrics::default(),
        forwards: Arc::new(Semaphore::new(options.max_forwards)),
        tcp_conns: Arc::new(Semaphore::new(options.max_tcp)),
        tcp_outsiders: Arc::new(Semaphore::new(OUTSIDER_TCP)),
        options,
    });
    let reloader = server::reload(store, versions, ctx.clone(), shutdown.clone());
    shutdown.spawn(reloader);
    let mut listen = Vec::new();
    for (group, tcp, addr) in bound {
        listen.push(addr);
        for (i, udp) in group.into_iter().enumerate() {
            let (ctx, shutdown, rt) = (
                ctx.clone(),
                shutdown.clone(),
                tokio::runtime::Handle::current(),
            );
            std::thread::Builder::new()
                .name(format!("spaced-dns-udp-{i}"))
                .spawn(move || server::serve_udp_thread(udp, ctx, shutdown, rt, i * 7919))
                .map_err(|source| ResolverError::Bind {
                    addr,
                    source: BindError::Bind { addr, source },
                })?;
        }
        shutdown.spawn(server::serve_tcp(tcp, ctx.clone(), shutdown.clone()));
        tracing::info!(server.addr = %addr, "resolver listening (udp+tcp)");
    }
    Ok(Handle { listen, ctx })
}

/// UDP receive loops per listen address when [`Options::udp_tasks`] is 0, for `cpus` CPUs:
/// one per two CPUs, at least 1, at most 4.
///
/// Why not one per CPU: below saturation every loop sleeps between queries, and each wake-up
/// (a context switch, and in a VM an IPI to an idle CPU) costs more than the query's own
/// work. The kernel splits client flows over the loops, so k loops each see 1/k of the
/// queries and take k times fewer per wake-up. Counted on 2 CPUs from 8 client sockets
/// (`benches/load/dns_counts.sh`, crates/resolver/README.md "Below saturation"): one loop
/// spent 2.5–3.0 µs per query at 20,000 q/s where two spent 3.2–3.4. One loop serves well
/// over 200,000 q/s, so a second only pays where there are CPUs to spare for it; on a
/// small machine the rest of the daemon and the kernel's delivery need the other CPU.
fn default_udp_tasks(cpus: usize) -> usize {
    (cpus / 2).clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use super::default_udp_tasks;

    #[test]
    fn udp_loops_one_per_two_cpus_between_one_and_four() {
        let loops: Vec<usize> = [0, 1, 2, 3, 4, 6, 8, 16, 64]
            .into_iter()
            .map(default_udp_tasks)
            .collect();
        assert_eq!(loops, [1, 1, 1, 1, 2, 3, 4, 4, 4]);
    }
}
