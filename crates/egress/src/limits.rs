//! Runtime counts kept across reloads: connections per (source IP, destination IP, port)
//! for `max_per_destination`, and per-source statistics for metrics and `GET /nat`.
//!
//! The destination map is sharded by key so concurrent tunnels to different destinations
//! rarely meet on a lock, and each lock is held only for one map update. Counts are
//! released by RAII guards, so no error path can leak a slot. Also the handshake bound
//! every listener applies.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use spaced_net::metrics::{Counter, Gauge};

/// A client has this long to finish its request head or SOCKS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const SHARDS: usize = 16;

type Key = (IpAddr, SocketAddr);

/// Connections at once per (source IP, destination address).
#[derive(Debug)]
pub struct DestCounts {
    shards: [Mutex<HashMap<Key, u32>>; SHARDS],
    hasher: RandomState,
}

/// Holds one slot of a destination's count; dropping it releases the slot.
#[derive(Debug)]
pub struct DestGuard {
    counts: Arc<DestCounts>,
    key: Key,
}

impl Default for DestCounts {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: RandomState::new(),
        }
    }
}

impl DestCounts {
    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, u32>> {
        // The modulo keeps the index in range whatever the hash.
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Takes a slot for `source` → `dest` unless `max` are already taken.
    pub fn try_acquire(
        self: &Arc<Self>,
        source: IpAddr,
        dest: SocketAddr,
        max: u32,
    ) -> Option<DestGuard> {
        let key = (source, dest);
        // A poisoned lock only means another thread panicked mid-update of a counter;
        // the map itself is still consistent enough to keep counting.
        let mut map = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(key).or_insert(0);
        if *n >= max {
            if *n == 0 {
                map.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(DestGuard {
            counts: self.clone(),
            key,
        })
    }

    /// The current count (tests and diagnostics).
    pub fn count(&self, source: IpAddr, dest: SocketAddr) -> u32 {
        let key = (source, dest);
        let map = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&key).copied().unwrap_or(0)
    }
}

impl Drop for DestGuard {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .shard(&self.key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Keep the map as small as the set of live destinations.
                map.remove(&self.key);
            }
        }
    }
}

/// Counters for one source IP.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Tunnels open now.
    pub active: Gauge,
    /// Tunnels established.
    pub ok: Counter,
    /// Dials that failed (refused, timed out, unreachable).
    pub connect_failed: Counter,
    /// Dials refused by `max_per_destination`.
    pub limited: Counter,
    /// The source address could not be used (bind failed, no route from it): the next
    /// one in rendezvous order was tried.
    pub unusable: Counter,
    /// Bytes client → destination.
    pub bytes_out: Counter,
    /// Bytes destination → client.
    pub bytes_in: Counter,
}

/// Per-source statistics, created on first use and kept (a source removed by a reload and
/// added back resumes its counters; the set of sources is small).
#[derive(Debug, Default)]
pub struct Sources {
    map: RwLock<HashMap<IpAddr, Arc<SourceStats>>>,
}

impl Sources {
    /// The statistics of `ip`.
    pub fn get(&self, ip: IpAddr) -> Arc<SourceStats> {
        if let Some(s) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ip)
        {
            return s.clone();
        }
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(ip)
            .or_default()
            .clone()
    }

    /// Every source seen so far, sorted by address.
    pub fn all(&self) -> Vec<(IpAddr, Arc<SourceStats>)> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<_> = map.iter().map(|(ip, s)| (*ip, s.clone())).collect();
        v.sort_by_key(|(ip, _)| *ip);
        v
    }
}

/// Keeps a source's `active` gauge up while a tunnel is open.
#[derive(Debug)]
pub struct ActiveGuard(Arc<SourceStats>);

impl ActiveGuard {
    /// Counts one more open tunnel on `stats`.
    pub fn new(stats: Arc<SourceStats>) -> Self {
        stats.active.inc();
        Self(stats)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_releases() {
        let c = Arc::new(DestCounts::default());
        let src: IpAddr = "127.0.0.10".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let a = c.try_acquire(src, dst, 2).unwrap();
        let b = c.try_acquire(src, dst, 2).unwrap();
        assert!(c.try_acquire(src, dst, 2).is_none());
        // Another source or port is another key.
        let other = c.try_acquire("127.0.0.11".parse().unwrap(), dst, 2);
        assert!(other.is_some());
        assert!(
            c.try_acquire(src, "127.0.0.1:81".parse().unwrap(), 2)
                .is_some()
        );
        assert_eq!(c.count(src, dst), 2);
        drop(a);
        assert_eq!(c.count(src, dst), 1);
        let _c2 = c.try_acquire(src, dst, 2).unwrap();
        drop(b);
        drop(_c2);
        assert_eq!(c.count(src, dst), 0);
        assert!(c.try_acquire(src, dst, 0).is_none());
        assert_eq!(c.count(src, dst), 0);
    }

    #[test]
    fn sources() {
        let s = Sources::default();
        let ip: IpAddr = "127.0.0.10".parse().unwrap();
        {
            let _g = ActiveGuard::new(s.get(ip));
            assert_eq!(s.get(ip).active.get(), 1);
        }
        assert_eq!(s.get(ip).active.get(), 0);
        assert_eq!(s.all().len(), 1);
    }
}
