//! The components a policy asks for, started once at boot: a component runs only when its
//! section has at least one listener (listener addresses are read at start; everything else
//! follows reloads inside each component).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use spaced_config::{DynoBoard, Store};
use spaced_net::Shutdown;

/// Handles of the running components.
pub(crate) struct Components {
    router: Option<spaced_router::Handle>,
    resolver: Option<spaced_resolver::Handle>,
    egress: Option<spaced_egress::Handle>,
}

/// Bound addresses, by listener key, in the order of the config file.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// `router.listen`.
    pub router: Vec<SocketAddr>,
    /// `router.tls_listen`.
    pub router_tls: Vec<SocketAddr>,
    /// `router.internal_listen`.
    pub router_internal: Vec<SocketAddr>,
    /// `resolver.listen` (UDP and TCP share the port).
    pub resolver: Vec<SocketAddr>,
    /// `egress.listen`.
    pub egress: Vec<SocketAddr>,
    /// `egress.socks_listen`.
    pub socks: Vec<SocketAddr>,
    /// `egress.transparent_listen`.
    pub transparent: Vec<SocketAddr>,
}

impl Components {
    /// Binds and starts every component with listeners. Each gets a child of `shutdown`.
    pub(crate) async fn spawn(
        store: Arc<Store>,
        board: Arc<DynoBoard>,
        shutdown: &Shutdown,
    ) -> Result<(Self, Bound)> {
        let policy = store.load_full();
        let mut bound = Bound::default();
        let r = &policy.router;
        let router =
            if r.listen.is_empty() && r.tls_listen.is_empty() && r.internal_listen.is_empty() {
                None
            } else {
                let handle = spaced_router::spawn(store.clone(), board.clone(), shutdown.child())
                    .await
                    .context("start the router")?;
                bound.router.clone_from(&handle.listen);
                bound.router_tls.clone_from(&handle.tls_listen);
                bound.router_internal.clone_from(&handle.internal_listen);
                Some(handle)
            };
        let resolver = if policy.resolver.listen.is_empty() {
            None
        } else {
            let handle = spaced_resolver::spawn(store.clone(), board.clone(), shutdown.child())
                .await
                .context("start the resolver")?;
            bound.resolver.clone_from(&handle.listen);
            Some(handle)
        };
        let egress = if policy.egress.listen.is_empty()
            && policy.egress.socks_listen.is_empty()
            && policy.egress.transparent_listen.is_empty()
        {
            None
        } else {
            let handle = spaced_egress::spawn(store.clone(), shutdown.child())
                .await
                .context("start the egress gateway")?;
            bound.egress.clone_from(&handle.listen);
            bound.socks.clone_from(&handle.socks_listen);
            bound.transparent.clone_from(&handle.transparent_listen);
            Some(handle)
        };
        Ok((
            Self {
                router,
                resolver,
                egress,
            },
            bound,
        ))
    }

    /// Every component's Prometheus text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        if let Some(r) = &self.router {
            r.render_metrics(out);
        }
        if let Some(r) = &self.resolver {
            r.render_metrics(out);
        }
        if let Some(e) = &self.egress {
            e.render_metrics(out);
        }
    }

    /// `GET /dynos`.
    pub(crate) fn dynos_json(&self) -> serde_json::Value {
        match &self.router {
            Some(r) => r.dynos_json(),
            None => serde_json::Value::Array(Vec::new()),
        }
    }

    /// `GET /nat`.
    pub(crate) fn nat_json(&self) -> serde_json::Value {
        match &self.egress {
            Some(e) => e.nat_json(),
            None => serde_json::json!({"state": "disabled", "sources": []}),
        }
    }
}
