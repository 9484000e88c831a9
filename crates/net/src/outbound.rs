//! Outbound TCP for the egress gateway: connecting from a chosen source address, and
//! reading the original destination of a connection redirected by iptables.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::accept::canonical_addr;

/// An outbound connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The source and destination are of different families (after folding mapped IPv6).
    #[error("source {source_ip} cannot reach {dest}: address families differ")]
    FamilyMismatch {
        /// The source asked for.
        source_ip: IpAddr,
        /// The destination.
        dest: SocketAddr,
    },
    /// Creating or configuring the socket failed.
    #[error("create socket for {dest}")]
    Socket {
        /// The destination.
        dest: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Binding the source address failed (not configured, not permitted).
    #[error("bind source {source_ip}")]
    Bind {
        /// The source asked for.
        source_ip: IpAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `connect(2)` failed (refused, unreachable, reset).
    #[error("connect to {dest}")]
    Connect {
        /// The destination.
        dest: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No answer within the timeout.
    #[error("connect to {dest} timed out after {after:?}")]
    Timeout {
        /// The destination.
        dest: SocketAddr,
        /// The timeout that expired.
        after: Duration,
    },
}

impl ConnectError {
    /// The destination did not answer in time (our timeout or the kernel's `ETIMEDOUT`).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Connect { source, .. } => source.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// The destination actively refused (RST to our SYN).
    pub fn is_refused(&self) -> bool {
        matches!(self, Self::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused)
    }

    /// The source address is the problem (bad family, cannot bind): another source may
    /// work, while retrying this one will not.
    pub fn is_source_unusable(&self) -> bool {
        match self {
            Self::FamilyMismatch { .. } | Self::Bind { .. } => true,
            // Without IP_FREEBIND taking effect, a missing address shows up at connect.
            Self::Connect { source, .. } => source.raw_os_error() == Some(libc::EADDRNOTAVAIL),
            _ => false,
        }
    }
}

/// Connects to `dest` within `timeout`, leaving from `source` when given.
///
/// The socket gets `IP_BIND_ADDRESS_NO_PORT` (binding `source:0` does not reserve an
/// ephemeral port; the kernel picks one at connect, per destination, so one busy source
/// address serves far more than 64k connections across destinations), and `IP_FREEBIND`
/// when the source is not (yet) on an interface: a standby address can be configured before
/// it is up. `TCP_NODELAY` is set on the connected stream. A v4-mapped `source` or `dest` is
/// folded to IPv4 first. Cancel-safe: dropping the future closes the half-open socket.
///
/// Every system call here is paid once per egress tunnel, so none is spent without need:
/// the socket is created non-blocking, `IP_FREEBIND` is only set after a plain bind failed,
/// and a successful connect is not followed by a `getsockopt(SO_ERROR)`.
///
/// # Errors
/// See [`ConnectError`] and its classification methods.
pub async fn connect_from(
    source: Option<IpAddr>,
    dest: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let dest = canonical_addr(dest);
    let source = source.map(|ip| canonical_addr(SocketAddr::new(ip, 0)));
    if let Some(src) = source
        && src.is_ipv4() != dest.is_ipv4()
    {
        return Err(ConnectError::FamilyMismatch {
            source_ip: src.ip(),
            dest,
        });
    }
    let socket = outbound_socket(dest, source)?;
    let stream = match tokio::time::timeout(timeout, connect(socket, dest)).await {
        Err(_) => {
            return Err(ConnectError::Timeout {
                dest,
                after: timeout,
            });
        }
        Ok(Err(source)) => return Err(ConnectError::Connect { dest, source }),
        Ok(Ok(stream)) => stream,
    };
    // Failing here only means the connection just died; its first I/O will say so.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A non-blocking connect of `socket` to `dest`, as tokio's `TcpSocket::connect` does it,
/// minus the `getsockopt(SO_ERROR)` after every connect: the error is only read when the
/// poller reported one (a failed connect shows as `EPOLLHUP`/`EPOLLERR`, which tokio
/// reports as write-closed), so a successful connect costs no extra system call.
async fn connect(socket: Socket, dest: SocketAddr) -> io::Result<TcpStream> {
    match socket.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    let ready = stream.ready(Interest::WRITABLE).await?;
    if ready.is_write_closed() {
        // A reset or an ICMP error during the handshake; no error left (someone read it)
        // still means the connection is gone.
        return Err(stream
            .take_error()?
            .unwrap_or_else(|| io::ErrorKind::NotConnected.into()));
    }
    Ok(stream)
}

/// A non-blocking TCP socket for `dest`, bound to `source:0` if given.
fn outbound_socket(dest: SocketAddr, source: Option<SocketAddr>) -> Result<Socket, ConnectError> {
    let sock_err = |source| ConnectError::Socket { dest, source };
    // SOCK_NONBLOCK at creation: two fcntl calls fewer per tunnel than setting it after
    // (the egress profile counts ~20 syscalls per tunnel; every one shows).
    let socket = Socket::new(
        Domain::for_address(dest),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(sock_err)?;
    if let Some(src) = source {
        let bind_err = |source| ConnectError::Bind {
            source_ip: src.ip(),
            source,
        };
        set_bind_address_no_port(&socket).map_err(bind_err)?;
        match socket.bind(&src.into()) {
            // Not on any interface (yet): bind it anyway, the address may be a standby
            // one that is brought up later. The same outcome as setting IP_FREEBIND
            // up front, without the setsockopt on every tunnel from a live address.
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                if src.is_ipv4() {
                    socket.set_freebind_v4(true).map_err(bind_err)?;
                } else {
                    socket.set_freebind_v6(true).map_err(bind_err)?;
                }
                socket.bind(&src.into()).map_err(bind_err)?;
            }
            other => other.map_err(bind_err)?,
        }
    }
    Ok(socket)
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` (Linux ≥ 4.2), which socket2 does not wrap. The option
/// lives at the `IPPROTO_IP` level for IPv6 sockets too.
#[allow(unsafe_code)]
fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is open (borrowed from `socket` for the call); the option
    // value points at a live c_int and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The destination a client originally asked for, on a connection that iptables
/// `REDIRECT`ed (or `DNAT`ed) to a transparent listener (`SO_ORIGINAL_DST`, or
/// `IP6T_SO_ORIGINAL_DST` for IPv6). The result is folded to IPv4 when mapped.
///
/// A connection made straight to the listener (not redirected) has a conntrack entry too,
/// and its "original" destination is the listener itself: callers must refuse a result
/// equal to `stream.local_addr()`, or a client could make the gateway connect to itself
/// in a loop.
///
/// # Errors
/// When conntrack has no entry for the connection (`ENOENT`: it was not redirected or
/// netfilter is not loaded) or the socket is gone.
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let sock = SockRef::from(stream);
    let local = canonical_addr(stream.local_addr()?);
    let raw = if local.is_ipv4() {
        // An IPv4 client on a dual-stack socket is tracked by the IPv4 tables; SOL_IP
        // options reach them through an AF_INET6 socket as well.
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    }?;
    raw.as_socket().map(canonical_addr).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "original destination is not an IP address",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_address_no_port_is_set() {
        for domain in [Domain::IPV4, Domain::IPV6] {
            let socket = Socket::new(domain, Type::STREAM, None).unwrap();
            set_bind_address_no_port(&socket).unwrap();
            let mut val: libc::c_int = 0;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY (test): valid fd, live out-pointers of the right size.
            #[allow(unsafe_code)]
            let rc = unsafe {
                libc::getsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&raw mut val).cast(),
                    &raw mut len,
                )
            };
            assert_eq!(rc, 0);
            assert_eq!(val, 1, "{domain:?}");
        }
    }

    #[test]
    fn freebind_lets_an_absent_source_bind() {
        // 192.0.2.55 (TEST-NET-1) is on no interface here: without IP_FREEBIND the bind
        // fails with EADDRNOTAVAIL. Nothing is sent: the socket is never connected.
        let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let src: SocketAddr = "192.0.2.55:0".parse().unwrap();
        let socket = outbound_socket(dest, Some(src)).unwrap();
        assert!(socket.freebind_v4().unwrap());
        // Bound to the address with no port yet: IP_BIND_ADDRESS_NO_PORT defers it.
        assert_eq!(socket.local_addr().unwrap().as_socket(), Some(src));
        let plain = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let err = plain.bind(&src.into()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));

        // A live address binds without it (one setsockopt fewer per tunnel).
        let live: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let socket = outbound_socket(dest, Some(live)).unwrap();
        assert!(!socket.freebind_v4().unwrap());
        assert_eq!(socket.local_addr().unwrap().as_socket(), Some(live));

        let src6: SocketAddr = "[2001:db8::55]:0".parse().unwrap();
        let dest6: SocketAddr = "[::1]:9".parse().unwrap();
        if let Ok(socket) = outbound_socket(dest6, Some(src6)) {
            assert_eq!(socket.local_addr().unwrap().as_socket(), Some(src6));
        }
    }

    #[tokio::test]
    async fn connect_reports_refusal_without_asking_on_success() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let t = Duration::from_secs(5);
        let stream = connect_from(Some("127.0.0.1".parse().unwrap()), open, t)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), open);
        assert!(stream.nodelay().unwrap());
        drop(listener);
        // Nothing listens there any more: the RST shows as write-closed, its error is read.
        let err = connect_from(None, open, t).await.unwrap_err();
        assert!(err.is_refused(), "{err:?}");
    }

    #[test]
    fn error_classes() {
        let dest: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let refused = ConnectError::Connect {
            dest,
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert!(refused.is_refused() && !refused.is_timeout() && !refused.is_source_unusable());
        let timeout = ConnectError::Timeout {
            dest,
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_timeout() && !timeout.is_refused());
        let kernel_timeout = ConnectError::Connect {
            dest,
            source: io::Error::from_raw_os_error(libc::ETIMEDOUT),
        };
        assert!(kernel_timeout.is_timeout());
        let bind = ConnectError::Bind {
            source_ip: "192.0.2.1".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::EADDRNOTAVAIL),
        };
        assert!(bind.is_source_unusable() && !bind.is_refused());
    }
}
