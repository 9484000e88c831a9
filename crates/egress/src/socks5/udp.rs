//! SOCKS5 UDP ASSOCIATE: a relay socket for the client's datagrams, and outbound sockets
//! bound to the client's pinned source IP (one per address family, made on first use).
//!
//! Only the client that asked (its address, and its announced port if it gave one; else the
//! first port it sends from) may use the relay; only destinations it has sent to may answer
//! through it, so the outbound socket is never an open door into the client. The
//! association ends with its TCP control connection or after `idle_timeout` of silence.
//!
//! Each destination an association sends to is a flow that holds one `max_per_destination`
//! slot of (source IP, destination IP, port) until the association ends, like a TCP
//! tunnel: otherwise UDP would be a way around the limit. A datagram to a destination
//! whose slots are all taken is dropped (counted and logged once per destination). When
//! the association ends, each flow gets its own tunnel line (its destination, source and
//! bytes), so bytes sent to one destination are never logged against another.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use spaced_config::{Policy, canonical};
use spaced_net::canonical_addr;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

use super::wire::{self as socks5, Reply};
use crate::address::{Address, address_text};
use crate::dial;
use crate::identity::Client;
use crate::limits::{ActiveGuard, DestGuard, SourceStats};
use crate::logline::Proto;
use crate::pin;
use crate::relay::Moved;
use crate::state::Shared;
use crate::tunnel::Tunnel;
use crate::vet;

/// Bounds on per-association memory.
const MAX_PEERS: usize = 4096;
const MAX_NAMES: usize = 64;
const DATAGRAM: usize = 65_536;

/// An outbound socket and the source address it is bound to.
struct Out {
    socket: UdpSocket,
    source: IpAddr,
    stats: Arc<SourceStats>,
    _active: ActiveGuard,
}

/// The relay socket of an association, on the address the client reached, and the
/// address to announce. `Err(Some(code))`: answer the client `code`; `Err(None)`: the
/// control connection is gone, nothing to answer.
pub(super) fn bind_relay(control: &TcpStream) -> Result<(UdpSocket, SocketAddr), Option<Reply>> {
    let local_ip = control.local_addr().map_err(|_| None)?.ip();
    let relay = spaced_net::udp_socket(SocketAddr::new(local_ip, 0))
        .map_err(|_| Some(Reply::GeneralFailure))?;
    let bound = relay.local_addr().map_err(|_| None)?;
    Ok((relay, canonical_addr(bound)))
}

/// Serves an association whose client has been answered (with the address of `relay`),
/// until its control connection closes or `idle_timeout` of silence.
pub(super) async fn associate(
    shared: &Shared,
    policy: &Policy,
    mut control: TcpStream,
    relay: UdpSocket,
    peer: SocketAddr,
    client: Client,
    requested: Address,
) {
    let announced = match requested {
        Address::Ip(sa) if sa.port() != 0 => Some(sa.port()),
        _ => None,
    };
    let order = pin::order(client.pin_key(), &policy.egress.source_ips);
    let idle = policy.egress.idle_timeout;
    let tunnel = Tunnel::start(client, peer.ip(), Proto::Socks5Udp);
    let (mut out4, mut out6): (Option<Out>, Option<Out>) = (None, None);
    let mut client_udp: Option<SocketAddr> = None;
    let mut flows = Flows::default();
    let mut names: HashMap<String, Vec<SocketAddr>> = HashMap::new();
    let mut cbuf = vec![0u8; DATAGRAM];
    let mut buf4 = vec![0u8; DATAGRAM];
    let mut buf6 = vec![0u8; DATAGRAM];
    let mut ctl = [0u8; 64];
    loop {
        tokio::select! {
            r = control.read(&mut ctl) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
            r = relay.recv_from(&mut cbuf) => {
                let Ok((n, from)) = r else { continue };
                let from = canonical_addr(from);
                if from.ip() != peer.ip() || announced.is_some_and(|p| p != from.port()) {
                    continue;
                }
                match client_udp {
                    Some(c) if c != from => continue,
                    _ => client_udp = Some(from),
                }
                let Ok((addr, payload)) = socks5::parse_udp(&cbuf[..n]) else { continue };
                let Some(dest) = vetted(shared, policy, &tunnel, &addr, &mut names).await else { continue };
                let slot = if dest.is_ipv4() { &mut out4 } else { &mut out6 };
                if slot.is_none() {
                    *slot = bind_out(shared, &order, dest);
                }
                let Some(out) = slot.as_ref() else { continue };
                if !flows.admit(shared, policy, &tunnel, out, dest) {
                    continue;
                }
                if out.socket.send_to(payload, dest).await.is_ok() {
                    flows.sent(dest, payload.len() as u64);
                    out.stats.bytes_out.add(payload.len() as u64);
                }
            },
            r = recv(&out4, &mut buf4) => {
                back(&relay, &out4, r, &buf4, &mut flows, client_udp).await;
            },
            r = recv(&out6, &mut buf6) => {
                back(&relay, &out6, r, &buf6, &mut flows, client_udp).await;
            },
            _ = tokio::time::sleep(idle) => break,
        }
    }
    if flows.order.is_empty() {
        // Nothing was sent: one line for the association, `dest=` empty.
        let egress_ip = order
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        tunnel.record(egress_ip, None, Moved::default());
    }
    for dest in &flows.order {
        if let Some(f) = flows.slots.get(dest) {
            let moved = Moved {
                out: f.bytes_out,
                into: f.bytes_in,
            };
            tunnel.record(f.source, Some(*dest), moved);
        }
    }
}

