//! The client address behind trusted proxies: nginx's `real_ip_recursive` walk of
//! `X-Forwarded-For`, right to left, without allocating.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::HeaderName;
use spaced_config::{Policy, canonical};

static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client IP for per-app (`S10`) checks.
///
/// When `peer` is not in `router.trusted_proxies`, the peer itself: its `X-Forwarded-For`
/// is the client's own text and believing it would let anyone claim any address.
///
/// When it is, the `X-Forwarded-For` entries (every such header in order, each split on
/// commas) are walked from the right, where the proxies we trust appended what they saw:
/// the first entry not in `trusted_proxies` is the client. When every entry is a trusted
/// proxy, the left-most one; with no header (or no entry), the peer.
///
/// An entry that is not an address (`unknown`, an empty entry, a non-ASCII value) stops
/// the walk and the last address reached is the answer, as nginx does: everything left of
/// it was written by someone we cannot vouch for, and the address reached is the one a
/// trusted hop reported (or the peer).
///
/// Entries may carry ports (`1.2.3.4:5678`, `[::1]:80`); they are dropped. IPv4-mapped
/// IPv6 is folded to IPv4.
pub fn client_ip(policy: &Policy, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let values = headers
        .get_all(&XFF)
        .iter()
        .map(http::HeaderValue::as_bytes);
    client_ip_from(policy, peer, values)
}

/// [`client_ip`] over the `X-Forwarded-For` values in the order received, for a head that
/// was not parsed into a `HeaderMap`.
pub fn client_ip_from<'a>(
    policy: &Policy,
    peer: IpAddr,
    values: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    let proxies = &policy.router.trusted_proxies;
    let mut current = canonical(peer);
    if !proxies.contains(current) {
        return current;
    }
    // Headers in reverse, and entries in each header in reverse: one right-to-left pass
    // over the concatenated list.
    for value in values.rev() {
        // What `HeaderValue::to_str` accepts: visible ASCII, space and tab.
        let visible = value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        let Some(text) = std::str::from_utf8(value).ok().filter(|_| visible) else {
            return current;
        };
        for entry in text.rsplit(',') {
            let Some(ip) = parse_forwarded_entry(entry) else {
                return current;
            };
            current = ip;
            if !proxies.contains(ip) {
                return ip;
            }
        }
    }
    current
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
