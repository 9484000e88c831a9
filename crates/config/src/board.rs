//! Which dynos active health checks hold down: written by the router's checker, read by the
//! resolver (which leaves such dynos out of answers). Keyed by address so it survives reloads.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The set of dyno addresses currently marked down. Reads are one `ArcSwap` load; writes
/// (rare: a health transition) copy the set.
#[derive(Debug, Default)]
pub struct DynoBoard {
    down: ArcSwap<HashSet<SocketAddr>>,
}

impl DynoBoard {
    /// An empty board: every dyno is up until a check says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `addr` is marked down.
    pub fn is_down(&self, addr: SocketAddr) -> bool {
        self.down.load().contains(&addr)
    }

    /// Marks `addr` down or up.
    pub fn set_down(&self, addr: SocketAddr, down: bool) {
        if self.is_down(addr) == down {
            return;
        }
        self.down.rcu(|set| {
            let mut next = HashSet::clone(set);
            if down {
                next.insert(addr);
            } else {
                next.remove(&addr);
            }
            Arc::new(next)
        });
    }

    /// Forgets every address not in `keep` (dynos removed from the policy).
    pub fn retain(&self, keep: &HashSet<SocketAddr>) {
        self.down.rcu(|set| {
            Arc::new(
                set.iter()
                    .copied()
                    .filter(|a| keep.contains(a))
                    .collect::<HashSet<_>>(),
            )
        });
    }

    /// A snapshot of the addresses marked down.
    pub fn down(&self) -> Arc<HashSet<SocketAddr>> {
        self.down.load_full()
    }
}
