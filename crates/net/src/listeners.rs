//! The process's listening sockets, by transport and local address: the one registry every
//! listener goes through ([`crate::tcp_listener`] and the resolver's UDP group call it).
//!
//! Two jobs, both process-wide because the sockets are:
//! - **Inherited sockets** (systemd socket activation, or the previous process of a
//!   SIGUSR2 upgrade): [`adopt_inherited`] takes `LISTEN_FDS` once at start, and a listener
//!   whose configured address equals an inherited socket's local address (same transport)
//!   takes that socket instead of binding a new one. Matching by address, not by position
//!   or name, lets one socket unit serve any config and survives a config that reorders its
//!   listeners.
//! - **Hand-off**: with [`keep_for_handoff`] on (the binary turns it on; in-process tests
//!   do not, so a stopped test daemon frees its ports), every listener bound keeps a
//!   duplicate here, which [`handoff`] duplicates again for an upgraded process.
//!   [`release`] drops them when listeners close, so a stopped listener refuses connections
//!   instead of queueing them in a backlog nobody accepts from.
//!
//! Locks are taken only while binding and handing off, never on a connection's path.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use socket2::Socket;

/// TCP or UDP: a TCP socket never matches a UDP address and vice versa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A listening stream socket.
    Tcp,
    /// A bound datagram socket.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`: the `LISTEN_FDNAMES` name spaced gives a socket it hands off.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// An adopted socket, for the log: transport, local address, `LISTEN_FDNAMES` name.
pub type Adopted = (Transport, SocketAddr, String);

/// A refused descriptor, for the log: its number and why.
pub type Refused = (usize, String);

/// A socket held by the registry.
#[derive(Debug)]
pub struct Held {
    /// Its transport.
    pub transport: Transport,
    /// Its local address.
    pub local: SocketAddr,
    /// The `LISTEN_FDNAMES` entry it came with (inherited), or its transport's name.
    pub name: String,
    /// The socket.
    pub fd: OwnedFd,
}

struct Registry {
    /// Inherited sockets no listener has taken yet.
    inherited: Vec<Held>,
    /// Duplicates of every bound listener, while hand-off is on.
    kept: Option<Vec<Held>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    inherited: Vec::new(),
    kept: None,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves plain data behind; the registry stays usable.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the sockets passed by `LISTEN_FDS` (when `LISTEN_PID` is this process or unset)
/// and returns what was adopted. Sockets that are neither a TCP listener nor a UDP socket
/// are reported by index and closed.
///
/// Call it first thing in `main`, before any thread starts: it unsets `LISTEN_FDS` and
/// `LISTEN_PID` so no child inherits them by accident.
/// Never fails as a whole; each refused descriptor comes back in the second list.
pub fn adopt_inherited() -> (Vec<Adopted>, Vec<Refused>) {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut adopted = Vec::new();
    let mut refused = Vec::new();
    let mut reg = registry();
    for i in 0..fds.len() {
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("fd{}", i + 3));
        let socket: io::Result<Option<(Transport, Socket)>> = match fds.take_tcp_listener(i) {
            Ok(Some(l)) => Ok(Some((Transport::Tcp, Socket::from(l)))),
            Ok(None) => Ok(None),
            Err(_) => fds
                .take_udp_socket(i)
                .map(|u| u.map(|u| (Transport::Udp, Socket::from(u)))),
        };
        let held = socket.and_then(|s| match s {
            None => Ok(None),
            Some((transport, socket)) => {
                // Inherited descriptors come without close-on-exec: an upgraded child must
                // get only the sockets handed to it on purpose.
                socket.set_cloexec(true)?;
                let local = socket
                    .local_addr()?
                    .as_socket()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                Ok(Some((transport, local, socket)))
            }
        });
        match held {
            Ok(Some((transport, local, socket))) => {
                adopted.push((transport, local, name.clone()));
                reg.inherited.push(Held {
                    transport,
                    local,
                    name,
                    fd: socket.into(),
                });
            }
            Ok(None) => {}
            Err(e) => refused.push((i + 3, format!("{name}: {e}"))),
        }
    }
    (adopted, refused)
}

