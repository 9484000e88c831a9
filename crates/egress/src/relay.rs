//! Relaying a tunnel's bytes: `spaced_net`'s relays (splice between two TCP sockets, a
//! buffered copy otherwise) with half-close and the idle timeout, plus the per-source
//! byte counters, which are credited when the tunnel ends.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::limits::SourceStats;

/// What a tunnel moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Moved {
    /// Client → destination.
    pub(crate) out: u64,
    /// Destination → client.
    pub(crate) into: u64,
}

/// Relays two TCP sockets until both directions end, one fails, or `idle` passes with
/// nothing moving either way.
pub(crate) async fn relay_tcp(
    client: TcpStream,
    dest: TcpStream,
    idle: Duration,
    stats: &SourceStats,
) -> Moved {
    let (r, err) = spaced_net::relay_tcp_detailed(client, dest, idle).await;
    if let Some(e) = err {
        // A reset by either peer is how many tunnels end: not our failure.
        tracing::debug!(error = %e, "tunnel ended with an error");
    }
    credit(stats, r.a_to_b, r.b_to_a)
}

/// [`relay_tcp`] for a client stream that is not a plain socket (an upgraded HTTP
/// connection).
pub(crate) async fn relay<A>(
    client: A,
    dest: TcpStream,
    idle: Duration,
    stats: &SourceStats,
) -> Moved
where
    A: AsyncRead + AsyncWrite + Unpin,
{
    let (r, err) = spaced_net::relay_detailed(client, dest, idle).await;
    if let Some(e) = err {
        tracing::debug!(error = %e, "tunnel ended with an error");
    }
    credit(stats, r.a_to_b, r.b_to_a)
}

fn credit(stats: &SourceStats, out: u64, into: u64) -> Moved {
    stats.bytes_out.add(out);
    stats.bytes_in.add(into);
    Moved { out, into }
}
