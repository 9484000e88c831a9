//! A seeded simulation of the balancer and health cores: random check reports, connect
//! failures, clock jumps, in-flight changes and reloads (state kept by address), with the
//! invariants of BEHAVIOR.md "Choosing a dyno" checked after every step. A failure names
//! its seed; rerun one with `SIM_SEED=<n>`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use spaced_config::Balance;
use spaced_router::balance::{self, Candidate, Tier};
use spaced_router::health::{self, Active, Transition};

#[derive(Debug, Clone)]
struct Dyno {
    active: Active,
    fails: u32,
    quarantined_until: u64,
    in_flight: u32,
    local: bool,
}

struct Sim {
    rng: fastrand::Rng,
    now: u64,
    /// Keyed by "address": state survives reloads for dynos that stay.
    dynos: BTreeMap<u32, Dyno>,
    next_addr: u32,
    zone: bool,
    balance: Balance,
    cursor: usize,
    unhealthy_after: u32,
    healthy_after: u32,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let balance = [Balance::LeastRequest, Balance::RoundRobin, Balance::Random][rng.usize(..3)];
        let mut s = Self {
            zone: rng.bool(),
            balance,
            now: 0,
            dynos: BTreeMap::new(),
            next_addr: 0,
            cursor: 0,
            unhealthy_after: rng.u32(1..4),
            healthy_after: rng.u32(1..4),
            rng,
        };
        let n = s.rng.usize(0..8);
        s.reload(n);
        s
    }

    fn reload(&mut self, keep_and_add: usize) {
        let keys: Vec<u32> = self.dynos.keys().copied().collect();
        for k in keys {
            if self.rng.bool() {
                self.dynos.remove(&k);
            }
        }
        for _ in 0..keep_and_add.saturating_sub(self.dynos.len()) {
            self.next_addr += 1;
            let local = self.zone && self.rng.bool();
            self.dynos.insert(
                self.next_addr,
                Dyno {
                    active: Active::new(),
                    fails: 0,
                    quarantined_until: 0,
                    in_flight: 0,
                    local,
                },
            );
        }
    }

    fn list(&self) -> Vec<(u32, Dyno)> {
        self.dynos.iter().map(|(k, d)| (*k, d.clone())).collect()
    }

    fn step(&mut self, seed: u64, step: usize) {
        let ctx = format!("seed {seed} step {step}");
        match self.rng.usize(..6) {
            0 => {
                // A check result.
                if let Some(&k) = self.random_key() {
                    let ok = self.rng.bool();
                    let (ua, ha) = (self.unhealthy_after, self.healthy_after);
                    let d = self.dynos.get_mut(&k).unwrap();
                    let was_up = d.active.is_up();
                    d.fails = if ok { 0 } else { d.fails + 1 };
                    let t = d.active.observe(ok, ua, ha);
                    match t {
                        Some(Transition::Down) => assert!(was_up && !ok, "{ctx}: bad down"),
                        Some(Transition::Up) => assert!(!was_up && ok, "{ctx}: bad up"),
                        None => {}
                    }
                    if was_up && d.fails >= ua {
                        assert!(!d.active.is_up(), "{ctx}: {ua} failures did not mark down");
                    }
                }
            }
            1 => {
                if let Some(&k) = self.random_key() {
                    let now = self.now;
                    self.dynos.get_mut(&k).unwrap().quarantined_until =
                        health::quarantine_until(now);
                }
            }
            2 => self.now += self.rng.u64(0..7_000),
            3 => {
                let n = self.rng.usize(0..8);
                self.reload(n);
            }
            4 => {
                if let Some(&k) = self.random_key() {
                    let d = self.dynos.get_mut(&k).unwrap();
                    d.in_flight = if self.rng.bool() {
                        d.in_flight + self.rng.u32(1..20)
                    } else {
                        0
                    };
                }
            }
            _ => self.pick_and_check(&ctx),
        }
    }

    fn random_key(&mut self) -> Option<&u32> {
        let n = self.dynos.len();
        if n == 0 {
            return None;
        }
        let i = self.rng.usize(..n);
        self.dynos.keys().nth(i)
    }

    fn pick_and_check(&mut self, ctx: &str) {
        let list = self.list();
        let now = self.now;
        let cands: Vec<Candidate> = list
            .iter()
            .map(|(_, d)| Candidate {
                in_flight: d.in_flight,
                up: health::is_up(!d.active.is_up(), d.quarantined_until, now),
                local: d.local,
                excluded: false,
            })
            .collect();
        let mut cands = cands;
        for c in cands.iter_mut() {
            c.excluded = self.rng.usize(..4) == 0;
        }
        self.cursor += 1;
        let rng = &mut self.rng;
        let picked = balance::pick(
            self.balance,
            cands.len(),
            |i| cands[i],
            self.cursor,
            |k| rng.usize(..k),
        );
        let up_free = cands.iter().filter(|c| c.up && !c.excluded).count();
        let any_up = cands.iter().any(|c| c.up);
        let free = cands.iter().filter(|c| !c.excluded).count();
        let local = cands.iter().filter(|c| c.local).count();
        let local_up = cands.iter().filter(|c| c.local && c.up).count();
        let local_up_free = cands
            .iter()
            .filter(|c| c.local && c.up && !c.excluded)
            .count();
        match picked {
            None => {
                assert!(
                    up_free == 0,
                    "{ctx}: none picked while a healthy dyno was free"
                );
                assert!(
                    any_up || free == 0,
                    "{ctx}: no fail-open while every dyno is down"
                );
            }
            Some((i, tier)) => {
                let c = cands[i];
                assert!(!c.excluded, "{ctx}: picked an excluded dyno");
                match tier {
                    Tier::Zone => {
                        assert!(c.local && c.up, "{ctx}: zone tier picked {c:?}");
                        assert!(
                            local_up * 2 >= local,
                            "{ctx}: zone preferred below half healthy"
                        );
                    }
                    Tier::Healthy => {
                        assert!(c.up, "{ctx}: healthy tier picked a down dyno");
                        assert!(
                            local_up_free == 0 || local_up * 2 < local,
                            "{ctx}: zone not preferred while healthy"
                        );
                    }
                    Tier::FailOpen => assert!(!any_up, "{ctx}: failed open while a dyno was up"),
                }
                if self.balance == Balance::LeastRequest {
                    let same_tier: Vec<u32> = cands
                        .iter()
                        .filter(|o| !o.excluded && o.up == c.up && (tier != Tier::Zone || o.local))
                        .map(|o| o.in_flight)
                        .collect();
                    let max = same_tier.iter().copied().max().unwrap_or(0);
                    let unique_max = same_tier.iter().filter(|&&v| v == max).count() == 1;
                    if same_tier.len() >= 2 && unique_max {
                        assert!(c.in_flight < max, "{ctx}: P2C picked the unique busiest");
                    }
                }
            }
        }
    }
}

#[test]
fn balancer_and_health_hold_their_invariants() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..300).collect(),
    };
    for seed in seeds {
        let mut sim = Sim::new(seed);
        for step in 0..400 {
            sim.step(seed, step);
        }
    }
}
