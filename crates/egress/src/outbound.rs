//! Outbound sockets: connecting from a chosen source address, and reading the original
//! destination of a redirected connection.
//!
//! These stand in for `spaced_net::outbound` until that lands (same signatures), so the
//! switch is a one-line change. Without `unsafe` (forbidden in this crate) there is no way
//! to set `IP_BIND_ADDRESS_NO_PORT` through socket2, so this version binds with `port 0`:
//! correct, but it reserves an ephemeral port per source at bind time.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `dest` from `source` (any address when `None`) within `timeout`.
///
/// `IP_FREEBIND` lets the bind succeed even while the address is still being configured on
/// the host (a floating IP moving over), so the error, if any, comes from `connect`.
///
/// # Errors
/// Socket setup, bind (`EADDRNOTAVAIL`: the address is not ours), connect, or
/// `TimedOut` after `timeout`.
pub async fn connect_from(
    source: Option<IpAddr>,
    dest: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(src) = source {
        match (src, dest) {
            (IpAddr::V4(_), SocketAddr::V4(_)) => socket.set_freebind_v4(true)?,
            (IpAddr::V6(_), SocketAddr::V6(_)) => socket.set_freebind_v6(true)?,
            // A source of the other family cannot carry this connection.
            _ => return Err(io::Error::from(io::ErrorKind::AddrNotAvailable)),
        }
        socket.bind(&SocketAddr::new(src, 0).into())?;
    }
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(socket));
    match tokio::time::timeout(timeout, socket.connect(dest)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
}

/// The destination a connection had before an iptables `REDIRECT`/`DNAT` rewrote it
/// (`SO_ORIGINAL_DST`, or `IP6T_SO_ORIGINAL_DST` for IPv6).
///
/// # Errors
/// When the connection was not redirected (no conntrack entry) or the socket is not TCP.
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let sock = SockRef::from(stream);
    let local = stream.local_addr()?;
    let addr = match local {
        SocketAddr::V4(_) => sock.original_dst_v4()?,
        // A dual-stack listener sees IPv4 clients as mapped addresses, but their conntrack
        // entry is IPv4: try IPv6 first, then IPv4.
        SocketAddr::V6(_) => match sock.original_dst_v6() {
            Ok(a) => a,
            Err(_) => sock.original_dst_v4()?,
        },
    };
    addr.as_socket()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

/// Whether a connect error means "this source cannot be used" (so the next source in
/// rendezvous order is tried) rather than "the destination did not answer".
pub fn is_source_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::AddrInUse
            | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(libc_einval())
}

/// `EINVAL` (binding an address of the wrong kind) without a libc dependency.
const fn libc_einval() -> i32 {
    22
}
