//! The resolver's sockets: per listen address a group of UDP sockets sharing one port with
//! `SO_REUSEPORT` (the kernel spreads client flows over them, one receive loop each, with no
//! lock shared between loops), and a TCP listener on that same port.
//!
//! Options are set here rather than in `spaced-net` because only the resolver needs a
//! reuse-port group; it is a wish for `spaced-net` (`udp_socket_group`).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use spaced_net::BindError;
use spaced_net::listeners::{self, Transport};
use tokio::net::TcpListener;

/// A blocking UDP socket: each is served by its own thread (see `server::serve_udp_thread`).
type UdpSocket = std::net::UdpSocket;

use crate::error::ResolverError;

/// Bursts of queries wait here rather than being dropped while a loop is busy (the kernel
/// caps it at `net.core.rmem_max`).
const RECV_BUFFER: usize = 1 << 20;

/// UDP first (port 0 picks one), the rest of the group on its port, then TCP on the same
/// port; with port 0, a few fresh tries in case TCP's is taken.
pub(crate) fn bind_group(
    addr: SocketAddr,
    udp_count: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), ResolverError> {
    let tries = if addr.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        // Socket activation or an upgrade may have handed this address over already.
        let inherited = take_udp(addr).map_err(|e| wrap(addr, e))?;
        let first_inherited = inherited.is_some();
        let first = match inherited {
            Some(s) => s,
            None => udp(addr).map_err(|e| wrap(addr, e))?,
        };
        let local = first
            .local_addr()
            .map_err(|source| wrap(addr, BindError::Bind { addr, source }))?;
        let tcp = match spaced_net::tcp_listener(local) {
            Ok(tcp) => tcp,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let mut group = vec![first];
        for _ in 1..udp_count.max(1) {
            // An upgrade hands over the whole group; a socket unit hands over one socket
            // without SO_REUSEPORT, which no new socket can join, so its loops share it.
            let next = match take_udp(local).map_err(|e| wrap(addr, e))? {
                Some(s) => s,
                None if first_inherited => group[0]
                    .try_clone()
                    .map_err(|source| wrap(addr, BindError::Bind { addr, source }))?,
                None => udp(local).map_err(|e| wrap(addr, e))?,
            };
            group.push(next);
        }
        for s in &group {
            listeners::record(Transport::Udp, &socket2::SockRef::from(s))
                .map_err(|source| wrap(addr, BindError::Bind { addr, source }))?;
        }
        return Ok((group, tcp, local));
    }
    Err(wrap(
        addr,
        last.unwrap_or_else(|| BindError::Bind {
            addr,
            source: io::ErrorKind::AddrInUse.into(),
        }),
    ))
}

fn wrap(addr: SocketAddr, source: BindError) -> ResolverError {
    ResolverError::Bind { addr, source }
}

/// The inherited UDP socket on `addr`, blocking as the group's threads want it.
fn take_udp(addr: SocketAddr) -> Result<Option<UdpSocket>, BindError> {
    let Some(socket) = listeners::take(Transport::Udp, addr) else {
        return Ok(None);
    };
    socket
        .set_nonblocking(false)
        .map_err(|source| BindError::Bind { addr, source })?;
    Ok(Some(socket.into()))
}

/// One UDP socket of a group: `SO_REUSEPORT`, a deep receive buffer, dual-stack for IPv6
/// (mapped IPv4 clients are folded by the access check).
fn udp(addr: SocketAddr) -> Result<UdpSocket, BindError> {
    let wrap = |source| BindError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(wrap)?;
    socket.set_reuse_port(true).map_err(wrap)?;
    // Best effort: a smaller buffer only means earlier drops under a burst.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    if addr.is_ipv6() {
        socket.set_only_v6(false).map_err(wrap)?;
    }
    socket.bind(&addr.into()).map_err(wrap)?;
    Ok(socket.into())
}
