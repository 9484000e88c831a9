//! The router-wide counters: updated with one relaxed atomic add on the hot path, rendered
//! with the current view by [`crate::report`].

use spaced_net::metrics::{Counter, Gauge};

use crate::state::AppStats;

/// Router-wide metrics (per-app counters live in [`AppStats`]).
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Requests being served.
    pub in_flight: Gauge,
    /// Connections closed at L4 (untrusted, blocked, not internal, bad PROXY header).
    pub l4_denied: Counter,
    /// Requests refused by an app's `trusted` ranges (S10).
    pub l7_denied_s10: Counter,
    /// Requests for no app on their listener (S11).
    pub l7_denied_s11: Counter,
    /// Connections closed because `max_connections` were open.
    pub over_limit: Counter,
    /// Counters of requests that reached no app (S11, malformed).
    pub unrouted: AppStats,
    /// Active-check transitions (up or down).
    pub health_transitions: Counter,
    /// Connections closed because the client took no bytes of a response for `idle`.
    pub client_not_reading: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: Gauge::new(),
            l4_denied: Counter::new(),
            l7_denied_s10: Counter::new(),
            l7_denied_s11: Counter::new(),
            over_limit: Counter::new(),
            unrouted: AppStats::new(""),
            health_transitions: Counter::new(),
            client_not_reading: Counter::new(),
        }
    }
}
