//! Shared by the drain tests: a policy from TOML, a hub with it applied, lines to send.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use spaced_logs::{Hub, Kind, Level, Source};

/// A policy with `drains` (TOML) for the space and `app_drains` (list items) for app `api`.
pub fn policy(drains: &str, app_drains: &str, buffer: usize) -> spaced_config::Policy {
    let text = format!(
        "[space]\nname = \"demo\"\n\n[logging]\nbuffer = {buffer}\n\n{drains}\n\n\
         [[app]]\nname = \"api\"\nhosts = [\"api.test\"]\ndrains = [{app_drains}]\n\n\
         [[app]]\nname = \"web\"\nhosts = [\"web.test\"]\n"
    );
    spaced_testkit::policy_in(&text, &std::env::temp_dir())
}

/// A detached hub with `p` applied.
pub fn hub_with(p: &spaced_config::Policy) -> Arc<Hub> {
    let hub = Hub::detached();
    hub.apply(p);
    hub
}

/// A router line of `app` numbered `i`.
pub fn line(hub: &Hub, app: &str, i: usize) {
    let text = format!(
        "at=info method=GET path=\"/n/{i}\" host=api.test request_id=r{i} fwd=\"127.0.0.1\" dyno=web.1 connect=1ms service={i}ms status=200 bytes=5 protocol=http1.1 tls=false tls_version=unknown"
    );
    hub.emit(Level::Info, Source::Router, Kind::Logfmt, app, &text);
}

/// Polls `f` until it holds or `secs` pass (generous: the machine is busy).
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// The sum of the hub's metric samples named `name` whose labels contain every `want`.
pub fn metric(hub: &Hub, name: &str, want: &[&str]) -> u64 {
    let mut out = String::new();
    hub.render_metrics(&mut out);
    out.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
