//! Choosing a dyno: a pure function over a view of the candidates (see BEHAVIOR.md "Choosing
//! a dyno"). No clock, no sockets, no allocation: the shell passes what it knows of each dyno
//! and a random source; the result is an index.
//!
//! Tiers, first non-empty wins:
//! 1. with a zone set, the healthy dynos of that zone, while at least half of the zone's
//!    dynos are healthy;
//! 2. the healthy dynos;
//! 3. fail-open: when no dyno at all is healthy, every dyno (health checks can be wrong; a
//!    hard outage is worse than a retry).
//!
//! Dynos already tried for this request are excluded from every tier.

use spaced_config::Balance;

/// What the balancer needs to know about one dyno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Candidate {
    /// Requests in flight on it now.
    pub in_flight: u32,
    /// Neither marked down by active checks nor quarantined.
    pub up: bool,
    /// In this router's zone (always false when no zone is set).
    pub local: bool,
    /// Already tried for this request.
    pub excluded: bool,
}

/// Which tier a pick came from (for tests and the simulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Healthy dynos of this router's zone.
    Zone,
    /// Healthy dynos.
    Healthy,
    /// Every dyno: none was healthy.
    FailOpen,
}

/// Picks a dyno among `n`, described by `cand(i)`. `cursor` is the round-robin counter
/// (the caller increments it per pick), `rand(k)` returns a uniform number in `0..k`
/// (`k >= 1`). Returns the index and the tier, or `None` when every dyno is excluded (or
/// there is none).
pub fn pick(
    balance: Balance,
    n: usize,
    cand: impl Fn(usize) -> Candidate,
    cursor: usize,
    mut rand: impl FnMut(usize) -> usize,
) -> Option<(usize, Tier)> {
    let (tier, filter) = tier(n, &cand)?;
    let eligible = |i: usize| filter(&cand(i));
    let count = (0..n).filter(|&i| eligible(i)).count();
    if count == 0 {
        return None;
    }
    let k = match balance {
        Balance::Random => rand(count),
        Balance::RoundRobin => cursor % count,
        Balance::LeastRequest => {
            if count == 1 {
                0
            } else {
                let a = rand(count);
                let mut b = rand(count - 1);
                if b >= a {
                    b += 1;
                }
                let (ia, ib) = (nth(n, &eligible, a)?, nth(n, &eligible, b)?);
                // Ties go to the first draw, which is itself random.
                let chosen = if cand(ib).in_flight < cand(ia).in_flight {
                    ib
                } else {
                    ia
                };
                return Some((chosen, tier));
            }
        }
    };
    nth(n, &eligible, k).map(|i| (i, tier))
}

type Filter = fn(&Candidate) -> bool;

/// The tier to pick from and its membership test.
fn tier(n: usize, cand: &impl Fn(usize) -> Candidate) -> Option<(Tier, Filter)> {
    let (mut local, mut local_up, mut up, mut open) = (0usize, 0usize, 0usize, 0usize);
    let (mut local_up_free, mut up_free) = (0usize, 0usize);
    for i in 0..n {
        let c = cand(i);
        if c.local {
            local += 1;
            if c.up {
                local_up += 1;
                local_up_free += usize::from(!c.excluded);
            }
        }
        if c.up {
            up += 1;
            up_free += usize::from(!c.excluded);
        }
        open += usize::from(!c.excluded);
    }
    // A zone is preferred while at least half of its dynos are healthy.
    if local > 0 && local_up * 2 >= local && local_up_free > 0 {
        return Some((Tier::Zone, |c| c.local && c.up && !c.excluded));
    }
    if up_free > 0 {
        return Some((Tier::Healthy, |c| c.up && !c.excluded));
    }
    if up == 0 && open > 0 {
        return Some((Tier::FailOpen, |c| !c.excluded));
    }
    None
}

