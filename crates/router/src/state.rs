//! Runtime state kept apart from the policy: per dyno (in-flight count, quarantine, active
//! verdict, idle connections) keyed by app, address and label so it survives reloads, and
//! per app (counters, round-robin cursor) keyed by name. A [`View`] pairs one policy with
//! the runtime entries of its apps and dynos; it is rebuilt once per policy swap and read
//! lock-free by requests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use spaced_config::{Policy, Store};
use spaced_net::metrics::{Counter, Histogram};
use tokio::time::Instant;

use crate::balance::Candidate;
use crate::code::{self, Code};
use crate::health;
use crate::pool::Pool;

/// One web dyno's runtime state.
#[derive(Debug)]
pub(crate) struct DynoRt {
    /// The app's name.
    pub app: Box<str>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `process.number`, as logged.
    pub label: Box<str>,
    /// Requests in flight on it (picked, not yet finished).
    pub in_flight: AtomicU32,
    /// Router-clock ms until which a connect failure keeps it out.
    pub quarantined_until: AtomicU64,
    /// Marked down by active checks.
    pub down: AtomicBool,
    /// Left the policy: gets no new request; connections are not pooled any more.
    pub removed: AtomicBool,
    /// Idle keep-alive connections.
    pub pool: Pool,
}

impl DynoRt {
    fn new(app: &str, addr: SocketAddr, process: &str, number: u32) -> Self {
        Self {
            app: app.into(),
            addr,
            label: format!("{process}.{number}").into(),
            in_flight: AtomicU32::new(0),
            quarantined_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            pool: Pool::default(),
        }
    }

    /// Whether it counts as up at `now_ms`.
    pub(crate) fn is_up(&self, now_ms: u64) -> bool {
        health::is_up(
            self.down.load(Ordering::Relaxed),
            self.quarantined_until.load(Ordering::Relaxed),
            now_ms,
        )
    }

    /// Whether a connect failure keeps it out at `now_ms`.
    pub(crate) fn is_quarantined(&self, now_ms: u64) -> bool {
        now_ms < self.quarantined_until.load(Ordering::Relaxed)
    }

    /// Keeps it out for [`health::QUARANTINE`] from `now_ms`.
    pub(crate) fn quarantine(&self, now_ms: u64) {
        self.quarantined_until
            .store(health::quarantine_until(now_ms), Ordering::Relaxed);
    }
}

/// Counters of one app, by status and by code.
#[derive(Debug)]
pub(crate) struct AppStats {
    /// The app's name.
    pub name: Box<str>,
    /// Uncoded responses by status (index `status - 100`).
    statuses: Box<[Counter; 500]>,
    /// Coded responses by [`Code::index`].
    codes: [Counter; code::ALL.len()],
    /// H15/H18 by the status already relayed (what their log line shows), keyed
    /// `(status, code index)`. These end a response that was under way, so the status is
    /// the dyno's, not the code's; they are rare, hence a map behind a lock off the hot path.
    interrupted: Mutex<BTreeMap<(u16, usize), u64>>,
    /// Request latency, arrival to log line.
    pub latency: Histogram,
    /// Round-robin cursor.
    pub rr: AtomicUsize,
}

impl AppStats {
    /// Zeroed counters for `name`.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            statuses: Box::new(std::array::from_fn(|_| Counter::new())),
            codes: std::array::from_fn(|_| Counter::new()),
            interrupted: Mutex::new(BTreeMap::new()),
            latency: Histogram::default(),
            rr: AtomicUsize::new(0),
        }
    }

    /// Counts one finished request.
    pub(crate) fn count(&self, code: Option<Code>, status: u16) {
        match code {
            Some(c @ (Code::H15 | Code::H18)) => {
                let mut map = self
                    .interrupted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                *map.entry((status, c.index())).or_insert(0) += 1;
            }
            Some(c) => self.codes[c.index()].inc(),
            None => {
                if let Some(c) = usize::from(status)
                    .checked_sub(100)
                    .and_then(|i| self.statuses.get(i))
                {
                    c.inc();
                }
            }
        }
    }

    /// `(status, code, count)` for every non-zero counter.
    pub(crate) fn samples(&self) -> Vec<(u16, &'static str, u64)> {
        let by_status = self
            .statuses
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u16 + 100, "", c.get()));
        let by_code = code::ALL
            .iter()
            .map(|c| (c.status(), c.as_str(), self.codes[c.index()].get()));
        let mut out: Vec<_> = by_status.chain(by_code).filter(|s| s.2 > 0).collect();
        let map = self
            .interrupted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (&(status, index), &n) in map.iter() {
            if let Some(c) = code::ALL.get(index) {
                out.push((status, c.as_str(), n));
            }
        }
        out
    }
}

/// One app's runtime entries within a [`View`].
#[derive(Debug)]
pub(crate) struct AppRt {
    /// Its counters (kept across reloads by name).
    pub stats: Arc<AppStats>,
    /// Its web dynos, in `app.web` order.
    pub dynos: Vec<Arc<DynoRt>>,
    /// Whether each web dyno is in this router's zone.
    pub local: Vec<bool>,
}

