//! Destination policy (pure): every resolved address is checked against `deny`, `allow`
//! and `ports` before anything is dialled, and a refusal names the rule that made it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use spaced_config::{Egress, IpSet};

/// A destination the policy forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The port is not in `egress.ports`.
    #[error("port {0} is not in egress.ports")]
    Port(u16),
    /// The address is in `egress.deny`; `rule` is the matching rule.
    #[error("{addr} is denied by egress.deny {rule}")]
    Deny {
        /// The address.
        addr: IpAddr,
        /// The CIDR of the deny list it fell in, as configured (`127.0.0.0/8`).
        rule: String,
    },
    /// `egress.allow` is set and the address is not in it.
    #[error("{0} is not in egress.allow")]
    NotAllowed(IpAddr),
}

impl Denied {
    /// The rule's name for the log line (`rule=`).
    pub fn rule(&self) -> String {
        match self {
            Self::Port(_) => "ports".to_owned(),
            Self::Deny { rule, .. } => format!("deny:{rule}"),
            Self::NotAllowed(_) => "allow".to_owned(),
        }
    }
}

/// An inclusive address range of a compiled [`IpSet`], shown as a CIDR when it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    first: IpAddr,
    last: IpAddr,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last, bits) = match (self.first, self.last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return write!(f, "{}-{}", self.first, self.last),
        };
        let span = last.wrapping_sub(first).wrapping_add(1);
        // A CIDR: the size is a power of two (or the whole space) and the start aligned to it.
        let whole = last.wrapping_sub(first)
            == if bits == 32 {
                u128::from(u32::MAX)
            } else {
                u128::MAX
            };
        if whole {
            return write!(f, "{}/0", self.first);
        }
        if span.is_power_of_two() && first % span == 0 {
            let prefix = bits - span.trailing_zeros();
            return write!(f, "{}/{prefix}", self.first);
        }
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Checks one destination against the policy.
///
/// An IPv6 destination that embeds an IPv4 address (NAT64, 6to4, IPv4-compatible, SIIT:
/// [`spaced_config::embedded_v4`]) is matched as itself and as that IPv4 address: denied
/// when either is denied, allowed when either is allowed. A translator or relay on the way
/// delivers to the IPv4 address, so `169.254.0.0/16` must stop `64:ff9b::a9fe:a9fe` too.
///
/// # Errors
/// The first rule that forbids it: `ports`, then `deny` (which wins over `allow`), then
/// `allow`.
pub fn vet(egress: &Egress, dest: SocketAddr) -> Result<(), Denied> {
    if !egress.ports.allows(dest.port()) {
        return Err(Denied::Port(dest.port()));
    }
    let ip = spaced_config::canonical(dest.ip());
    let inner = match ip {
        IpAddr::V6(v6) => spaced_config::embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    for form in std::iter::once(ip).chain(inner) {
        if egress.deny.contains(form) {
            // The configured rule; the merged range only if the two ever disagreed.
            let rule = egress.deny_rule(form).map_or_else(
                || {
                    range_of(&egress.deny, form)
                        .unwrap_or(Range {
                            first: form,
                            last: form,
                        })
                        .to_string()
                },
                |net| net.to_string(),
            );
            return Err(Denied::Deny { addr: ip, rule });
        }
    }
    if !egress.allow.is_empty()
        && !egress.allow.contains(ip)
        && !inner.is_some_and(|v4| egress.allow.contains(v4))
    {
        return Err(Denied::NotAllowed(ip));
    }
    Ok(())
}

/// Checks every address a name resolved to: one forbidden address refuses the name, since
/// a DNS answer mixing public and internal addresses is what a rebinding attack looks like.
///
/// # Errors
/// The refusal of the first forbidden address.
pub fn vet_all(egress: &Egress, dests: &[SocketAddr]) -> Result<(), Denied> {
    dests.iter().try_for_each(|&d| vet(egress, d))
}

/// The range of `set` holding `ip` (only on the refusal path: a scan is fine).
fn range_of(set: &IpSet, ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => set.v4_ranges().find(|&(a, b)| a <= v4 && v4 <= b).map(
            |(a, b): (Ipv4Addr, Ipv4Addr)| Range {
                first: a.into(),
                last: b.into(),
            },
        ),
        IpAddr::V6(v6) => set.v6_ranges().find(|&(a, b)| a <= v6 && v6 <= b).map(
            |(a, b): (Ipv6Addr, Ipv6Addr)| Range {
                first: a.into(),
                last: b.into(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn egress(extra: &str) -> Egress {
        let text = format!(
            "[space]\nname = \"t\"\n[egress]\nlisten = [\"127.0.0.1:0\"]\nsource_ips = [\"127.0.0.10\"]\n{extra}\n"
        );
        let src = spaced_config::Source {
            name: "t.toml",
            dir: Path::new("."),
            read: &|p| std::fs::read(p),
        };
        spaced_config::parse(text.as_bytes(), &src).unwrap().egress
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_deny_names_the_range() {
        let e = egress("");
        let err = vet(&e, sa("127.0.0.1:80")).unwrap_err();
        assert_eq!(err.rule(), "deny:127.0.0.0/8");
        let err = vet(&e, sa("169.254.169.254:80")).unwrap_err();
        assert_eq!(err.rule(), "deny:169.254.0.0/16");
        assert!(vet(&e, sa("[::1]:80")).is_err());
        assert!(vet(&e, sa("[::ffff:127.0.0.1]:80")).is_err());
        assert!(vet(&e, sa("93.184.216.34:443")).is_ok());
    }

    /// Issue 19: the IPv6 forms that embed an IPv4 address are matched as that address too,
    /// and the IPv6 ranges of the built-in list; the refusal names the rule.
    #[test]
    fn embedded_ipv4_forms_are_denied_by_the_ipv4_rule() {
        let e = egress("");
        for (dest, rule) in [
            ("[64:ff9b::a9fe:a9fe]:80", "deny:169.254.0.0/16"),
            ("[64:ff9b::7f00:1]:80", "deny:127.0.0.0/8"),
            ("[64:ff9b:1::a9fe:a9fe]:80", "deny:64:ff9b:1::/48"),
            ("[2002:a9fe:a9fe::1]:80", "deny:169.254.0.0/16"),
            ("[2002:7f00:1::]:80", "deny:127.0.0.0/8"),
            ("[2002:6440::]:80", "deny:100.64.0.0/10"),
            ("[2002:f000::]:80", "deny:240.0.0.0/4"),
            ("[::169.254.169.254]:80", "deny:::/96"),
            ("[::ffff:0:a9fe:a9fe]:80", "deny:::ffff:0:0:0/96"),
            ("[::ffff:169.254.169.254]:80", "deny:169.254.0.0/16"),
            ("[::1]:80", "deny:::1/128"),
            ("[::]:80", "deny:::/128"),
            ("[fec0::1]:80", "deny:fec0::/10"),
            ("[100::1]:80", "deny:100::/64"),
            ("[ff02::1]:80", "deny:ff00::/8"),
            ("[fe80::1]:80", "deny:fe80::/10"),
        ] {
            let err = vet(&e, sa(dest)).unwrap_err();
            assert_eq!(err.rule(), rule, "{dest}");
        }
        // Public addresses in the same forms pass.
        for dest in [
            "[64:ff9b::5db8:d822]:443",
            "[2002:5db8:d822::1]:443",
            "[2001:db8::1]:443",
            "[2606:4700::1111]:443",
        ] {
            assert_eq!(vet(&e, sa(dest)), Ok(()), "{dest}");
        }
        // The file's IPv4 rules, with the built-in list off.
        let e = egress("default_deny = false\ndeny = [\"169.254.0.0/16\"]");
        for dest in ["[64:ff9b::a9fe:a9fe]:80", "[2002:a9fe:1::]:80"] {
            assert_eq!(vet(&e, sa(dest)).unwrap_err().rule(), "deny:169.254.0.0/16");
        }
        assert_eq!(vet(&e, sa("[64:ff9b::7f00:1]:80")), Ok(()));
        // An IPv4 allow list admits the same host through NAT64, nothing else.
        let e = egress("allow = [\"93.184.216.0/24\"]");
        assert_eq!(vet(&e, sa("[64:ff9b::5db8:d822]:443")), Ok(()));
        assert_eq!(
            vet(&e, sa("[64:ff9b::5db9:d822]:443")),
            Err(Denied::NotAllowed("64:ff9b::5db9:d822".parse().unwrap()))
        );
        assert!(!e.deny.contains("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn allow_deny_ports() {
        let e =
            egress("deny = [\"10.1.0.0/16\"]\nallow = [\"10.0.0.0/8\"]\nports = [443, \"5432\"]");
        assert_eq!(vet(&e, sa("10.2.0.1:443")), Ok(()));
        assert_eq!(vet(&e, sa("10.2.0.1:5432")), Ok(()));
        assert_eq!(vet(&e, sa("10.2.0.1:80")), Err(Denied::Port(80)));
        assert_eq!(
            vet(&e, sa("10.1.0.1:443")).unwrap_err().rule(),
            "deny:10.1.0.0/16"
        );
        assert_eq!(
            vet(&e, sa("11.0.0.1:443")),
            Err(Denied::NotAllowed("11.0.0.1".parse().unwrap()))
        );
        assert_eq!(Denied::Port(80).rule(), "ports");
        assert_eq!(
            Denied::NotAllowed("11.0.0.1".parse().unwrap()).rule(),
            "allow"
        );
    }

    #[test]
    fn only_default_deny_false_allows_loopback() {
        // An explicit `deny` is added to the built-in list, never replacing it.
        for extra in [
            "deny = []",
            "deny = [\"10.9.0.0/16\"]",
            "default_deny = true",
        ] {
            let e = egress(extra);
            assert!(e.default_deny, "{extra}");
            assert_eq!(
                vet(&e, sa("127.0.0.1:80")).unwrap_err().rule(),
                "deny:127.0.0.0/8",
                "{extra}"
            );
        }
        let e = egress("default_deny = false");
        assert_eq!(vet(&e, sa("127.0.0.1:80")), Ok(()));
        assert!(vet_all(&e, &[sa("127.0.0.1:80"), sa("[::1]:80")]).is_ok());
        let e = egress("default_deny = false\ndeny = [\"127.0.0.2\"]");
        assert!(vet_all(&e, &[sa("127.0.0.1:80"), sa("127.0.0.2:80")]).is_err());
        // The file's rule is named before an overlapping built-in one.
        let e = egress("deny = [\"127.0.0.2\"]");
        assert_eq!(
            vet(&e, sa("127.0.0.2:80")).unwrap_err().rule(),
            "deny:127.0.0.2/32"
        );
    }

    #[test]
    fn range_display() {
        let r = |a: &str, b: &str| {
            Range {
                first: a.parse().unwrap(),
                last: b.parse().unwrap(),
            }
            .to_string()
        };
        assert_eq!(r("10.0.0.0", "10.0.0.255"), "10.0.0.0/24");
        assert_eq!(r("10.0.0.1", "10.0.0.1"), "10.0.0.1/32");
        assert_eq!(r("10.0.0.1", "10.0.0.2"), "10.0.0.1-10.0.0.2");
        assert_eq!(r("0.0.0.0", "255.255.255.255"), "0.0.0.0/0");
        assert_eq!(r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "::/0");
        assert_eq!(
            r("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            "fe80::/10"
        );
    }
}
