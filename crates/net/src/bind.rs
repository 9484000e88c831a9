//! Listener sockets with the options set in one place.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use crate::listeners::{self, Transport};

/// A listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Creating, configuring or binding the socket failed.
    #[error("bind {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

const BACKLOG: i32 = 4096;

/// A TCP listener: `SO_REUSEADDR` (restart without waiting out TIME_WAIT), `SO_REUSEPORT`
/// (a specific address beside a wildcard on one port), a deep backlog,
/// and for IPv6 addresses `IPV6_V6ONLY` off so `[::]:80` takes IPv4 clients too (they show
/// up as mapped addresses, which callers fold with `spaced_config::canonical`).
///
/// # Errors
/// When the socket cannot be created, configured or bound.
pub fn tcp_listener(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let wrap = |source| BindError::Bind { addr, source };
    // Socket activation or an upgrade handed this address over already (crate::listeners).
    if let Some(socket) = listeners::take(Transport::Tcp, addr) {
        socket.set_nonblocking(true).map_err(wrap)?;
        listeners::record(Transport::Tcp, &socket).map_err(wrap)?;
        return TcpListener::from_std(socket.into()).map_err(wrap);
    }
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(wrap)?;
    socket.set_reuse_address(true).map_err(wrap)?;
    // Linux refuses a specific address (10.0.0.2:80) beside a wildcard one (0.0.0.0:80) on
    // the same port unless both sockets set SO_REUSEPORT, and CONFIG.md's own example does
    // exactly that (external `0.0.0.0:80`, internal `10.0.0.2:80`). Two listeners on the
    // very same address are rejected by config validation, so nothing shares by accident.
    socket.set_reuse_port(true).map_err(wrap)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).map_err(wrap)?;
    }
    socket.set_nonblocking(true).map_err(wrap)?;
    socket.bind(&addr.into()).map_err(wrap)?;
    socket.listen(BACKLOG).map_err(wrap)?;
    listeners::record(Transport::Tcp, &socket).map_err(wrap)?;
    TcpListener::from_std(socket.into()).map_err(wrap)
}

/// Fails when another socket already holds `addr` (or a wildcard on its port): a bind
/// without `SO_REUSEPORT`, dropped at once. Port 0 is always free.
///
/// [`tcp_listener`] sets `SO_REUSEPORT`, and with it a second daemon of the same user binds
/// the very same addresses without a word and takes part of every listener's connections
/// (with its own policy). Probing each address before the daemon binds any of its own
/// turns that into "address in use" (its own listeners never conflict: each probe is gone
/// before the next).
///
/// # Errors
/// The OS error of the probe's bind (`EADDRINUSE` when taken).
pub fn ensure_unbound(addr: SocketAddr) -> Result<(), BindError> {
    // Port 0 is always free; an inherited socket is this process's own.
    if addr.port() == 0 || listeners::is_inherited(addr) {
        return Ok(());
    }
    let wrap = |source| BindError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(wrap)?;
    // TIME_WAIT leftovers of a previous run are no owner.
    socket.set_reuse_address(true).map_err(wrap)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).map_err(wrap)?;
    }
    socket.bind(&addr.into()).map_err(wrap)
}

/// A UDP socket bound to `addr` (dual-stack for IPv6, like [`tcp_listener`]).
///
/// # Errors
/// When the socket cannot be created, configured or bound.
pub fn udp_socket(addr: SocketAddr) -> Result<UdpSocket, BindError> {
    let wrap = |source| BindError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(wrap)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).map_err(wrap)?;
    }
    socket.set_nonblocking(true).map_err(wrap)?;
    socket.bind(&addr.into()).map_err(wrap)?;
    UdpSocket::from_std(socket.into()).map_err(wrap)
}
