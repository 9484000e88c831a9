//! `CONNECT host:port` as a connection's first request: a tunnel without any HTTP
//! machinery (the common case: HTTPS through a proxy).

use std::net::SocketAddr;

use spaced_config::Policy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::auth::identify;
use super::head::Head;
use super::response::{error_response, refuse};
use crate::address::Address;
use crate::logline::Proto;
use crate::state::Shared;
use crate::tunnel::Tunnel;

/// Identifies the client, dials `addr`, answers 200 and relays; `early` holds the bytes
/// the client sent right behind the head.
pub(super) async fn connect(
    shared: &Shared,
    policy: &Policy,
    mut stream: TcpStream,
    peer: SocketAddr,
    head: &Head,
    addr: Address,
    early: &[u8],
) {
    let auth = head.header("proxy-authorization");
    let client = match identify(shared, policy, peer.ip(), auth, &addr, Proto::Connect) {
        Ok(c) => c,
        Err(r) => {
            refuse(&mut stream, &error_response(r.status(), &r.to_string())).await;
            return;
        }
    };
    let tunnel = Tunnel::start(client, peer.ip(), Proto::Connect);
    let up = match tunnel.dial(shared, policy, &addr).await {
        Ok(up) => up,
        Err(e) => {
            refuse(&mut stream, &error_response(e.status(), &e.to_string())).await;
            return;
        }
    };
    let reply = if head.minor == 0 {
        &b"HTTP/1.0 200 Connection established\r\n\r\n"[..]
    } else {
        &b"HTTP/1.1 200 Connection established\r\n\r\n"[..]
    };
    if stream.write_all(reply).await.is_err() {
        return;
    }
    let idle = policy.egress.idle_timeout;
    tunnel.relay_tcp(stream, up, early, idle).await;
}
