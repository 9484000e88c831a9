//! The accept loop: cancellation first, admission right after `accept(2)` and before any
//! read or spawn, and a lock-free connection cap for callers to use inside `admit`/`handle`.
//!
//! The loop knows no policy: the caller's `admit` closure decides (trusted ranges, blocked
//! ranges, `max_connections`), and `handle` spawns whatever serves the connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::shutdown::Shutdown;

/// The accept loop met an error it cannot ride out; the listener is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// `accept(2)` failed with an error that is neither transient nor per-connection.
    #[error("accept on {local}")]
    Accept {
        /// The listener's address (`0.0.0.0:0` if even that could not be read).
        local: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl AcceptError {
    /// The OS error behind this failure.
    pub fn io(&self) -> &io::Error {
        match self {
            Self::Accept { source, .. } => source,
        }
    }
}

/// How long the loop pauses when the process or kernel is out of descriptors or memory.
/// Retrying at once would spin a core while nothing can improve; pausing lets in-flight
/// connections finish and free descriptors (pingora, hyper's `AddrIncoming`).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown` is cancelled.
///
/// For each connection, in order: the peer address is canonicalised ([`canonical_addr`]),
/// `admit(peer)` is asked — a `false` drops the socket at once, so it is closed with
/// nothing read or written — then `handle(stream, peer)` gets it, with `TCP_NODELAY` set:
/// once on the listener, which Linux copies to every accepted socket (one `setsockopt` per
/// listener instead of one per connection), or per socket if the listener refused it.
/// `handle` must not block: it is expected to spawn (e.g. with [`Shutdown::spawn`]).
///
/// Errors of one connection (`ECONNABORTED`, `ECONNRESET`, and the network errors Linux
/// reports through `accept(2)`, see [`is_per_connection`]) are skipped. Resource
/// exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses for [`ACCEPT_BACKOFF`] and
/// goes on.
///
/// # Errors
/// Any other accept error ends the loop with [`AcceptError::Accept`]. The loop returns
/// `Ok(())` only when it ended because `shutdown` was cancelled.
pub async fn serve<A, H>(
    listener: TcpListener,
    shutdown: Shutdown,
    mut admit: A,
    mut handle: H,
) -> Result<(), AcceptError>
where
    A: FnMut(SocketAddr) -> bool,
    H: FnMut(TcpStream, SocketAddr),
{
    let inherited = socket2::SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .is_ok();
    loop {
        let accepted = tokio::select! {
            // Cancellation first, so a flood of connections cannot keep a removed listener
            // alive.
            biased;
            () = shutdown.cancelled() => return Ok(()),
            res = listener.accept() => res,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if is_per_connection(&e) => {
                debug!(error = %e, "accept: connection failed before we saw it");
                continue;
            }
            Err(e) if is_transient(&e) => {
                warn!(error = %e, "accept: out of resources, pausing");
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
            Err(source) => {
                let local = listener
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                return Err(AcceptError::Accept { local, source });
            }
        };
        let peer = canonical_addr(peer);
        if !admit(peer) {
            // Dropping closes the socket with nothing read or written (BEHAVIOR.md,
            // "Closing without a word"). The caller counts and logs the denial.
            drop(stream);
            continue;
        }
        if !inherited && let Err(e) = stream.set_nodelay(true) {
            // The peer may already be gone; whoever reads the stream will find out.
            debug!(client.addr = %peer, error = %e, "set TCP_NODELAY");
        }
        handle(stream, peer);
    }
}

/// Folds an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack listener reports
/// IPv4 clients) to plain IPv4, keeping the port. Every admission check must see the
/// canonical form, or an IPv4 client could slip past IPv4 rules through a v6 socket.
///
/// The fold is the standard library's [`std::net::IpAddr::to_canonical`] (mapped
/// addresses only, not the deprecated IPv4-compatible `::a.b.c.d`), the same one
/// `spaced_config::canonical` applies to bare IPs: one rule, whichever crate a caller
/// reaches it through.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Errors that concern only the connection being accepted: skip it and accept the next.
///
/// Besides `ECONNABORTED`/`ECONNRESET`, Linux passes pending network errors of the new
/// socket through `accept(2)` and its man page says to treat them like `EAGAIN`; `EPERM`
/// is a firewall rule refusing that one connection.
pub fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EINTR
        )
    ) || matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Errors from running out of descriptors or kernel memory: they pass once other
