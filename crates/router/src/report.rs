//! The router's Prometheus metrics and the `/dynos` JSON, rendered from [`Shared`]: the
//! counters of [`crate::metrics`] and the current view's apps and dynos.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use spaced_net::metrics::{header, sample};

use crate::shared::Shared;
use crate::state::{AppStats, DynoRt};

/// Writes every router metric.
pub(crate) fn render(shared: &Shared, out: &mut String) {
    let m = &shared.metrics;
    let view = shared.runtime.current();
    let now = shared.runtime.now_ms();

    header(
        out,
        "spaced_router_requests_total",
        "counter",
        "Requests by app, status and code.",
    );
    let mut stats: Vec<&AppStats> = view.apps.iter().map(|a| &*a.stats).collect();
    stats.push(&m.unrouted);
    for s in &stats {
        for (status, code, n) in s.samples() {
            let labels = format!("app=\"{}\",status=\"{status}\",code=\"{code}\"", s.name);
            sample(out, "spaced_router_requests_total", &labels, n);
        }
    }
    header(
        out,
        "spaced_router_request_duration_seconds",
        "histogram",
        "Request latency by app, arrival to log line (app=\"\": reached no app).",
    );
    for s in &stats {
        let labels = format!("app=\"{}\"", s.name);
        s.latency
            .render(out, "spaced_router_request_duration_seconds", &labels);
    }
    header(
        out,
        "spaced_router_requests_in_flight",
        "gauge",
        "Requests being served.",
    );
    sample(
        out,
        "spaced_router_requests_in_flight",
        "",
        m.in_flight.get(),
    );
    header(
        out,
        "spaced_router_connections",
        "gauge",
        "Client connections open.",
    );
    sample(out, "spaced_router_connections", "", shared.limit.open());
    header(
        out,
        "spaced_router_parked_connections",
        "gauge",
        "Idle plain keep-alive connections waiting in the parking lot (no task).",
    );
    sample(
        out,
        "spaced_router_parked_connections",
        "",
        shared.lot.len(),
    );
    header(
        out,
        "spaced_router_l4_denied_total",
        "counter",
        "Connections closed at L4.",
    );
    sample(out, "spaced_router_l4_denied_total", "", m.l4_denied.get());
    // L7 denials are requests too (counted above by app and code); these counters of their
    // own survive the removal of an app by a reload, so they never go down.
    header(
        out,
        "spaced_router_l7_denied_total",
        "counter",
        "Requests refused at L7, by code (S10: app trusted ranges, S11: no such app).",
    );
    sample(
        out,
        "spaced_router_l7_denied_total",
        "code=\"S10\"",
        m.l7_denied_s10.get(),
    );
    sample(
        out,
        "spaced_router_l7_denied_total",
        "code=\"S11\"",
        m.l7_denied_s11.get(),
    );
    header(
        out,
        "spaced_router_connections_over_limit_total",
        "counter",
        "Connections closed beyond max_connections.",
    );
    sample(
        out,
        "spaced_router_connections_over_limit_total",
        "",
        m.over_limit.get(),
    );
    header(
        out,
        "spaced_router_health_transitions_total",
        "counter",
        "Active health-check transitions.",
    );
    sample(
        out,
        "spaced_router_health_transitions_total",
        "",
        m.health_transitions.get(),
    );
    header(
        out,
        "spaced_router_client_not_reading_total",
        "counter",
        "Connections closed because the client took no response bytes for timeouts.idle.",
    );
    sample(
        out,
        "spaced_router_client_not_reading_total",
        "",
        m.client_not_reading.get(),
    );

    let dynos = || {
        view.apps
            .iter()
            .flat_map(|a| a.dynos.iter().map(AsRef::as_ref))
    };
    per_dyno(
        out,
        "spaced_router_dyno_up",
        "1 when the dyno takes traffic.",
        dynos(),
        |d| u64::from(d.is_up(now)),
    );
    per_dyno(
        out,
        "spaced_router_dyno_in_flight",
        "Requests in flight per dyno.",
        dynos(),
        |d| u64::from(d.in_flight.load(Ordering::Relaxed)),
    );
    per_dyno(
        out,
        "spaced_router_pool_idle_connections",
        "Idle pooled connections per dyno.",
        dynos(),
        |d| d.pool.len() as u64,
    );
}

/// One gauge with a sample per dyno, labelled by app, dyno and address.
fn per_dyno<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    dynos: impl Iterator<Item = &'a DynoRt>,
    value: impl Fn(&DynoRt) -> u64,
) {
    header(out, name, "gauge", help);
    for d in dynos {
        let labels = format!("app=\"{}\",dyno=\"{}\",addr=\"{}\"", d.app, d.label, d.addr);
        sample(out, name, &labels, value(d));
    }
}

/// Health of every dyno of the current policy (non-web dynos take no traffic and are
/// reported up with nothing in flight).
pub(crate) fn dynos_json(shared: &Shared) -> Value {
    let view = shared.runtime.view(&shared.store);
    let now = shared.runtime.now_ms();
    let mut out = Vec::new();
    for (app, rt) in view.policy.apps.iter().zip(&view.apps) {
        for (i, d) in app.dynos.iter().enumerate() {
            let web = app
                .web
                .iter()
                .position(|&w| w == i)
                .and_then(|k| rt.dynos.get(k));
            let (up, quarantined, in_flight) = match web {
                Some(r) => (
                    r.is_up(now),
                    r.is_quarantined(now),
                    r.in_flight.load(Ordering::Relaxed),
                ),
                None => (true, false, 0),
            };
            out.push(json!({
                "app": app.name,
                "process": d.process,
                "number": d.number,
                "addr": d.addr.to_string(),
                "zone": d.zone,
                "up": up,
                "quarantined": quarantined,
                "in_flight": in_flight,
            }));
        }
    }
    Value::Array(out)
}
