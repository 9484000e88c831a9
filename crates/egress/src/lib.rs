//! The egress gateway of a private space: outbound traffic of the space's apps leaves from
//! the space's stable source IPs, through an HTTP forward proxy (absolute-form requests and
//! `CONNECT`), SOCKS5 (CONNECT and UDP ASSOCIATE) or transparent redirection.
//!
//! Pure cores, no sockets: [`pin`] (rendezvous choice of the source IP), [`socks5`] and
//! [`head`] (wire parsers), [`identity`] (who the client is), [`vet`] (destination
//! policy), [`logline`]. The shells around them, one module per protocol (`http_proxy`,
//! `socks5`'s server and UDP relay, `transparent`), hand every tunnel to `tunnel`, which
//! dials (`spaced_net::connect_from`), relays (`spaced_net::relay_tcp`) and writes its
//! line. The crate's README has the module map.
//!
//! The policy is read once per connection, so a reload applies to new connections while
//! open tunnels keep running on the policy they started with.
//!
//! Log lines of the contract (one per tunnel, and refusals) are events with target `egress`
//! whose message is the whole line; diagnostics with fields use the module targets.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use spaced_config::Store;
use spaced_net::Shutdown;
use tokio::net::{TcpListener, TcpStream};

mod address;
mod dial;
mod http_proxy;
pub mod identity;
pub mod limits;
pub mod logline;
pub mod pin;
mod relay;
pub mod socks5;
mod state;
mod transparent;
mod tunnel;
pub mod vet;

pub use head::{HeadError, parse_request_head};
pub use http_proxy::head;
pub use socks5::SocksError;

use state::Shared;

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// A listener could not be bound.
    #[error("bind egress {kind} listener")]
    Bind {
        /// `listen`, `socks_listen` or `transparent_listen`.
        kind: &'static str,
        /// Why.
        #[source]
        source: spaced_net::BindError,
    },
    /// The bound address of a listener could not be read.
    #[error("egress {kind} listener address")]
    LocalAddr {
        /// `listen`, `socks_listen` or `transparent_listen`.
        kind: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl EgressError {
    /// Whether retrying later could help (an address in use may be freed; the others are
    /// configuration errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Bind { source, .. } => match source {
                spaced_net::BindError::Bind { source, .. } => {
                    source.kind() == std::io::ErrorKind::AddrInUse
                }
            },
            Self::LocalAddr { .. } => false,
        }
    }
}

/// The running gateway: its bound addresses and its statistics.
#[derive(Debug, Clone)]
pub struct Handle {
    /// Bound HTTP proxy listeners (ports resolved when 0 was asked for).
    pub listen: Vec<SocketAddr>,
    /// Bound SOCKS5 listeners.
    pub socks_listen: Vec<SocketAddr>,
    /// Bound transparent listeners.
    pub transparent_listen: Vec<SocketAddr>,
    shared: Arc<Shared>,
}

impl Handle {
    /// Appends the gateway's Prometheus metrics: dials by source IP and result, open
    /// tunnels and bytes relayed by source IP, refusals by reason.
    pub fn render_metrics(&self, out: &mut String) {
        self.shared.render_metrics(out);
    }

    /// `{"state": "enabled", "sources": [{"ip": "...", "active": n, ...}]}` for `GET /nat`.
    pub fn nat_json(&self) -> serde_json::Value {
        self.shared.nat_json()
    }

    /// Open connections from `source` to `dest` (for diagnostics and tests).
    pub fn connections_to(&self, source: std::net::IpAddr, dest: SocketAddr) -> u32 {
        self.shared.dests.count(source, dest)
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Socks,
    Transparent,
}

/// Binds every egress listener of the current policy and serves them until `shutdown`.
///
/// # Errors
/// When a listener cannot be bound; nothing is left running then.
pub async fn spawn(store: Arc<Store>, shutdown: Shutdown) -> Result<Handle, EgressError> {
    let policy = store.load_full();
    let shared = Arc::new(Shared::new(store));
    let mut bound: Vec<(Kind, TcpListener)> = Vec::new();
    let mut handle = Handle {
        listen: Vec::new(),
        socks_listen: Vec::new(),
        transparent_listen: Vec::new(),
        shared: shared.clone(),
    };
    let e = &policy.egress;
    for (kind, name, addrs) in [
        (Kind::Http, "listen", &e.listen),
        (Kind::Socks, "socks_listen", &e.socks_listen),
        (
            Kind::Transparent,
            "transparent_listen",
            &e.transparent_listen,
        ),
    ] {
        for &addr in addrs {
            let l = spaced_net::tcp_listener(addr)
                .map_err(|source| EgressError::Bind { kind: name, source })?;
            let local = l
                .local_addr()
                .map_err(|source| EgressError::LocalAddr { kind: name, source })?;
            match kind {
                Kind::Http => handle.listen.push(local),
                Kind::Socks => handle.socks_listen.push(local),
                Kind::Transparent => handle.transparent_listen.push(local),
            }
            bound.push((kind, l));
        }
    }
    for (kind, listener) in bound {
        let sd = shutdown.clone();
        shutdown.spawn(serve(listener, kind, shared.clone(), sd));
    }
    Ok(handle)
}

/// The accept loop of one listener: `spaced_net::serve`, the one every TCP listener of
/// every component uses (it pauses only when descriptors or memory run out). Admission
/// right after accept, before a byte is read (BEHAVIOR.md "Egress": clients in
/// `space.internal` only; `space.blocked` wins over it): an outsider is closed at once
/// rather than held through a handshake timeout. Then `egress.max_connections`, over every
/// egress listener.
async fn serve(listener: TcpListener, kind: Kind, shared: Arc<Shared>, shutdown: Shutdown) {
    let admit = |peer: SocketAddr| {
        let policy = shared.store.load();
        shared.limit.set_max(policy.egress.max_connections);
        if identity::is_internal(&policy, peer.ip()) {
            return true;
        }
        shared.refused.outside.inc();
        tracing::debug!(client.addr = %peer, "egress: client outside the space or blocked, closed");
        false
    };
    let handle = |stream: TcpStream, peer: SocketAddr| {
        let Some(slot) = shared.limit.try_acquire() else {
            shared.refused.over_limit.inc();
            tracing::debug!(client.addr = %peer, "egress.max_connections reached, closed");
            return;
        };
        let conn = handle_conn(kind, shared.clone(), stream, peer, shutdown.clone());
        shutdown.spawn(async move {
            let _slot = slot;
            conn.await;
        });
    };
    if let Err(e) = spaced_net::serve(listener, shutdown.clone(), admit, handle).await {
        tracing::error!(error = %e, "egress listener stopped");
    }
}

async fn handle_conn(
    kind: Kind,
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
) {
    let peer = spaced_net::canonical_addr(peer);
    match kind {
        Kind::Http => http_proxy::serve_conn(shared, stream, peer, shutdown).await,
        Kind::Socks => socks5::server::serve_conn(shared, stream, peer).await,
        Kind::Transparent => transparent::serve_conn(shared, stream, peer).await,
    }
}
