//! The admin listener: health, readiness, Prometheus metrics, the loaded policy's identity,
//! reload, dyno health and the egress NAT state. Meant for loopback only; it has no auth.
//! The probe listeners (`[admin] probe_listen`) serve its read-only part: `/healthz`,
//! `/readyz` and `/metrics`, for kubelet and Prometheus on a pod or host address.
//!
//! Both are bounded as the router's listeners are (`admin/conn.rs`); the admin listener
//! also answers only a `Host` that names it (`admin/host.rs`). The routes are in
//! `admin/routes.rs`, what they and the connections share in `admin/state.rs`.

mod conn;
mod host;
mod process;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use spaced_net::Shutdown;

use state::Kind;
pub(crate) use state::State;

/// The connections one admin or probe listener holds at once (see `admin/conn.rs`).
pub const MAX_CONNECTIONS: usize = conn::MAX_CONNECTIONS;

/// Binds the admin listener and serves it until `shutdown`.
pub(crate) async fn spawn(
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Shutdown,
) -> Result<SocketAddr> {
    let listener =
        spaced_net::tcp_listener(addr).with_context(|| format!("bind admin listener on {addr}"))?;
    let local = listener.local_addr().context("admin listener address")?;
    conn::spawn(listener, local, Kind::Admin, state, shutdown);
    Ok(local)
}

/// Binds one probe listener and serves it until `shutdown`.
pub(crate) async fn spawn_probe(
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Shutdown,
) -> Result<SocketAddr> {
    let listener =
        spaced_net::tcp_listener(addr).with_context(|| format!("bind probe listener on {addr}"))?;
    let local = listener.local_addr().context("probe listener address")?;
    conn::spawn(listener, local, Kind::Probe, state, shutdown);
    Ok(local)
}
