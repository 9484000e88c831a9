//! [`Options`]: the resolver's knobs the contract does not expose; a leaf that `server` and
//! the crate root both use.

use std::time::Duration;

/// Knobs the contract does not expose; the defaults are what the daemon runs with.
#[derive(Debug, Clone)]
pub struct Options {
    /// One upstream's deadline (UDP plus a TCP retry), before the next is tried.
    pub upstream_timeout: Duration,
    /// A TCP connection idle this long between queries is closed, and so is one whose
    /// message (length prefix and body) is not whole this long after its first byte: the
    /// deadline is per message, not restarted by each read.
    pub tcp_idle: Duration,
    /// TCP connections from inside the space open at once, over every listener; beyond:
    /// closed at accept. (Outsiders have a separate pool of 16 and one query each.)
    pub max_tcp: usize,
    /// Forwards in flight from UDP clients; beyond: SERVFAIL.
    pub max_forwards: usize,
    /// UDP sockets (`SO_REUSEPORT`, one receive loop each) per listen address (0: one per
    /// two CPUs the process may run on, at least 1, at most 4: fewer loops below saturation
    /// means more queries per wake-up).
    /// The kernel keeps each client flow on one of them.
    pub udp_tasks: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(2),
            tcp_idle: Duration::from_secs(10),
            max_tcp: 1024,
            max_forwards: 1024,
            udp_tasks: 0,
        }
    }
}