impl AppRt {
    /// The balancer's view of dyno `i`.
    pub(crate) fn candidate(&self, i: usize, now_ms: u64, excluded: &[usize]) -> Candidate {
        let d = &self.dynos[i];
        Candidate {
            in_flight: d.in_flight.load(Ordering::Relaxed),
            up: d.is_up(now_ms),
            local: self.local[i],
            excluded: excluded.contains(&i),
        }
    }
}

/// A policy and the runtime entries of its apps, index for index.
#[derive(Debug)]
pub(crate) struct View {
    /// The policy this view was built for.
    pub policy: Arc<Policy>,
    /// Parallel to `policy.apps`.
    pub apps: Vec<AppRt>,
}

type DynoKey = (Box<str>, SocketAddr, Box<str>);

#[derive(Debug, Default)]
struct Registry {
    dynos: HashMap<DynoKey, Arc<DynoRt>>,
    apps: HashMap<Box<str>, Arc<AppStats>>,
}

/// The runtime state of the router and its current [`View`].
#[derive(Debug)]
pub(crate) struct Runtime {
    /// Swapped whole when the policy changes; requests read it without locking.
    view: ArcSwap<View>,
    /// Held only while rebuilding a view (once per reload).
    registry: Mutex<Registry>,
    /// Origin of the router's millisecond clock.
    epoch: Instant,
}

impl Runtime {
    /// The runtime for the store's current policy.
    pub(crate) fn new(store: &Store) -> Self {
        let mut registry = Registry::default();
        let view = build(store.load_full(), &mut registry);
        Self {
            view: ArcSwap::from_pointee(view),
            registry: Mutex::new(registry),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the router started (monotonic).
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// The router-clock ms of `t`: for an instant already read, as a clock read costs more
    /// than the rest of this in a VM.
    #[inline]
    pub(crate) fn ms_at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The instant of router-clock `ms`.
    pub(crate) fn instant_at(&self, ms: u64) -> Instant {
        // Far-future deadlines (absurd config durations) saturate at about 30 years.
        let capped = ms.min(1_000_000_000_000);
        self.epoch + std::time::Duration::from_millis(capped)
    }

    /// The view of the store's current policy: one `store.load()`, rebuilt when a reload
    /// swapped the policy since the last view.
    #[inline]
    pub(crate) fn view(&self, store: &Store) -> Arc<View> {
        let policy = store.load();
        let view = self.view.load();
        if Arc::ptr_eq(&view.policy, &policy) {
            return arc_swap::Guard::into_inner(view);
        }
        drop((policy, view));
        self.rebuild(store)
    }

    /// The latest view built, without checking the store.
    pub(crate) fn current(&self) -> Arc<View> {
        self.view.load_full()
    }

    fn rebuild(&self, store: &Store) -> Arc<View> {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Always build for the latest policy, so racing rebuilds never go backwards.
        let policy = store.load_full();
        let current = self.view.load_full();
        if Arc::ptr_eq(&current.policy, &policy) {
            return current;
        }
        let view = Arc::new(build(policy, &mut registry));
        self.view.store(Arc::clone(&view));
        view
    }
}

/// Builds a view, moving surviving entries over and retiring the rest: a retired dyno gets
/// no new request, its in-flight requests finish (they hold it), its idle connections close.
fn build(policy: Arc<Policy>, registry: &mut Registry) -> View {
    let mut dynos = HashMap::with_capacity(registry.dynos.len());
    let mut apps_stats = HashMap::with_capacity(policy.apps.len());
    let zone = policy.router.zone.as_deref();
    let mut apps = Vec::with_capacity(policy.apps.len());
    for app in &policy.apps {
        let stats = registry
            .apps
            .remove(app.name.as_str())
            .unwrap_or_else(|| Arc::new(AppStats::new(&app.name)));
        apps_stats.insert(Box::from(app.name.as_str()), Arc::clone(&stats));
        let mut rts = Vec::with_capacity(app.web.len());
        let mut local = Vec::with_capacity(app.web.len());
        for d in app.web_dynos() {
            let key: DynoKey = (
                app.name.as_str().into(),
                d.addr,
                format!("{}.{}", d.process, d.number).into(),
            );
            let rt = registry
                .dynos
                .remove(&key)
                .or_else(|| dynos.get(&key).cloned())
                .unwrap_or_else(|| Arc::new(DynoRt::new(&app.name, d.addr, &d.process, d.number)));
            dynos.insert(key, Arc::clone(&rt));
            rts.push(rt);
            local.push(zone.is_some() && d.zone.as_deref() == zone);
        }
        apps.push(AppRt {
            stats,
            dynos: rts,
            local,
        });
    }
    for (_, gone) in registry.dynos.drain() {
        gone.removed.store(true, Ordering::Relaxed);
        gone.pool.clear();
    }
    registry.dynos = dynos;
    registry.apps = apps_stats;
    View { policy, apps }
}
