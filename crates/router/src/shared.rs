//! What every connection and background task of the router shares: the policy store, the
//! runtime state, the counters, the shutdown handle and the `max_connections` budget with
//! the [`Slot`] each connection holds of it.

use std::sync::Arc;

use spaced_config::{DynoBoard, Store};
use spaced_net::{ConnGuard, ConnLimit, Shutdown};

use crate::access::Listener;
use crate::health;
use crate::metrics::Metrics;
use crate::state::{self, Runtime};

/// What every connection and background task of the router shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The live policy.
    pub store: Arc<Store>,
    /// Where health transitions are published for the resolver.
    pub board: Arc<DynoBoard>,
    /// Runtime state apart from the policy.
    pub runtime: Runtime,
    /// Router-wide counters.
    pub metrics: Metrics,
    /// Cancelled to stop accepting; connections then finish gracefully.
    pub shutdown: Shutdown,
    /// `max_connections`, updated on reload.
    pub limit: ConnLimit,
    /// The external listeners' share of it ([`external_share`]).
    pub external_limit: ConnLimit,
    /// Where idle plain connections wait, outside the runtime.
    pub lot: crate::conn::lot::Lot,
}

#[cfg(test)]
impl Shared {
    /// A router's shared state for unit tests: `store`'s policy, a `max_connections` of 10
    /// (9 for the external listeners), a shutdown of its own.
    pub(crate) fn for_tests(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            runtime: Runtime::new(&store),
            metrics: Metrics::new(),
            limit: ConnLimit::new(10),
            external_limit: ConnLimit::new(9),
            shutdown: Shutdown::new(),
            board: Arc::new(DynoBoard::new()),
            lot: Default::default(),
            store,
        })
    }
}

impl Shared {
    /// Quarantines `dyno` after a connect failure: out of the router's picks, and on the
    /// board the resolver reads (BEHAVIOR.md "Precise answers": a quarantined dyno counts as
    /// down for zone decisions too) until the quarantine ends.
    pub(crate) fn quarantine(&self, dyno: &state::DynoRt) {
        dyno.quarantine(self.runtime.now_ms());
        let until = std::time::Instant::now() + health::QUARANTINE;
        if !self.board.quarantine(dyno.addr, until) {
            return; // extended: the task already waiting sees the new deadline
        }
        let board = Arc::clone(&self.board);
        let addr = dyno.addr;
        // Not on the shutdown tracker: a drain must not wait for it.
        tokio::spawn(async move {
            let mut at = until;
            loop {
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                match board.expire(addr, std::time::Instant::now()) {
                    Some(later) => at = later,
                    None => return,
                }
            }
        });
    }
}

/// A connection's hold on `router.max_connections`, given back when it ends: a slot of
/// the whole budget and, on an external listener, one of the external share.
///
/// External listeners (`listen`, `tls_listen`) may hold at most [`external_share`] of
/// the budget, so a flood of outside clients leaves a tenth of it to the internal
/// listeners (dynos calling each other, health probes from inside the space); internal
/// listeners may use all of it. The process never holds more than `max_connections`.
#[derive(Debug)]
pub(crate) struct Slot {
    _all: ConnGuard,
    _external: Option<ConnGuard>,
}

impl Slot {
    /// A slot for a connection on a `which` listener, `None` when its share is used up.
    pub(crate) fn acquire(shared: &Shared, which: Listener) -> Option<Self> {
        let external = match which {
            Listener::External => Some(shared.external_limit.try_acquire()?),
            Listener::Internal => None,
        };
        Some(Self {
            _all: shared.limit.try_acquire()?,
            _external: external,
        })
    }
}

/// How many connections external listeners may hold of `max_connections`: all but a
/// tenth (rounded down), which only internal listeners may use.
pub(crate) fn external_share(max: usize) -> usize {
    max - max / 10
}
