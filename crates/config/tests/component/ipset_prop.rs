//! `IpSet` against a naive oracle: a linear scan over the `ipnet` networks, with mapped
//! IPv6 folded to IPv4 as CONFIG.md says, on both the rule and the probe side. A v6 rule
//! is a mapped rule only when it lies inside `::ffff:0:0/96`; a wider one (`::/0`) is
//! IPv6 only (crates/config/README.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use spaced_config::{IpSet, canonical};

const MAPPED: u128 = 0xffff_0000_0000;

fn net_v4() -> impl Strategy<Value = IpNet> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, p)| {
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(a), p)
                .expect("prefix is in range")
                .trunc(),
        )
    })
}

fn net_v6() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, p)| {
        IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from(a), p)
                .expect("prefix is in range")
                .trunc(),
        )
    })
}

/// `::ffff:a.b.c.d/96+p`, and a few short prefixes that straddle the mapped block.
fn net_mapped() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 96u8..=128).prop_map(|(a, p)| {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(MAPPED | u128::from(a)), p)
                    .expect("prefix is in range")
                    .trunc(),
            )
        }),
        (any::<u32>(), 80u8..96).prop_map(|(a, p)| {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(MAPPED | u128::from(a)), p)
                    .expect("prefix is in range")
                    .trunc(),
            )
        }),
    ]
}

fn nets() -> impl Strategy<Value = Vec<IpNet>> {
    prop::collection::vec(prop_oneof![net_v4(), net_v6(), net_mapped()], 0..24)
}

/// Many narrow networks, so that the merged set is large enough to be indexed.
fn many_narrow_nets() -> impl Strategy<Value = Vec<IpNet>> {
    let v4 = (any::<u32>(), 20u8..=32).prop_map(|(a, p)| {
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(a), p)
                .expect("prefix is in range")
                .trunc(),
        )
    });
    // Clustered in one /16 as well, where buckets fill unevenly.
    let v4_clustered = (any::<u16>(), 24u8..=32).prop_map(|(a, p)| {
        let a = 0x0a0b_0000 | u32::from(a);
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(a), p)
                .expect("prefix is in range")
                .trunc(),
        )
    });
    let v6 = (any::<u128>(), 64u8..=128).prop_map(|(a, p)| {
        IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from(a), p)
                .expect("prefix is in range")
                .trunc(),
        )
    });
    let mapped = (any::<u32>(), 116u8..=128).prop_map(|(a, p)| {
        let a = Ipv6Addr::from(MAPPED | u128::from(a));
        IpNet::V6(Ipv6Net::new(a, p).expect("prefix is in range").trunc())
    });
    prop::collection::vec(prop_oneof![v4, v4_clustered, v6, mapped], 150..400)
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
    ]
}

fn oracle(nets: &[IpNet], probe: IpAddr) -> bool {
    let p = canonical(probe);
    nets.iter().any(|net| match (net, p) {
        (IpNet::V4(n), IpAddr::V4(a)) => n.contains(&a),
        (IpNet::V6(n), IpAddr::V6(a)) => n.contains(&a),
        // A /96 or longer that holds a mapped address lies inside the mapped block.
        (IpNet::V6(n), IpAddr::V4(a)) => n.prefix_len() >= 96 && n.contains(&a.to_ipv6_mapped()),
        (IpNet::V4(_), IpAddr::V6(_)) => false,
    })
}

/// The first and last address of each network and their neighbours: where an interval
/// structure goes wrong, random probes rarely look.
fn edges(nets: &[IpNet]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for net in nets {
        match net {
            IpNet::V4(n) => {
                let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                    out.push(IpAddr::V4(Ipv4Addr::from(a)));
                    out.push(IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped()));
                }
            }
            IpNet::V6(n) => {
                let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
                for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                    out.push(IpAddr::V6(Ipv6Addr::from(a)));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn contains_matches_a_linear_scan(nets in nets(), probes in prop::collection::vec(addr(), 0..32)) {
        let set = IpSet::from_nets(nets.iter().copied());
        prop_assert_eq!(set.source_len(), nets.len());
        for probe in probes.into_iter().chain(edges(&nets)) {
            prop_assert_eq!(set.contains(probe), oracle(&nets, probe), "probe {}", probe);
        }
    }

    #[test]
    fn ranges_are_sorted_disjoint_and_not_adjacent(nets in nets()) {
        let set = IpSet::from_nets(nets);
        let v4: Vec<(u32, u32)> = set.v4_ranges().map(|(a, b)| (a.into(), b.into())).collect();
        for w in v4.windows(2) {
            prop_assert!(w[0].0 <= w[0].1 && w[0].1.checked_add(1).is_some_and(|n| n < w[1].0));
        }
        let v6: Vec<(u128, u128)> = set.v6_ranges().map(|(a, b)| (a.into(), b.into())).collect();
        for w in v6.windows(2) {
            prop_assert!(w[0].0 <= w[0].1 && w[0].1.checked_add(1).is_some_and(|n| n < w[1].0));
        }
    }
}

proptest! {
    // Large sets: fewer cases, each with hundreds of networks and thousands of probes.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn indexed_contains_matches_a_linear_scan(nets in many_narrow_nets(), probes in prop::collection::vec(addr(), 0..64)) {
        let set = IpSet::from_nets(nets.iter().copied());
        for probe in probes.into_iter().chain(edges(&nets)) {
            prop_assert_eq!(set.contains(probe), oracle(&nets, probe), "probe {}", probe);
        }
    }
}
