//! The router's background work: active health checks of web dynos (one task per dyno,
//! started and stopped as reloads change the set), reconciliation after each reload
//! (view rebuilt, `max_connections` updated, the `DynoBoard` pruned), and closing pooled
//! connections idle for `pool_idle`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spaced_config::HealthCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::health::{self, Active, Transition};
use crate::shared::Shared;
use crate::state::DynoRt;

/// The shortest pause between two checks of one dyno.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest status line read from a health endpoint.
const MAX_STATUS_LINE: usize = 1024;

/// What a check task was started with; a change restarts it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    interval: Duration,
    timeout: Duration,
    path: Option<String>,
    unhealthy_after: u32,
    healthy_after: u32,
}

/// A running check task, stopped when dropped.
struct Task {
    spec: Spec,
    stop: CancellationToken,
}

impl Drop for Task {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs until shutdown: reconciles after every reload, sweeps idle pooled connections.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut version = shared.store.subscribe();
    let mut tasks: HashMap<usize, (Arc<DynoRt>, Task)> = HashMap::new();
    reconcile(&shared, &mut tasks);
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            changed = version.changed() => {
                if changed.is_err() {
                    break;
                }
                reconcile(&shared, &mut tasks);
            }
            _ = sweep.tick() => {
                let view = shared.runtime.view(&shared.store);
                let max_idle = view.policy.router.timeouts.pool_idle;
                let now = Instant::now();
                for app in &view.apps {
                    for d in &app.dynos {
                        d.pool.sweep(now, max_idle);
                    }
                }
            }
        }
    }
    // Shutdown: stop checks, close idle dyno connections.
    tasks.clear();
    for app in &shared.runtime.current().apps {
        for d in &app.dynos {
            d.pool.clear();
        }
    }
}

fn reconcile(shared: &Arc<Shared>, tasks: &mut HashMap<usize, (Arc<DynoRt>, Task)>) {
    let view = shared.runtime.view(&shared.store);
    let policy = &view.policy;
    shared.limit.set_max(policy.router.max_connections);
    shared
        .external_limit
        .set_max(crate::shared::external_share(policy.router.max_connections));
    let mut keep_addrs = std::collections::HashSet::new();
    let mut wanted: HashMap<usize, (Arc<DynoRt>, Option<Spec>)> = HashMap::new();
    for (app, rt) in policy.apps.iter().zip(&view.apps) {
        for d in &rt.dynos {
            keep_addrs.insert(d.addr);
            let spec = policy.router.health.as_ref().map(|h: &HealthCheck| Spec {
                interval: h.interval,
                timeout: h.timeout,
                path: app.health_path.clone().or_else(|| h.path.clone()),
                unhealthy_after: h.unhealthy_after,
                healthy_after: h.healthy_after,
            });
            wanted.insert(Arc::as_ptr(d) as usize, (Arc::clone(d), spec));
        }
    }
    // Stop checks of dynos that left, or whose check changed.
    tasks.retain(|k, (_, task)| {
        wanted
            .get(k)
            .is_some_and(|(_, spec)| spec.as_ref() == Some(&task.spec))
    });
    for (k, (d, spec)) in wanted {
        match spec {
            None => {
                // Checks are off: nothing holds the dyno down any more.
                if d.down.swap(false, Ordering::Relaxed) {
                    shared.board.set_down(d.addr, false);
                }
            }
            Some(spec) if !tasks.contains_key(&k) => {
                let stop = shared.shutdown.token().child_token();
                shared.shutdown.spawn(check_loop(
                    Arc::clone(shared),
                    Arc::clone(&d),
                    spec.clone(),
                    stop.clone(),
                ));
                tasks.insert(k, (d, Task { spec, stop }));
            }
            Some(_) => {}
        }
    }
    shared.board.retain(&keep_addrs);
}

async fn check_loop(shared: Arc<Shared>, dyno: Arc<DynoRt>, spec: Spec, stop: CancellationToken) {
    let mut state = if dyno.down.load(Ordering::Relaxed) {
        let mut s = Active::new();
        let _ = s.observe(false, 1, 1);
        s
    } else {
        Active::new()
    };
    loop {
        // A floor, so a zero interval cannot spin.
        let wait = health::jittered(spec.interval, fastrand::f64()).max(MIN_INTERVAL);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let ok = tokio::select! {
            () = stop.cancelled() => return,
            ok = probe(dyno.addr, spec.timeout, spec.path.as_deref()) => ok,
        };
        if let Some(t) = state.observe(ok, spec.unhealthy_after, spec.healthy_after) {
            let down = t == Transition::Down;
            dyno.down.store(down, Ordering::Relaxed);
            shared.board.set_down(dyno.addr, down);
            shared.metrics.health_transitions.inc();
            if down {
                warn!(app = %dyno.app, dyno = %dyno.label, dyno.addr = %dyno.addr, "dyno marked down by health checks");
            } else {
                info!(app = %dyno.app, dyno = %dyno.label, dyno.addr = %dyno.addr, "dyno back up");
            }
        }
    }
}

/// One check within `timeout`: a TCP connect, or `GET path` answered 2xx/3xx.
async fn probe(addr: SocketAddr, timeout: Duration, path: Option<&str>) -> bool {
    tokio::time::timeout(timeout, probe_inner(addr, path))
        .await
        .unwrap_or(false)
}

async fn probe_inner(addr: SocketAddr, path: Option<&str>) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: spaced-health\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
        if buf[..filled].contains(&b'\n') {
            break;
        }
    }
    status_is_up(&buf[..filled])
}

/// Whether a status line says 2xx or 3xx.
fn status_is_up(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let version_ok = parts.next().is_some_and(|v| v.starts_with(b"HTTP/1."));
    let code = parts.next().unwrap_or_default();
    version_ok
        && code.len() == 3
        && matches!(code[0], b'2' | b'3')
        && code.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(status_is_up(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_up(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_is_up(b"HTTP/1.1 500 Oops\r\n"));
        assert!(!status_is_up(b"HTTP/1.1 20"));
        assert!(!status_is_up(b"garbage"));
        assert!(!status_is_up(b""));
    }
}
