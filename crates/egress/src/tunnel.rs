//! One tunnel, from its dial to its log line, the same for every protocol: the dial (a
//! failure counted and logged as a refusal), the relay of a TCP tunnel, and the tunnel
//! record, written once when it ends. The protocols decide what to answer their client;
//! what a tunnel did is written here only, so every line has the same fields and meaning.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use spaced_config::Policy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::address::{Address, address_text};
use crate::dial::{self, DialError, Lease, Upstream};
use crate::identity::Client;
use crate::logline::{Proto, TunnelRecord, refusal_line};
use crate::relay::{self, Moved};
use crate::state::Shared;

/// A tunnel of a known client.
#[derive(Debug)]
pub(crate) struct Tunnel {
    client: Client,
    /// The client's address.
    peer: IpAddr,
    proto: Proto,
    /// When the dial began: a tunnel's `duration` runs from its dial to its close.
    start: Instant,
}

impl Tunnel {
    /// Starts the tunnel's clock.
    pub(crate) fn start(client: Client, peer: IpAddr, proto: Proto) -> Self {
        Self {
            client,
            peer,
            proto,
            start: Instant::now(),
        }
    }

    /// Resolves, vets and connects to `addr` from the client's pinned source; a failure is
    /// counted and logged before the caller answers its client.
    pub(crate) async fn dial(
        &self,
        shared: &Shared,
        policy: &Policy,
        addr: &Address,
    ) -> Result<Upstream, DialError> {
        let up = dial::dial(shared, policy, self.client.pin_key(), addr).await;
        if let Err(e) = &up {
            self.dial_failed(shared, addr, e);
        }
        up
    }

    /// Relays a TCP tunnel whose client has had its answer: `early` (bytes the client sent
    /// right behind its request: a TLS ClientHello, an optimistic client's data) goes
    /// first, then bytes both ways until the tunnel ends; then its line.
    pub(crate) async fn relay_tcp(
        self,
        client: TcpStream,
        up: Upstream,
        early: &[u8],
        idle: Duration,
    ) {
        let Upstream {
            stream: mut dest,
            lease,
        } = up;
        if !early.is_empty() && dest.write_all(early).await.is_err() {
            return;
        }
        let early = early.len() as u64;
        lease.stats.bytes_out.add(early);
        let moved = relay::relay_tcp(client, dest, idle, &lease.stats).await;
        let moved = Moved {
            out: moved.out + early,
            into: moved.into,
        };
        self.finish(&lease, moved);
    }

    /// Writes the line of a tunnel that went through `lease`.
    pub(crate) fn finish(&self, lease: &Lease, moved: Moved) {
        self.record(lease.source, Some(lease.dest), moved);
    }

    /// Writes one tunnel line: `dest` is `None` for a UDP association that sent nothing
    /// (an association writes a line per destination it sent to).
    pub(crate) fn record(&self, egress_ip: IpAddr, dest: Option<SocketAddr>, moved: Moved) {
        let record = TunnelRecord {
            app: self.client.app_name(),
            client: self.peer,
            egress_ip,
            dest,
            proto: self.proto,
            bytes_out: moved.out,
            bytes_in: moved.into,
            duration: self.start.elapsed(),
        };
        tracing::info!(target: "egress", "{}", record.line());
    }

    /// Logs a refusal of this tunnel's client (`dest` as the client asked, `rule` empty
    /// unless the destination policy refused).
    pub(crate) fn refused(&self, dest: &str, reason: &str, rule: &str) {
        let line = refusal_line(
            self.client.app_name(),
            self.peer,
            dest,
            self.proto,
            reason,
            rule,
        );
        tracing::warn!(target: "egress", "{line}");
    }

    /// Counts and logs a failed dial.
    fn dial_failed(&self, shared: &Shared, dest: &Address, e: &DialError) {
        let (reason, rule) = match e {
            DialError::Denied(d) => {
                shared.refused.denied.inc();
                ("denied", d.rule())
            }
            DialError::Resolve { .. } => {
                shared.refused.resolve.inc();
                ("resolve", String::new())
            }
            DialError::NoSource { .. } => {
                shared.refused.no_source.inc();
                ("no_source", String::new())
            }
            DialError::Limit { .. } => ("limit", String::new()),
            DialError::Connect { .. } => ("connect_failed", String::new()),
        };
        self.refused(&address_text(dest), reason, &rule);
        tracing::debug!(error = %e, "dial failed");
    }
}
