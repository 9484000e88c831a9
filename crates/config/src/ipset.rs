//! Sets of IP ranges compiled to sorted, disjoint intervals with a radix index: a lookup
//! touches a bounded number of cache lines whatever the number of CIDRs, and never scans
//! rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use self::ranges::Ranges;

mod ranges;

/// Folds an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to the IPv4 address.
///
/// Every allowlist check goes through this: otherwise a dual-stack socket, which reports
/// IPv4 clients as mapped IPv6, would slip past IPv4 rules.
///
/// It is the standard library's [`IpAddr::to_canonical`] (mapped addresses only), the
/// same fold `spaced_net::canonical_addr` applies to socket addresses: one rule for the
/// whole workspace, with a name here for the policy code that calls it everywhere.
#[inline]
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The IPv4 address an IPv6 destination leads to, for the forms that embed one (after
/// [`canonical`] has folded IPv4-mapped `::ffff:0:0/96`):
/// - NAT64, well-known `64:ff9b::/96` (RFC 6052) and local-use `64:ff9b:1::/48` (RFC
///   8215, read with the common /96 layout): the last 32 bits;
/// - 6to4 `2002::/16` (RFC 3056): bits 16 to 47, where the relay delivers;
/// - IPv4-compatible `::/96` (RFC 4291, deprecated; `::` and `::1` excepted) and SIIT
///   `::ffff:0:0:0/96` (RFC 2765): the last 32 bits.
///
/// The egress matches IPv4 `allow`/`deny` rules against this address too: a translator
/// or relay on the path turns `64:ff9b::a9fe:a9fe` into `169.254.169.254`, so a rule that
/// stopped only the IPv4 form would be no rule.
///
/// ```
/// use spaced_config::embedded_v4;
/// let v4 = |s: &str| embedded_v4(s.parse().unwrap());
/// assert_eq!(v4("64:ff9b::169.254.169.254"), Some("169.254.169.254".parse().unwrap()));
/// assert_eq!(v4("2002:7f00:1::"), Some("127.0.0.1".parse().unwrap()));
/// assert_eq!(v4("2001:db8::1"), None);
/// ```
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let bits = u128::from(ip);
    let last32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(last32),
        [0x2002, a, b, ..] => Some(Ipv4Addr::from((u32::from(a) << 16) | u32::from(b))),
        [0, 0, 0, 0, 0, 0, _, _] if bits > 1 => Some(last32),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last32),
        _ => None,
    }
}

/// The inclusive range one CIDR covers, in the family it matches in.
enum Span {
    V4(u32, u32),
    V6(u128, u128),
}

/// `net` as a rule: IPv4 networks, and IPv6 ones inside the mapped block (`::ffff:0:0/96`
/// and longer), hold IPv4 addresses; any other IPv6 network holds IPv6 addresses only. Its
/// share of the mapped block, if any, matches nothing, because probes are canonicalised.
fn span(net: IpNet) -> Span {
    const MAPPED: u128 = 0xffff_0000_0000;
    match net {
        IpNet::V4(n) => Span::V4(u32::from(n.network()), u32::from(n.broadcast())),
        IpNet::V6(n) => {
            let (first, last) = (u128::from(n.network()), u128::from(n.broadcast()));
            if n.prefix_len() >= 96 && (first >> 32) == (MAPPED >> 32) {
                Span::V4(first as u32, last as u32)
            } else {
                Span::V6(first, last)
            }
        }
    }
}

/// Whether the single rule `net` holds `ip`, exactly as an [`IpSet`] built from it would
/// answer; for callers that must name the rule that matched.
pub(crate) fn net_holds(net: IpNet, ip: IpAddr) -> bool {
    match (span(net), canonical(ip)) {
        (Span::V4(first, last), IpAddr::V4(a)) => (first..=last).contains(&u32::from(a)),
        (Span::V6(first, last), IpAddr::V6(a)) => (first..=last).contains(&u128::from(a)),
        _ => false,
    }
}

/// An immutable set of IPv4 and IPv6 ranges.
///
/// ```
/// use spaced_config::IpSet;
/// let set = IpSet::from_nets(["10.0.0.0/8".parse().unwrap(), "::ffff:192.0.2.0/120".parse().unwrap()]);
/// assert!(set.contains("10.1.2.3".parse().unwrap()));
/// assert!(set.contains("192.0.2.9".parse().unwrap()));
/// assert!(set.contains("::ffff:10.0.0.1".parse().unwrap()));
/// assert!(!set.contains("11.0.0.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    /// IPv4, mapped IPv6 folded in.
    v4: Ranges<u32>,
    /// IPv6 outside the mapped block.
    v6: Ranges<u128>,
    /// How many CIDRs the set was built from, for operator messages ("(2 ranges)").
    sources: usize,
}

