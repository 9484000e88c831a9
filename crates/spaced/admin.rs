//! The admin listener: health, readiness, Prometheus metrics, the loaded policy's identity,
//! reload, dyno health and the egress NAT state. Meant for loopback only; it has no auth.

use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spaced_config::Store;
use spaced_net::Shutdown;
use spaced_net::metrics;
use tracing::debug;

use crate::components::Components;
use crate::reload::Reloader;
use crate::rfc3339;

/// What the admin handlers read.
pub(crate) struct State {
    pub(crate) store: Arc<Store>,
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) components: Arc<Components>,
    /// Set once every listener is bound and a policy is loaded.
    pub(crate) ready: Arc<AtomicBool>,
}

/// Binds the admin listener and serves it until `shutdown`.
pub(crate) async fn spawn(
    addr: SocketAddr,
    state: State,
    shutdown: Shutdown,
) -> Result<SocketAddr> {
    let listener =
        spaced_net::tcp_listener(addr).with_context(|| format!("bind admin listener on {addr}"))?;
    let local = listener.local_addr().context("admin listener address")?;
    let state = Arc::new(state);
    let tasks = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                biased;
                () = tasks.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => { debug!(error = %e, "admin accept"); continue; }
                },
            };
            let state = state.clone();
            let conn_shutdown = tasks.clone();
            tasks.spawn(async move {
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service);
                tokio::pin!(conn);
                tokio::select! {
                    res = conn.as_mut() => if let Err(e) = res { debug!(client.addr = %peer, error = %e, "admin connection") },
                    () = conn_shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    });
    Ok(local)
}

type Body = Full<Bytes>;

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    // HEAD is GET without the body (RFC 9110 §9.3.2: hyper drops the body); probes use it.
    let method = match *req.method() {
        Method::HEAD => &Method::GET,
        ref m => m,
    };
    match (method, req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            let mut out = String::with_capacity(16 * 1024);
            render_metrics(state, &mut out);
            Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(out)))
                .unwrap_or_default()
        }
        (&Method::GET, "/config") => json(StatusCode::OK, &config_json(state)),
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
        (_, "/healthz" | "/readyz" | "/metrics" | "/config" | "/dynos" | "/nat" | "/drains") => {
            not_allowed("GET, HEAD")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn config_json(state: &State) -> serde_json::Value {
    let meta = state.store.meta();
    let policy = state.store.load();
    serde_json::json!({
        "version": meta.version,
        "sha256": meta.sha256,
        "loaded_at": rfc3339::format(meta.loaded_at),
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
    state.components.render_metrics(out);
    if let Some(hub) = spaced_logs::hub() {
        hub.render_metrics(out);
    }
    let _ = out.write_str("");
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
