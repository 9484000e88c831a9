//! From a destination as the client wrote it to a connected socket: resolve the name
//! ourselves, vet every address, pick the source by rendezvous order, respect
//! `max_per_destination`, and connect to exactly the vetted address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use spaced_config::{Policy, canonical};
use spaced_net::{ConnectError, canonical_addr};
use tokio::net::TcpStream;

use crate::address::{Address, address_text};
use crate::limits::{ActiveGuard, DestGuard, SourceStats};
use crate::pin::{self, PinKey};
use crate::socks5::wire::Reply;
use crate::state::Shared;
use crate::vet::{self, Denied};

/// The most addresses of one name that are tried (each costs up to `connect_timeout`).
const MAX_TRIES: usize = 3;
/// The most addresses of one name that are looked at.
const MAX_ADDRS: usize = 16;

/// A connected destination.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) stream: TcpStream,
    pub(crate) lease: Lease,
}

/// What a tunnel holds while it is open: its `max_per_destination` slot and its place in
/// the source's `active` gauge (both released on drop), and where it goes.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) source: IpAddr,
    pub(crate) dest: SocketAddr,
    pub(crate) stats: Arc<SourceStats>,
    _slot: DestGuard,
    _active: ActiveGuard,
}

/// Why a destination was not reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    /// The name did not resolve (or to nothing).
    #[error("cannot resolve {host}")]
    Resolve { host: String },
    /// The policy forbids the destination.
    #[error("destination refused")]
    Denied(#[from] Denied),
    /// `max_per_destination` connections are open already.
    #[error("max_per_destination reached for {source_ip} -> {dest}")]
    Limit { source_ip: IpAddr, dest: SocketAddr },
    /// No source address of the destination's family could be used.
    #[error("no usable source address for {dest}")]
    NoSource { dest: SocketAddr },
    /// The destination did not accept the connection.
    #[error("connect from {source_ip}")]
    Connect {
        source_ip: IpAddr,
        #[source]
        error: ConnectError,
    },
}

impl DialError {
    /// The HTTP status the proxy answers.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Denied(_) => 403,
            Self::Limit { .. } => 503,
            Self::Connect { error, .. } if error.is_timeout() => 504,
            Self::Resolve { .. } | Self::NoSource { .. } | Self::Connect { .. } => 502,
        }
    }

    /// The SOCKS5 reply code.
    pub(crate) fn reply(&self) -> Reply {
        match self {
            Self::Denied(_) => Reply::NotAllowed,
            Self::Limit { .. } => Reply::ConnectionRefused,
            Self::Resolve { .. } => Reply::HostUnreachable,
            Self::NoSource { .. } => Reply::NetworkUnreachable,
            Self::Connect { error, .. } if error.is_refused() => Reply::ConnectionRefused,
            Self::Connect { error, .. } if error.is_timeout() => Reply::TtlExpired,
            Self::Connect {
                error: ConnectError::Connect { source, .. },
                ..
            } => match source.kind() {
                io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
                io::ErrorKind::HostUnreachable => Reply::HostUnreachable,
                _ => Reply::GeneralFailure,
            },
            Self::Connect { .. } => Reply::GeneralFailure,
        }
    }
}

/// Resolves `addr` to canonical socket addresses (IP literals as they are), bounded by
/// `timeout`.
pub(crate) async fn resolve(
    addr: &Address,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, DialError> {
    let (host, port) = match addr {
        Address::Ip(sa) => return Ok(vec![canonical_addr(*sa)]),
        Address::Domain(host, port) => (host, *port),
    };
    let fail = || DialError::Resolve { host: host.clone() };
    let found = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| fail())?
        .map_err(|_| fail())?;
    let mut v: Vec<SocketAddr> = Vec::new();
    for sa in found.take(MAX_ADDRS) {
        let sa = canonical_addr(sa);
        if !v.contains(&sa) {
            v.push(sa);
        }
    }
    if v.is_empty() {
        return Err(fail());
    }
    Ok(v)
}