/// The index of the `k`-th eligible dyno.
fn nth(n: usize, eligible: &impl Fn(usize) -> bool, k: usize) -> Option<usize> {
    (0..n).filter(|&i| eligible(i)).nth(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(in_flight: u32) -> Candidate {
        Candidate {
            in_flight,
            up: true,
            ..Candidate::default()
        }
    }
    fn down() -> Candidate {
        Candidate::default()
    }

    fn run(b: Balance, cs: &[Candidate], cursor: usize, seed: u64) -> Option<(usize, Tier)> {
        let mut rng = fastrand::Rng::with_seed(seed);
        pick(b, cs.len(), |i| cs[i], cursor, |k| rng.usize(..k))
    }

    #[test]
    fn empty_is_none() {
        for b in [Balance::LeastRequest, Balance::RoundRobin, Balance::Random] {
            assert_eq!(run(b, &[], 0, 1), None);
        }
    }

    #[test]
    fn round_robin_cycles_over_healthy() {
        let cs = [up(0), down(), up(0), up(0)];
        let picks: Vec<usize> = (0..6)
            .map(|c| run(Balance::RoundRobin, &cs, c, 1).unwrap().0)
            .collect();
        assert_eq!(picks, vec![0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn least_request_prefers_fewer_in_flight() {
        let cs = [up(10), up(0)];
        for seed in 0..50 {
            assert_eq!(
                run(Balance::LeastRequest, &cs, 0, seed),
                Some((1, Tier::Healthy))
            );
        }
    }

    #[test]
    fn least_request_never_picks_the_busiest_of_three_when_others_idle() {
        let cs = [up(0), up(100), up(0)];
        let mut seen = [0; 3];
        for seed in 0..300 {
            seen[run(Balance::LeastRequest, &cs, 0, seed).unwrap().0] += 1;
        }
        // The busiest can only win a draw against itself, which P2C never makes.
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 0 && seen[2] > 0);
    }

    #[test]
    fn random_spreads() {
        let cs = [up(0), up(0), up(0)];
        let mut seen = [0; 3];
        for seed in 0..300 {
            seen[run(Balance::Random, &cs, 0, seed).unwrap().0] += 1;
        }
        assert!(seen.iter().all(|&s| s > 0));
    }

    #[test]
    fn fail_open_when_all_down() {
        let cs = [down(), down()];
        let (_, tier) = run(Balance::Random, &cs, 0, 3).unwrap();
        assert_eq!(tier, Tier::FailOpen);
    }

    #[test]
    fn excluded_are_skipped_and_exhaustion_is_none() {
        let mut cs = [up(0), up(0)];
        cs[0].excluded = true;
        assert_eq!(
            run(Balance::RoundRobin, &cs, 0, 1),
            Some((1, Tier::Healthy))
        );
        cs[1].excluded = true;
        assert_eq!(run(Balance::RoundRobin, &cs, 0, 1), None);
    }

    #[test]
    fn healthy_exhausted_does_not_fall_open_while_some_are_up() {
        let mut cs = [up(0), down()];
        cs[0].excluded = true;
        assert_eq!(run(Balance::Random, &cs, 0, 1), None);
    }

    #[test]
    fn zone_preferred_while_half_healthy() {
        let local = |up: bool| Candidate {
            up,
            local: true,
            ..Candidate::default()
        };
        // 1 of 2 local up: preferred.
        let cs = [local(true), local(false), up(0), up(0)];
        for c in 0..10 {
            assert_eq!(run(Balance::RoundRobin, &cs, c, 1), Some((0, Tier::Zone)));
        }
        // 1 of 3 local up: not preferred any more.
        let cs = [local(true), local(false), local(false), up(0)];
        let tiers: Vec<Tier> = (0..4)
            .map(|c| run(Balance::RoundRobin, &cs, c, 1).unwrap().1)
            .collect();
        assert!(tiers.iter().all(|t| *t == Tier::Healthy));
    }
}
