//! The hub: where every line goes (stdout and the drains of its scope), swapped whole on a
//! reload, read on the hot path with one `ArcSwap` load.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use spaced_config::{LogFormat, Policy};
use tokio_util::task::TaskTracker;

use crate::drain::{Drain, DrainKey};
use crate::pool;
use crate::queue::{LineQueue, Wake};
use crate::record::{Kind, Level, Source};

/// What the stdout writer needs to encode a line.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) format: LogFormat,
    pub(crate) timestamps: bool,
}

/// Where lines go now.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// `None` with `stdout = false`.
    pub(crate) stdout: Option<Arc<LineQueue>>,
    /// `[[drain]]`: every line.
    space: Vec<Arc<Drain>>,
    /// App name → that app's `drains`.
    apps: HashMap<Box<str>, Vec<Arc<Drain>>>,
    /// Every drain, for `/drains`, metrics and the next reload.
    all: Vec<Arc<Drain>>,
}

/// The process's log hub (see [`crate::install`]).
#[derive(Debug)]
pub struct Hub {
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) routes: ArcSwap<Routes>,
    pub(crate) stdout_written: AtomicU64,
    pub(crate) stdout_write_errors: AtomicU64,
    /// Overflow of stdout queues a reload replaced, so the counter never goes back.
    stdout_overflow_before: AtomicU64,
    stdout_thread: OnceLock<std::thread::Thread>,
    /// Drains a reload removed that are still flushing, and their overflow totals.
    retired: Mutex<Vec<Arc<Drain>>>,
    /// Reloads apply one at a time (never on the hot path).
    apply_lock: Mutex<()>,
    pub(crate) tasks: TaskTracker,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            settings: ArcSwap::from_pointee(Settings {
                format: LogFormat::Logfmt,
                timestamps: true,
            }),
            routes: ArcSwap::from_pointee(Routes::default()),
            stdout_written: AtomicU64::new(0),
            stdout_write_errors: AtomicU64::new(0),
            stdout_overflow_before: AtomicU64::new(0),
            stdout_thread: OnceLock::new(),
            retired: Mutex::new(Vec::new()),
            apply_lock: Mutex::new(()),
            tasks: TaskTracker::new(),
        }
    }

    /// A hub with no stdout and no global install: drains only (tests, embedding).
    pub fn detached() -> Arc<Self> {
        Arc::new(Self::new())
    }

    /// Starts stdout with the defaults (before any config is read, lines still go out).
    pub(crate) fn start_stdout(&self, thread: std::thread::Thread) {
        let _ = self.stdout_thread.set(thread.clone());
        let q = Arc::new(LineQueue::new(
            spaced_config::Logging::default().buffer,
            Wake::Thread(thread),
        ));
        self.routes.store(Arc::new(Routes {
            stdout: Some(q),
            ..Routes::default()
        }));
    }

    /// Queues a line for stdout and the drains of its scope. Never waits.
    pub fn emit(&self, level: Level, source: Source, kind: Kind, app: &str, text: &str) {
        let routes = self.routes.load();
        let app_drains = if app.is_empty() || routes.apps.is_empty() {
            None
        } else {
            routes.apps.get(app)
        };
        if routes.stdout.is_none() && routes.space.is_empty() && app_drains.is_none() {
            return;
        }
        let r = pool::record(level, source, kind, app, text);
        if let Some(q) = &routes.stdout {
            q.push(r.clone());
        }
        for d in &routes.space {
            d.queue.push(r.clone());
        }
        // An app's drains get its router and egress lines (OPERATIONS.md).
        if matches!(source, Source::Router | Source::Egress)
            && let Some(list) = app_drains
        {
            for d in list {
                d.queue.push(r.clone());
            }
        }
    }

    /// Applies a policy's `[logging]`, `[[drain]]` and app `drains`: drains that stay keep
    /// their queue and connection, new ones start, removed ones flush (up to
    /// [`STOP_GRACE`](crate::STOP_GRACE)) and stop. Call within a tokio runtime (drains are tasks).
    pub fn apply(&self, policy: &Policy) {
        let _one = self.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cfg = &policy.logging;
        self.settings.store(Arc::new(Settings {
            format: cfg.format,
            timestamps: cfg.timestamps,
        }));
        let old = self.routes.load_full();
        let stdout = match (&old.stdout, cfg.stdout, self.stdout_thread.get()) {
            (_, false, _) | (_, _, None) => None,
            (Some(q), true, _) if q.capacity() == cfg.buffer => Some(q.clone()),
            (prev, true, Some(t)) => {
                if let Some(p) = prev {
                    self.stdout_overflow_before
                        .fetch_add(p.overflowed.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                Some(Arc::new(LineQueue::new(
                    cfg.buffer,
                    Wake::Thread(t.clone()),
                )))
            }
        };
        let space_name = policy.space.name.as_str();
        let mut all: Vec<Arc<Drain>> = Vec::new();
        let mut get = |scope: String, d: &spaced_config::Drain| -> Option<Arc<Drain>> {
            let key = DrainKey {
                scope,
                drain: d.clone(),
                space: space_name.to_string(),
            };
            if let Some(existing) = all.iter().find(|e| e.key == key) {
                return Some(existing.clone());
            }
            let drain = match old.all.iter().find(|e| e.key == key) {
                Some(e) => e.clone(),
                None => Drain::spawn(key, cfg.buffer, &self.tasks)?,
            };
            all.push(drain.clone());
            Some(drain)
        };
        let space: Vec<_> = policy
            .drains
            .iter()
            .filter_map(|d| get("space".to_string(), d))
            .collect();
        let mut apps = HashMap::new();
        for app in &policy.apps {
            let list: Vec<_> = app
                .drains
                .iter()
                .filter_map(|d| get(format!("app:{}", app.name), d))
                .collect();
            if !list.is_empty() {
                apps.insert(app.name.as_str().into(), list);
            }
        }
        let removed: Vec<_> = old
            .all
            .iter()
            .filter(|d| !all.iter().any(|n| Arc::ptr_eq(n, d)))
            .cloned()
            .collect();
        self.routes.store(Arc::new(Routes {
            stdout,
            space,
            apps,
            all,
        }));
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|d| !d.is_finished());
        for d in removed {
            tracing::info!(drain = %d.label, scope = %d.key.scope, "log drain removed; its queued lines get 5s to leave");
            d.stop();
            retired.push(d);
        }
    }

    /// A clean stop: no new lines go anywhere, and what is queued gets up to `grace` to
    /// leave (drains and stdout).
    pub async fn shutdown(&self, grace: Duration) {
        let routes = self.routes.load_full();
        for d in &routes.all {
            d.stop();
        }
        self.tasks.close();
        let deadline = tokio::time::Instant::now() + grace;
        let _ = tokio::time::timeout_at(deadline, self.tasks.wait()).await;
        if let Some(q) = &routes.stdout {
            while !q.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// `GET /drains`: `[{url, scope, state, queued, sent, dropped, last_error}]`.
    pub fn drains_json(&self) -> serde_json::Value {
        let routes = self.routes.load();
        serde_json::Value::Array(routes.all.iter().map(|d| d.json()).collect())
    }

    /// Appends the log metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let routes = self.routes.load();
        let retired = self.retired.lock().map(|r| r.clone()).unwrap_or_default();
        out.push_str(
            "# HELP spaced_log_lines_dropped_total Log lines dropped before reaching a sink.\n\
             # TYPE spaced_log_lines_dropped_total counter\n",
        );
        let overflow = self.stdout_overflow_before.load(Ordering::Relaxed)
            + routes
                .stdout
                .as_ref()
                .map_or(0, |q| q.overflowed.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "spaced_log_lines_dropped_total{{sink=\"stdout\",reason=\"overflow\"}} {overflow}"
        );
        let _ = writeln!(
            out,
            "spaced_log_lines_dropped_total{{sink=\"stdout\",reason=\"write_error\"}} {}",
            self.stdout_write_errors.load(Ordering::Relaxed)
        );
        let drains: Vec<_> = routes.all.iter().chain(retired.iter()).collect();
        for d in &drains {
            let _ = writeln!(
                out,
                "spaced_log_lines_dropped_total{{sink=\"{}\",reason=\"overflow\"}} {}",
                d.label_escaped(),
                d.queue.overflowed.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "spaced_log_lines_dropped_total{{sink=\"{}\",reason=\"stop\"}} {}",
                d.label_escaped(),
                d.dropped_stop.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP spaced_log_lines_written_total Log lines written to stdout.\n\
             # TYPE spaced_log_lines_written_total counter\n",
        );
        let _ = writeln!(
            out,
            "spaced_log_lines_written_total{{sink=\"stdout\"}} {}",
            self.stdout_written.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP spaced_drain_lines_total Lines of each drain by result (sent, dropped, failed: a send attempt that will be retried).\n\
             # TYPE spaced_drain_lines_total counter\n",
        );
        for d in &drains {
            let l = d.label_escaped();
            let s = &d.key.scope;
            let _ = writeln!(
                out,
                "spaced_drain_lines_total{{drain=\"{l}\",scope=\"{s}\",result=\"sent\"}} {}",
                d.sent.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "spaced_drain_lines_total{{drain=\"{l}\",scope=\"{s}\",result=\"dropped\"}} {}",
                d.dropped()
            );
            let _ = writeln!(
                out,
                "spaced_drain_lines_total{{drain=\"{l}\",scope=\"{s}\",result=\"failed\"}} {}",
                d.failed.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP spaced_drain_queue_lines Lines queued for each drain.\n\
             # TYPE spaced_drain_queue_lines gauge\n",
        );
        for d in &drains {
            let _ = writeln!(
                out,
                "spaced_drain_queue_lines{{drain=\"{}\",scope=\"{}\"}} {}",
                d.label_escaped(),
                d.key.scope,
                d.queued()
            );
        }
    }
}