/// Whether an inherited socket holds `addr` or overlaps it (either transport; the same
/// port, with the same address or either a wildcard): the daemon's probe for a second
/// daemon on its ports must not count this process's own sockets. A socket unit that
/// passes `0.0.0.0:80` for a config that also binds `10.0.0.2:80` itself needs
/// `ReusePort=yes`, as the two must share the port.
pub fn is_inherited(addr: SocketAddr) -> bool {
    registry().inherited.iter().any(|h| {
        h.local.port() == addr.port()
            && (h.local.ip() == addr.ip()
                || h.local.ip().is_unspecified()
                || addr.ip().is_unspecified())
    })
}

/// The inherited socket of `transport` on exactly `addr`, taken out of the registry.
pub fn take(transport: Transport, addr: SocketAddr) -> Option<Socket> {
    let mut reg = registry();
    let at = reg
        .inherited
        .iter()
        .position(|h| h.transport == transport && h.local == addr)?;
    Some(Socket::from(reg.inherited.swap_remove(at).fd))
}

/// Closes the inherited sockets no listener took (a socket unit with an address the config
/// no longer has) and returns them, so the daemon can say which. A UDP socket left open in a
/// `SO_REUSEPORT` group would take its share of queries and answer none.
pub fn close_unclaimed() -> Vec<Adopted> {
    std::mem::take(&mut registry().inherited)
        .into_iter()
        .map(|h| (h.transport, h.local, h.name))
        .collect()
}

/// Turns hand-off on: listeners bound from now on keep a duplicate here for [`handoff`].
pub fn keep_for_handoff() {
    let mut reg = registry();
    if reg.kept.is_none() {
        reg.kept = Some(Vec::new());
    }
}

/// Records a bound listener for hand-off (a no-op unless [`keep_for_handoff`] is on).
///
/// # Errors
/// When the socket cannot be duplicated or has no IP address.
pub fn record(transport: Transport, socket: &Socket) -> io::Result<()> {
    let mut reg = registry();
    let Some(kept) = reg.kept.as_mut() else {
        return Ok(());
    };
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    kept.push(Held {
        transport,
        local,
        name: transport.name().to_string(),
        fd: socket.try_clone()?.into(),
    });
    Ok(())
}

/// Fresh duplicates of every recorded listener, for a new process.
///
/// # Errors
/// When a duplicate cannot be made (out of descriptors).
pub fn handoff() -> io::Result<Vec<Held>> {
    let reg = registry();
    let Some(kept) = reg.kept.as_ref() else {
        return Ok(Vec::new());
    };
    kept.iter()
        .map(|h| {
            Ok(Held {
                transport: h.transport,
                local: h.local,
                name: h.name.clone(),
                fd: h.fd.try_clone()?,
            })
        })
        .collect()
}

/// Drops the recorded duplicates and stops recording: the listeners are closing.
pub fn release() {
    registry().kept = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn taking_matches_transport_and_exact_address() {
        let tcp = crate::tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = tcp.local_addr().unwrap();
        let std = tcp.into_std().unwrap();
        registry().inherited.push(Held {
            transport: Transport::Tcp,
            local: addr,
            name: "web".into(),
            fd: std.into(),
        });
        assert!(is_inherited(addr));
        assert!(take(Transport::Udp, addr).is_none());
        let other: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert!(take(Transport::Tcp, other).is_none());
        // tcp_listener itself takes it: the same socket, the same port.
        let again = crate::tcp_listener(addr).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr);
        assert!(!is_inherited(addr));
        assert!(close_unclaimed().is_empty());

        // A wildcard covers every address on its port, for the probe.
        let any = crate::tcp_listener("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = any.local_addr().unwrap().port();
        registry().inherited.push(Held {
            transport: Transport::Tcp,
            local: any.local_addr().unwrap(),
            name: "any".into(),
            fd: any.into_std().unwrap().into(),
        });
        assert!(is_inherited(SocketAddr::from(([127, 0, 0, 5], port))));
        assert!(!is_inherited(SocketAddr::from(([127, 0, 0, 5], port ^ 1))));
        // Not taken for another address: only the exact one is.
        assert!(take(Transport::Tcp, SocketAddr::from(([127, 0, 0, 5], port))).is_none());
        assert_eq!(close_unclaimed().len(), 1);
    }
}
