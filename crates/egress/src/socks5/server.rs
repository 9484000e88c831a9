//! The SOCKS5 listener: method selection, user/password, then CONNECT (a relayed tunnel)
//! or UDP ASSOCIATE (see [`super::udp`]). Parsing is [`super::wire`]'s; this only moves
//! bytes and applies the identity and destination policy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::udp;
use super::wire::{self as socks5, Command, Reply, SocksError};
use crate::address::address_text;
use crate::identity::{self, Client, Refusal};
use crate::logline::{Proto, refusal_line};
use crate::state::Shared;
use crate::tunnel::Tunnel;

/// Reads until `parse` completes a message; `None` when the client closed, failed, sent
/// garbage or more than a handshake message can hold.
async fn read_msg<T>(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, SocksError>,
) -> Result<Option<T>, SocksError> {
    loop {
        if let Some((v, n)) = parse(buf)? {
            buf.drain(..n);
            return Ok(Some(v));
        }
        if buf.len() >= socks5::MAX_MESSAGE {
            return Ok(None);
        }
        let mut chunk = [0u8; 512];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The client after the handshake: who it is, or why it will be refused.
type Who = Result<Client, Refusal>;

pub(crate) async fn serve_conn(shared: Arc<Shared>, mut stream: TcpStream, peer: SocketAddr) {
    let policy = shared.store.load_full();
    let mut buf = Vec::with_capacity(64);
    let handshake = tokio::time::timeout(crate::limits::HANDSHAKE_TIMEOUT, async {
        let who = negotiate(&policy, &mut stream, &mut buf, peer.ip()).await?;
        let req = read_msg(&mut stream, &mut buf, socks5::parse_request).await;
        Some((who, req))
    })
    .await;
    let Ok(Some((who, req))) = handshake else {
        return;
    };
    let req = match req {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            shared.refused.bad_request.inc();
            if let Some(code) = e.reply_code() {
                reply(&mut stream, code, unspecified()).await;
            }
            return;
        }
    };
    let proto = if req.command == Command::UdpAssociate {
        Proto::Socks5Udp
    } else {
        Proto::Socks5
    };
    let client = match who {
        Ok(c) => c,
        Err(r) => {
            shared.refused.identity(r).inc();
            let dest = address_text(&req.address);
            tracing::warn!(target: "egress", "{}", refusal_line("", peer.ip(), &dest, proto, r.reason(), ""));
            reply(&mut stream, Reply::NotAllowed, unspecified()).await;
            return;
        }
    };
    match req.command {
        Command::Bind => reply(&mut stream, Reply::CommandNotSupported, unspecified()).await,
        Command::UdpAssociate => {
            let (relay, bound) = match udp::bind_relay(&stream) {
                Ok(r) => r,
                Err(code) => {
                    if let Some(code) = code {
                        reply(&mut stream, code, unspecified()).await;
                    }
                    return;
                }
            };
            reply(&mut stream, Reply::Succeeded, bound).await;
            // Boxed: the association's state is large, and every SOCKS connection task
            // (most of them CONNECTs) would otherwise carry and move its size.
            let udp = udp::associate(&shared, &policy, stream, relay, peer, client, req.address);
            Box::pin(udp).await
        }
        Command::Connect => {
            let tunnel = Tunnel::start(client, peer.ip(), proto);
            let up = match tunnel.dial(&shared, &policy, &req.address).await {
                Ok(up) => up,
                Err(e) => {
                    reply(&mut stream, e.reply(), unspecified()).await;
                    return;
                }
            };
            let bound = up.stream.local_addr().unwrap_or_else(|_| unspecified());
            let mut msg = Vec::with_capacity(22);
            socks5::encode_reply(Reply::Succeeded, bound, &mut msg);
            if stream.write_all(&msg).await.is_err() {
                return;
            }
            // Data pipelined behind the request (optimistic clients) goes first.
            let idle = policy.egress.idle_timeout;
            tunnel.relay_tcp(stream, up, &buf, idle).await;
        }
    }
}

/// Method selection and, for user/password, the sub-negotiation. Returns who the client
/// is (or why its request will be refused), or `None` when the connection is over.
///
/// No-auth is chosen when offered and enough: the client is known by address (a dyno) or
/// the space needs no credentials. Otherwise user/password, when offered. Asking a client
/// that offers both for credentials it does not need would break some of them: Java's
/// SOCKS client (JDBC) answers with the local user name and an empty password. A client
/// outside the space (or blocked) never gets here: the accept loop closed it. Should a
/// reload push it out between accept and now, it is refused at its request with 0x02.
async fn negotiate(
    policy: &spaced_config::Policy,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: IpAddr,
) -> Option<Who> {
    let greeting = read_msg(stream, buf, socks5::parse_greeting).await.ok()??;
    let by_address = identity::identify(policy, peer, None);
    let needs_credentials = matches!(by_address, Err(Refusal::MissingCredentials));
    if greeting.no_auth && !needs_credentials {
        stream
            .write_all(&[socks5::VERSION, socks5::METHOD_NONE])
            .await
            .ok()?;
        return Some(by_address);
    }
    if greeting.user_pass {
        stream
            .write_all(&[socks5::VERSION, socks5::METHOD_USER_PASS])
            .await
            .ok()?;
        let creds = read_msg(stream, buf, socks5::parse_credentials)
            .await
            .ok()??;
        let who = identity::identify(policy, peer, Some((&creds.user, &creds.pass)));
        let status = u8::from(matches!(who, Err(Refusal::BadCredentials)));
        stream
            .write_all(&[socks5::AUTH_VERSION, status])
            .await
            .ok()?;
        return (status == 0).then_some(who);
    }
    // Nothing acceptable offered (or no-auth while credentials are required).
    let _ = stream
        .write_all(&[socks5::VERSION, socks5::METHOD_UNACCEPTABLE])
        .await;
    None
}

async fn reply(stream: &mut TcpStream, code: Reply, bound: SocketAddr) {
    let mut msg = Vec::with_capacity(22);
    socks5::encode_reply(code, bound, &mut msg);
    let _ = stream.write_all(&msg).await;
}

fn unspecified() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
}
