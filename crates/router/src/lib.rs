//! spaced-router: the L7 ingress proxy of a private space. It accepts client connections on
//! `router.listen`, `router.tls_listen` and `router.internal_listen`, admits them at L4,
//! routes each request by Host to an app of the current policy, picks a healthy web dyno
//! (least-request by default), forwards over pooled HTTP/1.1 connections with the Heroku
//! headers, and writes one Heroku-style log line per request (BEHAVIOR.md "Router").
//!
//! It does not read files, watch for reloads or serve the admin API: the binary owns the
//! [`spaced_config::Store`] and swaps policies in; the router reads it once per request and
//! reconciles its background work (health checks, pools) when the version changes.
//!
//! Pure cores: [`balance`], [`health`], [`headers`], [`logline`], [`access`]. The shell:
//! listeners, connections, the proxy path, pools and checkers.
#![forbid(unsafe_code)]

pub mod access;
pub mod balance;
mod body;
mod checker;
pub mod code;
mod conn;
mod dial;
mod dyno_h1;
mod exchange;
pub mod explain;
mod front;
mod h1;
pub mod headers;
pub mod health;
mod listen;
pub mod logline;
mod metrics;
mod pool;
mod proxy;
mod rejected;
mod relay;
mod relay_end;
mod report;
mod shared;
mod state;
pub mod tls;
mod upgrade;

/// For the `dyno_response` fuzz target in `fuzz/` only; not an API.
#[doc(hidden)]
pub use dyno_h1::fuzz::dyno_response as fuzz_dyno_response;
/// For the `client_head` fuzz target in `fuzz/` only; not an API.
#[doc(hidden)]
pub use front::fuzz::client_head as fuzz_client_head;
/// For the criterion bench in `benches/` only; not an API.
#[doc(hidden)]
pub mod bench_api {
    pub use crate::front::fuzz::{request_head_bytes, response_head_bytes, response_head_map};
}

use std::net::SocketAddr;
use std::sync::Arc;

use spaced_config::{DynoBoard, Store};
use spaced_net::{BindError, ConnLimit, Shutdown};

use crate::listen::Kind;
use crate::metrics::Metrics;
use crate::shared::{Shared, external_share};
use crate::state::Runtime;

/// The router could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A listener could not be bound.
    #[error("bind router listener on {addr}")]
    Bind {
        /// The address from the policy.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: BindError,
    },
    /// A bound listener has no local address (should not happen).
    #[error("read the address of router listener {addr}")]
    LocalAddr {
        /// The address from the policy.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl RouterError {
    /// The listener address concerned.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Bind { addr, .. } | Self::LocalAddr { addr, .. } => *addr,
        }
    }

    /// Whether the address is in use (another process, or a second instance).
    pub fn is_addr_in_use(&self) -> bool {
        match self {
            Self::Bind {
                source: BindError::Bind { source, .. },
                ..
            } => source.kind() == std::io::ErrorKind::AddrInUse,
            Self::LocalAddr { .. } => false,
        }
    }
}

/// A running router: the addresses it bound, metrics and dyno health.
#[derive(Debug, Clone)]
pub struct Handle {
    /// Bound `router.listen` addresses, in policy order.
    pub listen: Vec<SocketAddr>,
    /// Bound `router.tls_listen` addresses, in policy order.
    pub tls_listen: Vec<SocketAddr>,
    /// Bound `router.internal_listen` addresses, in policy order.
    pub internal_listen: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

impl Handle {
    /// Appends the router's metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        report::render(&self.shared, out);
    }

    /// Health of every dyno of the current policy: `[{app, process, number, addr, zone, up,
    /// quarantined, in_flight}]`.
    pub fn dynos_json(&self) -> serde_json::Value {
        report::dynos_json(&self.shared)
    }
}

/// Binds every router listener of the current policy (addresses are read now only; port 0
/// is allowed and the bound ports are reported) and starts serving. Every task is spawned
/// on `shutdown`'s tracker; cancelling it stops accepting and lets in-flight requests
/// finish.
///
/// # Errors
/// [`RouterError::Bind`] when a listener cannot be bound (nothing is left running then).
pub async fn spawn(
    store: Arc<Store>,
    board: Arc<DynoBoard>,
    shutdown: Shutdown,
) -> Result<Handle, RouterError> {
    let policy = store.load_full();
    let bind_all =
        |addrs: &[SocketAddr]| -> Result<Vec<(tokio::net::TcpListener, SocketAddr)>, RouterError> {
            addrs
                .iter()
                .map(|&addr| {
                    let l = spaced_net::tcp_listener(addr)
                        .map_err(|source| RouterError::Bind { addr, source })?;
                    let local = l
                        .local_addr()
                        .map_err(|source| RouterError::LocalAddr { addr, source })?;
                    Ok((l, local))
                })
                .collect()
        };
    let plain = bind_all(&policy.router.listen)?;
    let tls = bind_all(&policy.router.tls_listen)?;
    let internal = bind_all(&policy.router.internal_listen)?;

    let shared = Arc::new(Shared {
        runtime: Runtime::new(&store),
        metrics: Metrics::new(),
        limit: ConnLimit::new(policy.router.max_connections),
        external_limit: ConnLimit::new(external_share(policy.router.max_connections)),
        shutdown: shutdown.child(),
        board,
        lot: Default::default(),
        store: Arc::clone(&store),
    });
    let handle = Handle {
        listen: plain.iter().map(|(_, a)| *a).collect(),
        tls_listen: tls.iter().map(|(_, a)| *a).collect(),
        internal_listen: internal.iter().map(|(_, a)| *a).collect(),
        shared: Arc::clone(&shared),
    };
    for (l, local) in plain {
        listen::spawn(l, local, Kind::Plain, Arc::clone(&shared));
    }
    if !tls.is_empty() {
        let acceptor = tls::acceptor(Arc::clone(&store));
        for (l, local) in tls {
            listen::spawn(l, local, Kind::Tls(acceptor.clone()), Arc::clone(&shared));
        }
    }
    for (l, local) in internal {
        listen::spawn(l, local, Kind::Internal, Arc::clone(&shared));
    }
    shared.shutdown.spawn(checker::run(Arc::clone(&shared)));
    Ok(handle)
}
