//! The components a policy asks for, started once at boot (listener addresses are read at
//! start; everything else follows reloads inside each component).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use spaced_config::{DynoBoard, Store};
use spaced_net::Shutdown;

/// Handles of the running components.
pub(crate) struct Components {}

/// Bound addresses, by listener key.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// `router.listen`.
    pub router: Vec<SocketAddr>,
    /// `router.tls_listen`.
    pub router_tls: Vec<SocketAddr>,
    /// `router.internal_listen`.
    pub router_internal: Vec<SocketAddr>,
    /// `resolver.listen` (UDP and TCP).
    pub resolver: Vec<SocketAddr>,
    /// `egress.listen`.
    pub egress: Vec<SocketAddr>,
    /// `egress.socks_listen`.
    pub socks: Vec<SocketAddr>,
    /// `egress.transparent_listen`.
    pub transparent: Vec<SocketAddr>,
}

impl Components {
    pub(crate) async fn spawn(
        _store: Arc<Store>,
        _board: Arc<DynoBoard>,
        _shutdown: &Shutdown,
    ) -> Result<(Self, Bound)> {
        Ok((Self {}, Bound::default()))
    }

    pub(crate) fn render_metrics(&self, _out: &mut String) {}

    pub(crate) fn dynos_json(&self) -> serde_json::Value {
        serde_json::Value::Array(Vec::new())
    }

    pub(crate) fn nat_json(&self) -> serde_json::Value {
        serde_json::json!({"state": "disabled", "sources": []})
    }
}
