//! `IpSet::contains` at 10 to 1M CIDRs, IPv4 and IPv6: the per-connection admission check.
//! Target: under 50 ns at 100k CIDRs, roughly independent of size.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use spaced_config::IpSet;

/// splitmix64: deterministic input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const SIZES: [usize; 4] = [10, 1_000, 100_000, 1_000_000];

/// `n` random networks with prefixes from /16 to /32 (v4) or /32 to /128 (v6), so that
/// after merging most stay separate ranges.
fn nets(rng: &mut Rng, n: usize, v6: bool) -> Vec<IpNet> {
    (0..n)
        .map(|_| {
            let r = rng.next();
            if v6 {
                let a = (u128::from(rng.next()) << 64) | u128::from(r);
                let p = 32 + (r % 97) as u8;
                IpNet::V6(
                    Ipv6Net::new(Ipv6Addr::from(a), p)
                        .expect("prefix <= 128")
                        .trunc(),
                )
            } else {
                let p = 16 + (r >> 32) as u8 % 17;
                IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(r as u32), p)
                        .expect("prefix <= 32")
                        .trunc(),
                )
            }
        })
        .collect()
}

/// Probes: half inside some network of the set, half random.
fn probes(rng: &mut Rng, nets: &[IpNet]) -> Vec<IpAddr> {
    (0..4096)
        .map(|i| {
            if i % 2 == 0 {
                let net = nets[rng.next() as usize % nets.len()];
                net.network()
            } else if matches!(nets[0], IpNet::V4(_)) {
                IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(
                    (u128::from(rng.next()) << 64) | u128::from(rng.next()),
                ))
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipset");
    for (family, v6) in [("contains_v4", false), ("contains_v6", true)] {
        for n in SIZES {
            let mut rng = Rng(n as u64 ^ u64::from(v6));
            let nets = nets(&mut rng, n, v6);
            let set = IpSet::from_nets(nets.iter().copied());
            let probes = probes(&mut rng, &nets);
            let mut i = 0usize;
            group.bench_function(format!("{family}/{n}"), |b| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    black_box(set.contains(black_box(probes[i])))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