impl IpSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Compiles CIDRs into ranges. IPv4-mapped IPv6 networks (`::ffff:0:0/96` and longer) are
    /// folded into IPv4 ranges.
    ///
    /// A wider IPv6 range that merely contains the mapped block (`::/0`, `::/80`) is IPv6
    /// only, as in nginx and Envoy: `trusted = ["10.0.0.0/8", "::/0"]` reads as "this IPv4
    /// range and all of IPv6", and must not open the rule to every IPv4 client.
    pub fn from_nets<I: IntoIterator<Item = IpNet>>(nets: I) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut sources = 0;
        for net in nets {
            sources += 1;
            match span(net) {
                Span::V4(first, last) => v4.push((first, last)),
                Span::V6(first, last) => v6.push((first, last)),
            }
        }
        Self {
            v4: Ranges::new(v4),
            v6: Ranges::new(v6),
            sources,
        }
    }

    /// Whether `ip` (canonicalised first) is in the set.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => self.v4.contains(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.contains(u128::from(v6)),
        }
    }

    /// Whether no address at all is in the set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// How many CIDRs the set was compiled from.
    pub fn source_len(&self) -> usize {
        self.sources
    }

    /// How many disjoint ranges the set holds after merging.
    pub fn range_len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The IPv4 ranges, inclusive, for callers that render or diff the set.
    pub fn v4_ranges(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.v4
            .iter()
            .map(|(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
    }

    /// The IPv6 ranges, inclusive.
    pub fn v6_ranges(&self) -> impl Iterator<Item = (Ipv6Addr, Ipv6Addr)> + '_ {
        self.v6
            .iter()
            .map(|(a, b)| (Ipv6Addr::from(a), Ipv6Addr::from(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> IpSet {
        IpSet::from_nets(list.iter().map(|s| s.parse::<IpNet>().unwrap()))
    }

    #[test]
    fn merges_and_looks_up() {
        let s = set(&[
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.0.128/25",
            "192.0.2.1/32",
        ]);
        assert_eq!(s.range_len(), 2);
        assert!(s.contains("10.0.1.255".parse().unwrap()));
        assert!(!s.contains("10.0.2.0".parse().unwrap()));
        assert!(s.contains("192.0.2.1".parse().unwrap()));
        assert!(!s.contains("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn mapped_addresses_fold_both_ways() {
        let s = set(&["127.0.0.2/32"]);
        assert!(s.contains("::ffff:127.0.0.2".parse().unwrap()));
        let s = set(&["::ffff:127.0.0.0/104"]);
        assert!(s.contains("127.9.9.9".parse().unwrap()));
        let v6only = set(&["2001:db8::/32"]);
        assert!(!v6only.contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn ipv6_ranges_around_the_mapped_block_are_ipv6_only() {
        for wide in ["::/0", "::/80", "::/95"] {
            let s = set(&["10.0.0.0/8", wide]);
            assert!(s.contains("10.1.2.3".parse().unwrap()), "{wide}");
            assert!(s.contains("2001:db8::1".parse().unwrap()) == (wide == "::/0"));
            assert!(s.contains("::1".parse().unwrap()), "{wide}");
            for client in [
                "192.168.1.1",
                "::ffff:192.168.1.1",
                "0.0.0.0",
                "255.255.255.255",
            ] {
                assert!(!s.contains(client.parse().unwrap()), "{wide} {client}");
            }
        }
        // The default `trusted` still admits everyone, because it names both families.
        let default = set(&["0.0.0.0/0", "::/0"]);
        assert!(default.contains("192.168.1.1".parse().unwrap()));
        assert!(default.contains("::ffff:192.168.1.1".parse().unwrap()));
        assert!(default.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn one_rule_answers_as_its_set_does() {
        let nets = [
            "10.0.0.0/8",
            "::ffff:192.0.2.0/120",
            "::/0",
            "2001:db8::/32",
            "::/95",
        ];
        let probes = [
            "10.1.1.1",
            "::ffff:10.1.1.1",
            "192.0.2.7",
            "1.2.3.4",
            "2001:db8::9",
            "::1",
        ];
        for net in nets {
            let n: IpNet = net.parse().unwrap();
            for probe in probes {
                let ip: IpAddr = probe.parse().unwrap();
                assert_eq!(
                    net_holds(n, ip),
                    IpSet::from_nets([n]).contains(ip),
                    "{net} {probe}"
                );
            }
        }
    }

    #[test]
    fn full_ranges() {
        let s = set(&["0.0.0.0/0"]);
        assert!(s.contains("255.255.255.255".parse().unwrap()));
        assert!(s.contains("0.0.0.0".parse().unwrap()));
        assert!(!set(&[]).contains("0.0.0.0".parse().unwrap()));
    }
}
