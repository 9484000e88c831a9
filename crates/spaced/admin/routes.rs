//! The admin API's routes: one request in, one response out, for the admin surface (every
//! route, to a `Host` naming the listener) and the probe surface (`/healthz`, `/readyz`,
//! `/metrics`).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use spaced_net::metrics;

use super::state::{Kind, State};
use super::{host, process};

type Body = Full<Bytes>;

pub(super) async fn handle(
    state: &State,
    kind: Kind,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    // HEAD is GET without the body (RFC 9110 §9.3.2: hyper drops the body); probes use it.
    let method = match *req.method() {
        Method::HEAD => &Method::GET,
        ref m => m,
    };
    if kind == Kind::Probe {
        return probe(state, method, req.uri().path());
    }
    if let Some(refused) = refuse_host(&req, local) {
        return refused;
    }
    match (method, req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readyz(state),
        (&Method::GET, "/metrics") => metrics_response(state),
        (&Method::GET, "/config") => {
            let mut body = config_json(state);
            if let Some(fleet) = &state.fleet {
                crate::fleet::admin::config(fleet, &mut body).await;
            }
            json(StatusCode::OK, &body)
        }
        (&Method::GET, "/fleet") => match &state.fleet {
            Some(fleet) => {
                let (status, body) = crate::fleet::admin::fleet(fleet).await;
                json(status, &body)
            }
            None => text(StatusCode::NOT_FOUND, "no [fleet] in this spaced's file\n"),
        },
        (&Method::POST, "/reload") => match state.reloader.reload("admin").await {
            Ok(_) => json(StatusCode::OK, &config_json(state)),
            Err(_) => json(StatusCode::UNPROCESSABLE_ENTITY, &config_json(state)),
        },
        (&Method::GET, "/dynos") => json(StatusCode::OK, &state.components.dynos_json()),
        (&Method::GET, "/nat") => json(StatusCode::OK, &state.components.nat_json()),
        (&Method::GET, "/drains") => json(
            StatusCode::OK,
            &spaced_logs::hub().map_or(serde_json::json!([]), |h| h.drains_json()),
        ),
        (_, "/reload") => not_allowed("POST"),
        (
            _,
            "/healthz" | "/readyz" | "/metrics" | "/config" | "/dynos" | "/nat" | "/fleet"
            | "/drains",
        ) => not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The probe listener's whole surface: 404 for any other path, 405 for another method.
fn probe(state: &State, method: &Method, path: &str) -> Response<Body> {
    match (method, path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readyz(state),
        (&Method::GET, "/metrics") => metrics_response(state),
        (_, "/healthz" | "/readyz" | "/metrics") => not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// 421 Misdirected Request (RFC 9110 §15.5.20: this server will not answer for that
/// authority) for a `Host` that does not name the admin listener, so a page that
/// DNS-rebinds its own name to it gets nothing; 400 for an HTTP/1.1 request without
/// `Host` (RFC 9112 §3.2). `None`: answer it.
fn refuse_host(req: &Request<Incoming>, local: SocketAddr) -> Option<Response<Body>> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header_host = hosts.next().map(http::HeaderValue::as_bytes);
    // Two Host lines leave the name to whoever reads which (RFC 9112 §3.2: 400).
    if hosts.next().is_some() {
        return Some(text(StatusCode::BAD_REQUEST, "more than one Host header\n"));
    }
    // An absolute-form target's authority is the one that counts (RFC 9112 §3.2.2).
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    let host = authority.or(header_host);
    if host.is_none() && req.version() == http::Version::HTTP_11 {
        return Some(text(StatusCode::BAD_REQUEST, "missing Host header\n"));
    }
    if host::allowed(host, local) {
        None
    } else {
        Some(text(
            StatusCode::MISDIRECTED_REQUEST,
            "the admin listener answers only Host: localhost or its own address\n",
        ))
    }
}

fn readyz(state: &State) -> Response<Body> {
    if state.ready.load(Ordering::Acquire) {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

fn metrics_response(state: &State) -> Response<Body> {
    let mut out = String::with_capacity(16 * 1024);
    render_metrics(state, &mut out);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(out)))
        .unwrap_or_default()
}

fn config_json(state: &State) -> serde_json::Value {
    let meta = state.store.meta();
    let policy = state.store.load();
    serde_json::json!({
        "version": meta.version,
        "sha256": meta.sha256,
        "loaded_at": spaced_logs::format::rfc3339_seconds(meta.loaded_at),
        "last_error": meta.last_error,
        "apps": policy.apps.len(),
        "dynos": policy.dyno_count(),
    })
}

fn render_metrics(state: &State, out: &mut String) {
    let meta = state.store.meta();
    let (ok, failed) = state.store.reload_counts();
    metrics::header(
        out,
        "spaced_config_version",
        "gauge",
        "Version of the policy serving now.",
    );
    metrics::sample(out, "spaced_config_version", "", meta.version);
    metrics::header(
        out,
        "spaced_config_last_reload_ok",
        "gauge",
        "1 when the latest reload attempt succeeded.",
    );
    metrics::sample(
        out,
        "spaced_config_last_reload_ok",
        "",
        u8::from(meta.last_error.is_none()),
    );
    metrics::header(
        out,
        "spaced_reloads_total",
        "counter",
        "Reload attempts by result.",
    );
    metrics::sample(out, "spaced_reloads_total", "result=\"ok\"", ok);
    metrics::sample(out, "spaced_reloads_total", "result=\"failed\"", failed);
    let policy = state.store.load();
    metrics::header(out, "spaced_policy_apps", "gauge", "Apps in the policy.");
    metrics::sample(out, "spaced_policy_apps", "", policy.apps.len());
    metrics::header(out, "spaced_policy_dynos", "gauge", "Dynos in the policy.");
    metrics::sample(out, "spaced_policy_dynos", "", policy.dyno_count());
    metrics::header(
        out,
        "spaced_config_last_reload_seconds",
        "gauge",
        "Unix time of the last successful load of the policy (an unchanged file included).",
    );
    let last_ok = meta
        .last_ok_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let _ = writeln!(out, "spaced_config_last_reload_seconds {last_ok:.3}");
    process::render(out);
    state.cuts.render(out);
    state.components.render_metrics(out);
    if let Some(fleet) = &state.fleet {
        crate::fleet::admin::metrics(fleet, out);
    }
    if let Some(hub) = spaced_logs::hub() {
        hub.render_metrics(out);
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// 405 with the `Allow` header RFC 9110 §15.5.6 requires.
fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    resp
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = value.to_string();
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
