//! What finishes a dyno's response on its way to the client, on either path: the log line
//! (through the request's [`Exchange`]), the dyno's in-flight slot ([`InFlight`]) and, after
//! a complete exchange, the dyno connection back to its pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::code::Code;
use crate::exchange::{Exchange, Outcome};
use crate::pool::Upstream;
use crate::state::DynoRt;

/// Holds one in-flight slot of a dyno; gives it back when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(pub(crate) Arc<DynoRt>);

impl InFlight {
    /// Takes a slot on `dyno`.
    pub(crate) fn new(dyno: Arc<DynoRt>) -> Self {
        dyno.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(dyno)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What finishes a relayed response.
#[derive(Debug)]
pub(crate) struct RelayEnd {
    /// The request.
    pub exchange: Exchange,
    /// The dyno's slot.
    pub dyno: InFlight,
    /// The connection, driven while the body streams and pooled again after a complete
    /// exchange.
    pub up: Option<Upstream>,
    /// Connection time, ms.
    pub connect_ms: u64,
    /// When the request was handed to the dyno.
    pub sent: Instant,
    /// The response status.
    pub status: u16,
}

impl RelayEnd {
    /// Writes the log line at `now`; after a complete exchange the hyper connection, if
    /// any, goes back to the dyno's pool.
    pub(crate) fn finish(mut self, code: Option<Code>, complete: bool, bytes: u64, now: Instant) {
        self.exchange.conn.relay_ended();
        if let Some(up) = self.up.take()
            && complete
            && !self.dyno.0.removed.load(Ordering::Relaxed)
        {
            self.dyno.0.pool.put(up, now);
        }
        let service_ms = now.saturating_duration_since(self.sent).as_millis() as u64;
        let o = Outcome {
            code,
            status: self.status,
            bytes,
            dyno: Some(&self.dyno.0.label),
            connect_ms: Some(self.connect_ms),
            service_ms: Some(service_ms),
        };
        self.exchange.finish_at(o, now);
    }
}