/// Waits for a datagram on `out`, or forever when it does not exist yet.
async fn recv(out: &Option<Out>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match out {
        Some(o) => o.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Passes an answer from a contacted destination back to the client, counted on its flow.
async fn back(
    relay: &UdpSocket,
    out: &Option<Out>,
    r: std::io::Result<(usize, SocketAddr)>,
    buf: &[u8],
    flows: &mut Flows,
    client_udp: Option<SocketAddr>,
) {
    let (Ok((n, from)), Some(to), Some(out)) = (r, client_udp, out.as_ref()) else {
        return;
    };
    let from = canonical_addr(from);
    let Some(flow) = flows.slots.get_mut(&from) else {
        return;
    };
    let mut msg = Vec::with_capacity(n + 22);
    socks5::encode_udp_header(from, &mut msg);
    msg.extend_from_slice(&buf[..n]);
    if relay.send_to(&msg, to).await.is_ok() {
        flow.bytes_in += n as u64;
        out.stats.bytes_in.add(n as u64);
    }
}

/// The destinations of one association.
#[derive(Default)]
struct Flows {
    /// Destinations sent to, each with its `max_per_destination` slot, held until the
    /// association ends; only these may answer.
    slots: HashMap<SocketAddr, Flow>,
    /// The keys of `slots` in the order they were first sent to (the log lines' order).
    order: Vec<SocketAddr>,
    /// Destinations refused for the limit, so the refusal is logged once, not per datagram.
    limited: HashSet<SocketAddr>,
}

/// One destination of an association.
struct Flow {
    _slot: DestGuard,
    /// The source address its datagrams leave from.
    source: IpAddr,
    /// Payload bytes client → destination.
    bytes_out: u64,
    /// Payload bytes destination → client.
    bytes_in: u64,
}

impl Flows {
    /// Counts `n` payload bytes sent to `dest` (admitted before).
    fn sent(&mut self, dest: SocketAddr, n: u64) {
        if let Some(f) = self.slots.get_mut(&dest) {
            f.bytes_out += n;
        }
    }

    /// Whether a datagram may go to `dest`: a destination already contacted holds its
    /// slot; a new one takes a `max_per_destination` slot of (`out.source`, `dest`),
    /// unless they are all taken or the association already has [`MAX_PEERS`].
    fn admit(
        &mut self,
        shared: &Shared,
        policy: &Policy,
        tunnel: &Tunnel,
        out: &Out,
        dest: SocketAddr,
    ) -> bool {
        let full = self.slots.len() >= MAX_PEERS;
        let Entry::Vacant(free) = self.slots.entry(dest) else {
            return true;
        };
        if full {
            tracing::debug!(dest = %dest, "udp association has too many destinations, datagram dropped");
            return false;
        }
        let max = policy.egress.max_per_destination;
        let Some(guard) = shared.dests.try_acquire(out.source, dest, max) else {
            if self.limited.len() < MAX_PEERS && self.limited.insert(dest) {
                out.stats.limited.inc();
                tunnel.refused(&dest.to_string(), "limit", "");
            }
            return false;
        };
        free.insert(Flow {
            _slot: guard,
            source: out.source,
            bytes_out: 0,
            bytes_in: 0,
        });
        self.order.push(dest);
        true
    }
}

/// Resolves (with a small per-association cache) and vets a datagram's destination.
async fn vetted(
    shared: &Shared,
    policy: &Policy,
    tunnel: &Tunnel,
    addr: &Address,
    names: &mut HashMap<String, Vec<SocketAddr>>,
) -> Option<SocketAddr> {
    let dests = match addr {
        Address::Ip(sa) => vec![canonical_addr(*sa)],
        Address::Domain(h, _) => match names.get(h) {
            Some(d) => d.clone(),
            None => {
                let d = dial::resolve(addr, policy.egress.connect_timeout)
                    .await
                    .ok()?;
                if names.len() >= MAX_NAMES {
                    names.clear();
                }
                names.insert(h.clone(), d.clone());
                d
            }
        },
    };
    if let Err(d) = vet::vet_all(&policy.egress, &dests) {
        shared.refused.denied.inc();
        tunnel.refused(&address_text(addr), "denied", &d.rule());
        return None;
    }
    dests.first().copied()
}

/// Binds an outbound socket for `dest`'s family on the first usable source in rendezvous
/// order.
fn bind_out(shared: &Shared, order: &[IpAddr], dest: SocketAddr) -> Option<Out> {
    for &source in order
        .iter()
        .filter(|ip| canonical(**ip).is_ipv4() == dest.is_ipv4())
    {
        let stats = shared.sources.get(source);
        match udp_from(source) {
            Ok(socket) => {
                stats.ok.inc();
                let active = ActiveGuard::new(stats.clone());
                return Some(Out {
                    socket,
                    source,
                    stats,
                    _active: active,
                });
            }
            Err(e) => {
                tracing::warn!(source_ip = %source, error = %e, "udp source address unusable, trying the next");
                stats.unusable.inc();
            }
        }
    }
    None
}

fn udp_from(source: IpAddr) -> std::io::Result<UdpSocket> {
    let addr = SocketAddr::new(source, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