/// Resolves, vets and connects. `policy` is the one snapshot this connection uses.
pub(crate) async fn dial(
    shared: &Shared,
    policy: &Policy,
    key: PinKey<'_>,
    addr: &Address,
) -> Result<Upstream, DialError> {
    let egress = &policy.egress;
    // Refuse a forbidden port before spending a DNS lookup on it.
    if !egress.ports.allows(addr.port()) {
        return Err(Denied::Port(addr.port()).into());
    }
    let dests = resolve(addr, egress.connect_timeout).await?;
    vet::vet_all(egress, &dests)?;
    let order = pin::order(key, &egress.source_ips);
    let mut last = None;
    for &dest in dests.iter().take(MAX_TRIES) {
        match connect_one(shared, policy, &order, dest).await {
            Ok(up) => return Ok(up),
            Err(e @ DialError::Limit { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    // `resolve` never returns an empty list, so `last` is set; stay total anyway.
    Err(last.unwrap_or_else(|| DialError::Resolve {
        host: address_text(addr),
    }))
}

/// Tries the sources of `dest`'s family in rendezvous order: one that cannot be bound
/// passes to the next; a destination that does not answer ends the attempt.
async fn connect_one(
    shared: &Shared,
    policy: &Policy,
    order: &[IpAddr],
    dest: SocketAddr,
) -> Result<Upstream, DialError> {
    let egress = &policy.egress;
    let mut tried = false;
    for &source_ip in order.iter().filter(|ip| same_family(**ip, dest.ip())) {
        tried = true;
        let stats = shared.sources.get(source_ip);
        let Some(slot) = shared
            .dests
            .try_acquire(source_ip, dest, egress.max_per_destination)
        else {
            stats.limited.inc();
            return Err(DialError::Limit { source_ip, dest });
        };
        match spaced_net::connect_from(Some(source_ip), dest, egress.connect_timeout).await {
            Ok(stream) => {
                stats.ok.inc();
                let active = ActiveGuard::new(stats.clone());
                let lease = Lease {
                    source: source_ip,
                    dest,
                    stats,
                    _slot: slot,
                    _active: active,
                };
                return Ok(Upstream { stream, lease });
            }
            Err(error) if source_unusable(&error) => {
                tracing::warn!(source_ip = %source_ip, dest = %dest, error = %error, "source address unusable, trying the next");
                stats.unusable.inc();
            }
            Err(error) => {
                stats.connect_failed.inc();
                return Err(DialError::Connect { source_ip, error });
            }
        }
    }
    if !tried {
        tracing::debug!(dest = %dest, "no source address of this family");
    }
    Err(DialError::NoSource { dest })
}

/// Whether the next source should be tried: the source could not be bound, or the kernel
/// refused at once to route from it (`ENETUNREACH`, `EADDRNOTAVAIL`, `EINVAL`: an address
/// not on this host, or of the wrong scope). These fail before a packet leaves, so trying
/// the next source costs nothing even when the destination is the problem.
fn source_unusable(e: &ConnectError) -> bool {
    e.is_source_unusable()
        || matches!(e, ConnectError::Connect { source, .. } if matches!(
            source.kind(),
            io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::InvalidInput
        ))
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    canonical(a).is_ipv4() == canonical(b).is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let dest: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let source_ip: IpAddr = "127.0.0.10".parse().unwrap();
        let e = DialError::Limit { source_ip, dest };
        assert_eq!((e.status(), e.reply()), (503, Reply::ConnectionRefused));
        let e = DialError::Denied(Denied::Port(1));
        assert_eq!((e.status(), e.reply()), (403, Reply::NotAllowed));
        let after = Duration::from_secs(1);
        let e = DialError::Connect {
            source_ip,
            error: ConnectError::Timeout { dest, after },
        };
        assert_eq!((e.status(), e.reply()), (504, Reply::TtlExpired));
        let e = DialError::Connect {
            source_ip,
            error: ConnectError::Connect {
                dest,
                source: io::ErrorKind::ConnectionRefused.into(),
            },
        };
        assert_eq!((e.status(), e.reply()), (502, Reply::ConnectionRefused));
        let e = DialError::Resolve { host: "x".into() };
        assert_eq!((e.status(), e.reply()), (502, Reply::HostUnreachable));
        assert!(same_family(
            "::ffff:1.2.3.4".parse().unwrap(),
            "1.2.3.4".parse().unwrap()
        ));
        assert!(!same_family(
            "::1".parse().unwrap(),
            "1.2.3.4".parse().unwrap()
        ));
    }

    #[tokio::test]
    async fn resolves_literals_and_names() {
        let a = resolve(
            &Address::Ip("[::ffff:127.0.0.1]:80".parse().unwrap()),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        let a = resolve(
            &Address::Domain("localhost".into(), 80),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(a.iter().all(|sa| sa.ip().is_loopback() && sa.port() == 80));
        let e = resolve(
            &Address::Domain("no-such-host.invalid".into(), 80),
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(e, Err(DialError::Resolve { .. })));
    }
}
