//! Which dynos count as down: held down by the router's health checks, or quarantined by a
//! connect failure (BEHAVIOR.md "Precise answers": a quarantined dyno counts as down for
//! zone decisions too). Written by the router, read by the resolver (which leaves such
//! dynos out of answers). Keyed by address so it survives reloads.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

/// The set of dyno addresses currently down. Reads are one `ArcSwap` load; writes (rare: a
/// health transition, a connect failure) take a lock and copy the set.
#[derive(Debug, Default)]
pub struct DynoBoard {
    /// What readers see: marked down ∪ quarantined.
    down: ArcSwap<HashSet<SocketAddr>>,
    /// The two sources, kept apart so one ending does not end the other.
    sources: Mutex<Sources>,
}

#[derive(Debug, Default)]
struct Sources {
    /// Marked down by active health checks.
    marked: HashSet<SocketAddr>,
    /// Quarantined by a connect failure, until the instant given.
    quarantined: HashMap<SocketAddr, Instant>,
}

impl DynoBoard {
    /// An empty board: every dyno is up until a check says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `addr` is down (marked down, or quarantined and not yet expired by
    /// [`DynoBoard::expire`]).
    pub fn is_down(&self, addr: SocketAddr) -> bool {
        self.down.load().contains(&addr)
    }

    /// Marks `addr` down or up (active health checks).
    pub fn set_down(&self, addr: SocketAddr, down: bool) {
        let mut s = self.lock();
        let changed = if down {
            s.marked.insert(addr)
        } else {
            s.marked.remove(&addr)
        };
        if changed {
            self.publish(&s);
        }
    }

    /// Quarantines `addr` until `until` (or later, if it already is). Returns whether it
    /// was not quarantined before: then the caller arranges for [`DynoBoard::expire`] to
    /// run at the deadline.
    pub fn quarantine(&self, addr: SocketAddr, until: Instant) -> bool {
        let mut s = self.lock();
        let fresh = match s.quarantined.get_mut(&addr) {
            Some(t) => {
                *t = (*t).max(until);
                false
            }
            None => {
                s.quarantined.insert(addr, until);
                true
            }
        };
        if fresh {
            self.publish(&s);
        }
        fresh
    }

    /// Ends the quarantine of `addr` if its deadline has passed at `now`; otherwise returns
    /// the deadline (it was extended), so the caller waits again. `None`: not quarantined
    /// any more.
    pub fn expire(&self, addr: SocketAddr, now: Instant) -> Option<Instant> {
        let mut s = self.lock();
        let until = *s.quarantined.get(&addr)?;
        if until > now {
            return Some(until);
        }
        s.quarantined.remove(&addr);
        self.publish(&s);
        None
    }

    /// Forgets every address not in `keep` (dynos removed from the policy).
    pub fn retain(&self, keep: &HashSet<SocketAddr>) {
        let mut s = self.lock();
        s.marked.retain(|a| keep.contains(a));
        s.quarantined.retain(|a, _| keep.contains(a));
        self.publish(&s);
    }

    /// A snapshot of the addresses down.
    pub fn down(&self) -> Arc<HashSet<SocketAddr>> {
        self.down.load_full()
    }

    /// The write side: a panic elsewhere while holding it leaves consistent sets (every
    /// write is a single insert or removal), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Sources> {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, s: &Sources) {
        let set: HashSet<SocketAddr> = s
            .marked
            .iter()
            .chain(s.quarantined.keys())
            .copied()
            .collect();
        self.down.store(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn marked_and_quarantined_are_separate_sources() {
        let b = DynoBoard::new();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let t0 = Instant::now();
        assert!(b.quarantine(a, t0 + Duration::from_secs(5)));
        assert!(
            !b.quarantine(a, t0 + Duration::from_secs(6)),
            "extended, not new"
        );
        assert!(b.is_down(a));
        b.set_down(a, true);
        assert_eq!(b.expire(a, t0), Some(t0 + Duration::from_secs(6)));
        assert_eq!(b.expire(a, t0 + Duration::from_secs(6)), None);
        assert!(b.is_down(a), "still marked down by checks");
        b.set_down(a, false);
        assert!(!b.is_down(a));
        b.quarantine(a, t0);
        b.retain(&HashSet::new());
        assert!(!b.is_down(a));
        assert_eq!(b.expire(a, t0), None);
    }
}
