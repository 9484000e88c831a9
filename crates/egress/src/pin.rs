//! Source-IP pinning by rendezvous (highest random weight) hashing.
//!
//! Every (client key, source IP) pair gets a score; the client uses the source with the
//! highest score, and the next ones in score order when that one cannot be used. Unlike
//! `hash % n`, this keeps assignments stable under pool changes: removing an address moves
//! only the clients whose top score was that address, and adding one moves only the clients
//! for which the newcomer scores highest (about 1/n of them).
//!
//! The hash is fixed and seeded here (FNV-1a and the MurmurHash3 finaliser), not
//! `RandomState`: an app must keep its address across restarts and across replicas of the
//! gateway, so the score may depend on nothing but its inputs.

use std::net::IpAddr;

/// What a client is pinned by: its app name, or its address when it is no app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKey<'a> {
    /// An app, by name.
    App(&'a str),
    /// A client that is no app, by its (canonical) address.
    Addr(IpAddr),
}

/// Fixed seed: changing it would move every app, so it never changes.
const SEED: u64 = 0x5bd1_e995_9e37_79b9;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// 2^64 / φ: spreads the source's hash before it is combined with the key's.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The score of `source` for `key`; the highest score wins.
pub fn score(key: PinKey<'_>, source: IpAddr) -> u64 {
    combine(key_hash(key), source)
}

/// The source to use for `key`: the highest-scoring address of `pool` (ties broken by the
/// address, so the choice never depends on pool order). `None` for an empty pool.
pub fn choose(key: PinKey<'_>, pool: &[IpAddr]) -> Option<IpAddr> {
    let k = key_hash(key);
    pool.iter().copied().max_by_key(|&ip| (combine(k, ip), ip))
}

/// Every address of `pool` in rendezvous order for `key`: the pinned one first, then the
/// fallbacks. Duplicates in `pool` are kept once.
pub fn order(key: PinKey<'_>, pool: &[IpAddr]) -> Vec<IpAddr> {
    let k = key_hash(key);
    let mut scored: Vec<(u64, IpAddr)> = pool.iter().map(|&ip| (combine(k, ip), ip)).collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().map(|(_, ip)| ip).collect()
}

/// The key's half of every score, computed once per choice: FNV-1a over a tagged encoding
/// (an app name and an address can never collide), then mixed.
fn key_hash(key: PinKey<'_>) -> u64 {
    let mut h = Fnv(SEED);
    match key {
        PinKey::App(name) => {
            h.write(b"a");
            h.write(name.as_bytes());
        }
        PinKey::Addr(ip) => {
            h.write(b"i");
            h.write(&ip_word(ip).to_le_bytes());
        }
    }
    fmix64(h.0)
}

/// One source's score for a key hash: the source's own hash, spread, added to the key's and
/// mixed again, so the scores of different sources are independent for every key.
#[inline]
fn combine(key: u64, source: IpAddr) -> u64 {
    fmix64(key.wrapping_add(fmix64(ip_word(source)).wrapping_mul(GOLDEN)))
}

/// An address as one word: IPv4-mapped IPv6 folded to IPv4 (so both pin alike), the
/// families kept apart by a tag above any IPv4 value.
#[inline]
fn ip_word(ip: IpAddr) -> u64 {
    match spaced_config::canonical(ip) {
        IpAddr::V4(v4) => u64::from(u32::from(v4)) | (4 << 56),
        IpAddr::V6(v6) => {
            let v = u128::from(v6);
            fmix64((v >> 64) as u64 ^ fmix64(v as u64 ^ (6 << 56)))
        }
    }
}

struct Fnv(u64);

