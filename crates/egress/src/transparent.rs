//! Transparent mode: connections that iptables redirected to `transparent_listen` are
//! relayed to their original destination (`SO_ORIGINAL_DST`), with the same policy and
//! pinning as the proxies. Such clients cannot present credentials, so they are known by
//! address (a dyno's IP) or served as anonymous in-space clients.

use std::net::SocketAddr;
use std::sync::Arc;

use spaced_net::canonical_addr;
use tokio::net::TcpStream;

use crate::address::Address;
use crate::identity::{self, Client};
use crate::logline::{Proto, refusal_line};
use crate::state::Shared;
use crate::tunnel::Tunnel;

pub(crate) async fn serve_conn(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let policy = shared.store.load_full();
    // Outside clients are closed at once, before anything is read or dialled.
    if !identity::is_internal(&policy, peer.ip()) {
        shared.refused.outside.inc();
        tracing::debug!(client = %peer, "transparent: client outside the space");
        return;
    }
    let dest = match spaced_net::original_dst(&stream) {
        Ok(d) => canonical_addr(d),
        Err(e) => {
            shared.refused.bad_request.inc();
            tracing::debug!(client = %peer, error = %e, "transparent: no original destination");
            return;
        }
    };
    // A connection made straight to the listener has itself as "original" destination:
    // dialling it would loop.
    let local = stream.local_addr().ok().map(canonical_addr);
    if Some(dest) == local {
        shared.refused.bad_request.inc();
        let line = refusal_line(
            "",
            peer.ip(),
            &dest.to_string(),
            Proto::Transparent,
            "not_redirected",
            "",
        );
        tracing::warn!(target: "egress", "{line}");
        return;
    }
    let client = policy
        .dyno_ips
        .get(&peer.ip())
        .and_then(|&i| policy.apps.get(i))
        .map_or(Client::Anonymous(peer.ip()), |app| Client::App(app.clone()));
    let tunnel = Tunnel::start(client, peer.ip(), Proto::Transparent);
    // Nothing to answer on failure: the client sees the connection close, as if the
    // destination had refused it.
    let Ok(up) = tunnel.dial(&shared, &policy, &Address::Ip(dest)).await else {
        return;
    };
    let idle = policy.egress.idle_timeout;
    tunnel.relay_tcp(stream, up, &[], idle).await;
}