/// connections close, so pause and retry.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A cap on connections open at once (`max_connections`), shared by clones.
///
/// Lock-free: one atomic counter. [`ConnLimit::try_acquire`] hands out a [`ConnGuard`]
/// that gives its slot back when dropped, so moving the guard into the connection task
/// ties the slot to the connection's life.
#[derive(Debug, Clone)]
pub struct ConnLimit {
    /// Shared by every clone and every guard; guards decrement `open` on drop.
    inner: Arc<LimitInner>,
}

/// Holds one slot of a [`ConnLimit`] until dropped.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the guard is dropped"]
pub struct ConnGuard {
    /// The limit this slot belongs to.
    inner: Arc<LimitInner>,
}

#[derive(Debug)]
struct LimitInner {
    /// The cap; changed by reloads with [`ConnLimit::set_max`].
    max: AtomicUsize,
    /// Slots held by live guards.
    open: AtomicUsize,
}

impl ConnLimit {
    /// A limit of `max` connections at once (0 admits none).
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(LimitInner {
                max: AtomicUsize::new(max),
                open: AtomicUsize::new(0),
            }),
        }
    }

    /// Takes a slot if fewer than `max` are held, else `None` (the caller closes the
    /// connection without a word).
    pub fn try_acquire(&self) -> Option<ConnGuard> {
        let max = self.inner.max.load(Ordering::Relaxed);
        // A CAS loop, not fetch_add-then-undo: a burst over the cap never shows a count
        // above `max` to concurrent callers, so it cannot refuse one that should pass.
        self.inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| ConnGuard {
                inner: Arc::clone(&self.inner),
            })
    }

    /// Changes the cap (on reload). Connections already held stay open even if there are
    /// now more than `max`; new ones wait until the count falls under it.
    pub fn set_max(&self, max: usize) {
        self.inner.max.store(max, Ordering::Relaxed);
    }

    /// The current cap.
    pub fn max(&self) -> usize {
        self.inner.max.load(Ordering::Relaxed)
    }

    /// Slots held right now (for metrics).
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn canonical_folds_mapped_v6_only() {
        let mapped = SocketAddr::new(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().into(), 80);
        assert_eq!(
            canonical_addr(mapped),
            SocketAddr::from(([10, 1, 2, 3], 80))
        );
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 1);
        assert_eq!(canonical_addr(v6), v6);
        // IPv4-compatible (::a.b.c.d, deprecated) is not a mapped address: left alone.
        let compat = SocketAddr::new("::10.1.2.3".parse::<Ipv6Addr>().unwrap().into(), 1);
        assert_eq!(canonical_addr(compat), compat);
        let v4 = SocketAddr::from(([192, 0, 2, 1], 443));
        assert_eq!(canonical_addr(v4), v4);
    }

    #[test]
    fn error_classes() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let e = io::Error::from_raw_os_error(code);
            assert!(is_transient(&e) && !is_per_connection(&e), "{code}");
        }
        for code in [
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EPROTO,
            libc::EPERM,
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert!(is_per_connection(&e) && !is_transient(&e), "{code}");
        }
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            let e = io::Error::from_raw_os_error(code);
            assert!(!is_per_connection(&e) && !is_transient(&e), "{code}");
        }
    }

    #[test]
    fn limit_counts_and_releases() {
        let limit = ConnLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.open(), 2);
        drop(a);
        let c = limit.clone().try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop((b, c));
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn limit_reload_up_and_down() {
        let limit = ConnLimit::new(1);
        let a = limit.try_acquire().unwrap();
        limit.set_max(3);
        let b = limit.try_acquire().unwrap();
        limit.set_max(1);
        assert_eq!(limit.max(), 1);
        // Two held over a cap of one: both stay, nothing new until under the cap.
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_none());
        drop(b);
        assert!(limit.try_acquire().is_some());
        let zero = ConnLimit::new(0);
        assert!(zero.try_acquire().is_none());
    }

    #[test]
    fn limit_is_exact_under_threads() {
        let limit = ConnLimit::new(1000);
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let limit = &limit;
                    s.spawn(move || {
                        (0..500)
                            .filter_map(|_| limit.try_acquire())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(held.len(), 1000);
        assert_eq!(limit.open(), 1000);
        drop(held);
        assert_eq!(limit.open(), 0);
    }
}