impl Fnv {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// MurmurHash3's 64-bit finaliser: FNV alone mixes its last bytes poorly, and the source
/// address is exactly the last bytes.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: u8) -> Vec<IpAddr> {
        (0..n)
            .map(|i| IpAddr::from([203, 0, 113, 10 + i]))
            .collect()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("app-{i}")).collect()
    }

    #[test]
    fn empty_pool_has_no_choice() {
        assert_eq!(choose(PinKey::App("api"), &[]), None);
        assert!(order(PinKey::App("api"), &[]).is_empty());
    }

    #[test]
    fn deterministic_and_order_independent() {
        let p = pool(5);
        let mut rev = p.clone();
        rev.reverse();
        for name in names(200) {
            let k = PinKey::App(&name);
            assert_eq!(choose(k, &p), choose(k, &rev));
            assert_eq!(order(k, &p), order(k, &rev));
            assert_eq!(order(k, &p).first().copied(), choose(k, &p));
        }
    }

    #[test]
    fn fixed_values_never_change() {
        // Pinning must survive restarts and upgrades: these values are part of the contract.
        // If this fails, every app in every space would move to another source IP.
        let api = score(PinKey::App("api"), "127.0.0.10".parse().unwrap());
        assert_eq!(api, 0xaeef_823d_22f6_4468);
        let by_addr = score(
            PinKey::Addr("10.0.1.5".parse().unwrap()),
            "2001:db8::1".parse().unwrap(),
        );
        assert_eq!(by_addr, 0x4002_f89d_15e6_a409);
        let a = score(PinKey::App("api"), "127.0.0.10".parse().unwrap());
        let b = score(PinKey::App("api"), "127.0.0.10".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, score(PinKey::App("api"), "127.0.0.11".parse().unwrap()));
        assert_ne!(a, score(PinKey::App("apj"), "127.0.0.10".parse().unwrap()));
    }

    #[test]
    fn mapped_addresses_fold() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let p = pool(3);
        assert_eq!(
            score(PinKey::Addr(v4), p[0]),
            score(PinKey::Addr(mapped), p[0])
        );
    }

    #[test]
    fn app_and_address_keys_differ() {
        let p: IpAddr = "127.0.0.10".parse().unwrap();
        assert_ne!(
            score(PinKey::App("10.0.0.1"), p),
            score(PinKey::Addr("10.0.0.1".parse().unwrap()), p)
        );
    }

    #[test]
    fn balanced_over_two() {
        let p = pool(2);
        let on_first = names(2000)
            .iter()
            .filter(|n| choose(PinKey::App(n), &p) == Some(p[0]))
            .count();
        assert!(
            (800..1200).contains(&on_first),
            "{on_first} of 2000 on the first IP"
        );
    }

    #[test]
    fn removing_moves_only_its_apps() {
        let p = pool(4);
        let removed = p[2];
        let smaller: Vec<IpAddr> = p.iter().copied().filter(|&ip| ip != removed).collect();
        for name in names(1000) {
            let k = PinKey::App(&name);
            let before = choose(k, &p).unwrap();
            let after = choose(k, &smaller).unwrap();
            if before != removed {
                assert_eq!(before, after, "{name} moved though its IP stayed");
            } else {
                // It goes where its rendezvous order said: the second choice.
                assert_eq!(after, order(k, &p)[1]);
            }
        }
    }

    #[test]
    fn adding_moves_about_one_in_n() {
        let p = pool(4);
        let bigger = pool(5);
        let newcomer = bigger[4];
        let all = names(5000);
        let mut moved = 0;
        for name in &all {
            let k = PinKey::App(name);
            let before = choose(k, &p).unwrap();
            let after = choose(k, &bigger).unwrap();
            if before != after {
                assert_eq!(after, newcomer, "{name} moved between old IPs");
                moved += 1;
            }
        }
        // Expect 1/5 = 1000; allow a wide statistical margin.
        assert!((800..1200).contains(&moved), "{moved} of 5000 moved");
    }

    #[test]
    fn duplicates_kept_once() {
        let ip: IpAddr = "127.0.0.10".parse().unwrap();
        assert_eq!(order(PinKey::App("x"), &[ip, ip]), vec![ip]);
    }
}
