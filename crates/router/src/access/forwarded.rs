//! The client address behind trusted proxies: nginx's `real_ip_recursive` walk of
//! `X-Forwarded-For`, right to left, without allocating; an entry it cannot read where it
//! needs one makes the client unknown rather than the proxy.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::HeaderName;
use spaced_config::{Policy, canonical};

static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client as the router derives it for per-app (`S10`) and `space.blocked` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// An address: the peer, or the right-most `X-Forwarded-For` entry that is not a
    /// trusted proxy.
    Known(IpAddr),
    /// The walk met an entry that is not an address before finding the client: who sent
    /// the request cannot be said. `via` is the last address the walk reached (the peer or
    /// a trusted hop), for the log line only: it is never the client.
    Unknown {
        /// The last trusted address reached.
        via: IpAddr,
    },
}

impl Client {
    /// The address for the log line's `fwd` (for an unknown client, the hop that
    /// forwarded it).
    pub fn addr(self) -> IpAddr {
        match self {
            Self::Known(ip) | Self::Unknown { via: ip } => ip,
        }
    }

    /// The client's address, `None` when unknown.
    pub fn known(self) -> Option<IpAddr> {
        match self {
            Self::Known(ip) => Some(ip),
            Self::Unknown { .. } => None,
        }
    }
}

/// The client IP for per-app (`S10`) checks; an unknown client (see [`client_from`])
/// is given as the last trusted address reached. Prefer [`client`], which says so.
pub fn client_ip(policy: &Policy, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    client(policy, peer, headers).addr()
}

/// [`client_ip`] over the `X-Forwarded-For` values in the order received.
pub fn client_ip_from<'a>(
    policy: &Policy,
    peer: IpAddr,
    values: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    client_from(policy, peer, values).addr()
}

/// The client behind trusted proxies, from a `HeaderMap` (see [`client_from`]).
pub fn client(policy: &Policy, peer: IpAddr, headers: &HeaderMap) -> Client {
    let values = headers
        .get_all(&XFF)
        .iter()
        .map(http::HeaderValue::as_bytes);
    client_from(policy, peer, values)
}

/// The client behind trusted proxies, over the `X-Forwarded-For` values in the order
/// received (for a head that was not parsed into a `HeaderMap`).
///
/// When `peer` is not in `router.trusted_proxies`, the peer itself: its `X-Forwarded-For`
/// is the client's own text and believing it would let anyone claim any address.
///
/// When it is, the entries (every such header in order, each split on commas, as one
/// list) are walked from the right, where the proxies we trust appended what they saw:
/// the first entry not in `trusted_proxies` is the client. When every entry is a trusted
/// proxy, the left-most one; with no header, the peer.
///
/// An entry that is not an address (`unknown`, an empty entry, a non-ASCII byte, an
/// obfuscated identifier) where the walk needs one makes the client
/// [`Client::Unknown`]: a trusted hop vouched for *something* it could not name, so
/// neither the hop's own address (the bypass of issue 19: a proxy's address is often in
/// an app's `trusted`) nor anything further left may stand in for it. Entries left of the
/// client are never looked at, so a client's own garbage there changes nothing.
///
/// Entries may carry ports (`1.2.3.4:5678`, `[::1]:80`); they are dropped. IPv4-mapped
/// IPv6 is folded to IPv4.
pub fn client_from<'a>(
    policy: &Policy,
    peer: IpAddr,
    values: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> Client {
    let proxies = &policy.router.trusted_proxies;
    let mut current = canonical(peer);
    if !proxies.contains(current) {
        return Client::Known(current);
    }
    // Headers in reverse, and entries in each header in reverse: one right-to-left pass
    // over the concatenated list. Split as bytes: one bad byte spoils its entry only.
    for value in values.rev() {
        for entry in value.rsplit(|&b| b == b',') {
            let Some(ip) = std::str::from_utf8(entry)
                .ok()
                .and_then(parse_forwarded_entry)
            else {
                return Client::Unknown { via: current };
            };
            current = ip;
            if !proxies.contains(ip) {
                return Client::Known(ip);
            }
        }
    }
    Client::Known(current)
}

/// One `X-Forwarded-For` entry as an address, canonical: `1.2.3.4`, `2001:db8::1`,
/// `1.2.3.4:5678`, `[2001:db8::1]:80` or `[2001:db8::1]`, surrounding whitespace ignored.
/// `None` for anything else (`unknown`, obfuscated identifiers, zone ids, empty).
pub fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches(|c| c == ' ' || c == '\t');
    // Longest textual forms: an IPv6 address with an embedded IPv4 in brackets plus a
    // port is under 56 bytes; refuse anything longer before parsing.
    if entry.is_empty() || entry.len() > 64 {
        return None;
    }
    let ip = if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = entry.parse::<SocketAddr>() {
        sa.ip()
    } else {
        entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
            .map(IpAddr::V6)?
    };
    Some(canonical(ip))
}
