//! The router's listeners: the accept loop of `spaced_net` with L4 admission right after
//! accept (before a byte is read), the `max_connections` cap, the PROXY header on external
//! listeners when configured, the TLS handshake on `tls_listen`, then HTTP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderValue;
use spaced_config::{Timeouts, canonical};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error};

use crate::access::{self, Listener};
use crate::conn::{self, ctx::ConnCtx};
use crate::shared::{Shared, Slot};
use crate::tls;

/// What a listener speaks.
#[derive(Clone)]
pub(crate) enum Kind {
    /// `router.listen`.
    Plain,
    /// `router.tls_listen`.
    Tls(TlsAcceptor),
    /// `router.internal_listen`.
    Internal,
}

impl Kind {
    fn listener(&self) -> Listener {
        match self {
            Self::Plain | Self::Tls(_) => Listener::External,
            Self::Internal => Listener::Internal,
        }
    }
}

/// Starts the accept loop of one bound listener as a tracked task.
pub(crate) fn spawn(listener: TcpListener, local: SocketAddr, kind: Kind, shared: Arc<Shared>) {
    let port_value = HeaderValue::from(local.port());
    let shutdown = shared.shutdown.clone();
    shutdown.clone().spawn(async move {
        let which = kind.listener();
        let admit = |peer: SocketAddr| -> bool {
            let policy = shared.store.load();
            let verdict = if access::expects_proxy_header(&policy, which) {
                access::admit_proxy_peer(&policy, peer.ip())
            } else {
                access::admit_l4(&policy, which, peer.ip())
            };
            match verdict {
                Ok(()) => true,
                Err(denied) => {
                    shared.metrics.l4_denied.inc();
                    debug!(client.addr = %peer, listener = %which, reason = %denied, "connection refused");
                    false
                }
            }
        };
        let handle = |stream: TcpStream, peer: SocketAddr| {
            let Some(slot) = Slot::acquire(&shared, which) else {
                shared.metrics.over_limit.inc();
                debug!(client.addr = %peer, listener = %which, "max_connections reached, closing");
                return;
            };
            shared.shutdown.spawn(connection(
                stream,
                peer,
                kind.clone(),
                port_value.clone(),
                slot,
                Arc::clone(&shared),
            ));
        };
        if let Err(e) = spaced_net::serve(listener, shutdown.clone(), admit, handle).await {
            error!(listener = %local, error = %e, "router listener stopped");
        }
    });
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    port_value: HeaderValue,
    slot: Slot,
    shared: Arc<Shared>,
) {
    // The connection task is moved whole at spawn and again when it ends, so it stays
    // small: each stage that holds much (the PROXY header buffer, the TLS handshake and
    // session, the requests' machinery) lives in a box of its own, and an idle connection
    // drops the requests' box while it waits ([`conn::park`]). What serves the connection
    // is built in this block, so the values that chose it (the timeouts, the client) end
    // with it instead of staying in the task beside it for the connection's life.
    let serving = {
        let which = kind.listener();
        let (client_header, proxy_header) = {
            let policy = shared.store.load();
            (
                policy.router.timeouts.client_header,
                access::expects_proxy_header(&policy, which),
            )
        };
        let client = if proxy_header {
            let read = spaced_net::proxy_protocol::read_header(&mut stream, client_header);
            let client = match Box::pin(read).await {
                Ok(h) => canonical(h.client(peer).ip()),
                Err(e) => {
                    shared.metrics.l4_denied.inc();
                    debug!(client.addr = %peer, error = %e, "bad PROXY header, closing");
                    return;
                }
            };
            let policy = shared.store.load();
            if let Err(denied) = access::admit_l4(&policy, which, client) {
                shared.metrics.l4_denied.inc();
                debug!(client.addr = %client, proxy.addr = %peer, reason = %denied, "connection refused");
                return;
            }
            client
        } else {
            canonical(peer.ip())
        };
        // Taken after the PROXY header's wait, not before: a value held across two waits
        // stays in the task for its whole life (the compiler cannot overlap it with the
        // parked connection's state).
        let timeouts = shared.store.load().router.timeouts;
        match kind {
            Kind::Tls(acceptor) => {
                // Awaited here, not returned: the values above stay in the task across
                // this await, but the plain arm's future is the larger state, so they cost
                // nothing; one future type for both arms (an `Either`) cost a branch on
                // every poll, about 40 instructions per keep-alive request.
                let tls = serve_tls(acceptor, stream, client, port_value, slot, shared, timeouts);
                Box::pin(tls).await;
                return;
            }
            Kind::Plain | Kind::Internal => {
                let ctx = ConnCtx::new(shared, which, client, port_value, None, false, Some(slot));
                conn::park::serve(stream, Arc::new(ctx), timeouts)
            }
        }
    };
    serving.await;
}

/// The TLS handshake, in a box dropped once it is done, then the TLS stream served and
/// parked like a plain one.
async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    client: IpAddr,
    port_value: HeaderValue,
    slot: Slot,
    shared: Arc<Shared>,
    timeouts: Timeouts,
) {
    let tls = handshake(acceptor, stream, client, port_value, slot, shared, timeouts);
    let Some((tls_stream, ctx)) = Box::pin(tls).await else {
        return;
    };
    conn::park::serve(tls_stream, Arc::new(ctx), timeouts).await;
}

/// The TLS handshake (within `client_header`), and the connection's context with what it
/// negotiated (HTTP/1.1 or HTTP/2 as ALPN chose); `None` when it failed.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    client: IpAddr,
    port_value: HeaderValue,
    slot: Slot,
    shared: Arc<Shared>,
    timeouts: Timeouts,
) -> Option<(TlsStream<TcpStream>, ConnCtx)> {
    let accepted = tokio::time::timeout(timeouts.client_header, acceptor.accept(stream)).await;
    let tls_stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(client.addr = %client, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            debug!(client.addr = %client, "TLS handshake too slow");
            return None;
        }
    };
    let (version, h2) = {
        let (_, server) = tls_stream.get_ref();
        (tls::tls_version_label(server), tls::negotiated_h2(server))
    };
    let ctx = ConnCtx::new(
        shared,
        Listener::External,
        client,
        port_value,
        Some(version),
        h2,
        Some(slot),
    );
    Some((tls_stream, ctx))
}
