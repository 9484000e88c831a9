//! The HTTP proxy listener. The first request head is read with the strict parser in
//! [`head`]: a `CONNECT` (the common case: HTTPS through a proxy) becomes a tunnel
//! without any HTTP machinery; an absolute-form request hands the connection, bytes read so
//! far included, to the hyper-based forwarder in [`forward`], which keeps the client
//! connection alive across requests.

mod forward;
pub mod head;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use spaced_config::Policy;
use spaced_net::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dial::{self, DialError};
use head::{Head, HeadError, Host, Target};
use crate::identity::{self, Client, Refusal, UserPass};
use crate::logline::{Proto, TunnelRecord, refusal_line};
use crate::relay;
use crate::socks5::Address;
use crate::state::Shared;

pub(crate) async fn serve_conn(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
) {
    let policy = shared.store.load_full();
    let mut buf = Vec::with_capacity(1024);
    let head = match tokio::time::timeout(
        crate::HANDSHAKE_TIMEOUT,
        read_head(&mut stream, &mut buf),
    )
    .await
    {
        Ok(Ok(h)) => h,
        Ok(Err(Some(e))) => {
            shared.refused.bad_request.inc();
            refuse(&mut stream, &error_response(e.status(), &e.to_string())).await;
            return;
        }
        // The client went away or was too slow: nothing useful to say.
        Ok(Err(None)) | Err(_) => return,
    };
    match &head.target {
        Target::Authority { host, port } => {
            let addr = to_address(host, *port);
            connect(
                &shared,
                &policy,
                stream,
                peer,
                &head,
                addr,
                &buf[head.len..],
            )
            .await;
        }
        Target::Absolute { .. } => {
            // Boxed: hyper's connection state is large, and every connection task (most of
            // them CONNECTs) would otherwise carry and move its size.
            Box::pin(forward::serve(shared, stream, buf, peer, shutdown)).await;
        }
        Target::Origin(_) | Target::Asterisk => {
            shared.refused.bad_request.inc();
            let msg = "this is a proxy: send absolute-form requests or CONNECT";
            refuse(&mut stream, &error_response(400, msg)).await;
        }
    }
}

/// Reads until a complete head is in `buf`. `Err(None)`: the client closed or failed.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, Option<HeadError>> {
    // Where the search for the blank line resumes: a client sending its head a byte at a
    // time must not make us rescan everything it sent on every read.
    let mut searched: usize = 0;
    loop {
        let from = searched.saturating_sub(3);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return head::parse_request_head(buf).map_err(Some);
        }
        if buf.len() >= head::MAX_HEAD {
            return Err(Some(HeadError::TooLarge));
        }
        searched = buf.len();
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().clamp(1024, head::MAX_HEAD));
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
    }
}

pub(crate) fn to_address(host: &Host, port: u16) -> Address {
    match host {
        Host::Ip(ip) => Address::Ip(SocketAddr::new(*ip, port)),
        Host::Name(n) => Address::Domain(n.clone(), port),
    }
}

/// The credentials of a `Proxy-Authorization` header, if one was sent.
pub(crate) fn credentials(value: Option<&[u8]>) -> Result<Option<UserPass>, Refusal> {
    value.map(identity::basic_credentials).transpose()
}

/// Identifies the client of one request, counting and logging a refusal. `dest` is only
/// formatted for the log line of a refusal (not per tunnel).
pub(crate) fn identify(
    shared: &Shared,
    policy: &Policy,
    peer: IpAddr,
    auth: Option<&[u8]>,
    dest: &Address,
    proto: Proto,
) -> Result<Client, Refusal> {
    let result = if !identity::is_internal(policy, peer) {
        Err(Refusal::Outside)
    } else {
        match credentials(auth) {
            Ok(c) => {
                let c = c.as_ref().map(|(u, p)| (u.as_slice(), p.as_slice()));
                identity::identify(policy, peer, c)
            }
            // Unreadable credentials are wrong ones (no app has an empty name): still a
            // dyno address's app, else 407.
            Err(_) => identity::identify(policy, peer, Some((&[], &[]))),
        }
    };
    if let Err(r) = result {
        shared.refused.identity(r).inc();
        let dest = address_text(dest);
        tracing::warn!(target: "egress", "{}", refusal_line("", peer, &dest, proto, r.reason(), ""));
    }
    result
}

/// Counts and logs a failed dial.
pub(crate) fn dial_failed(
    shared: &Shared,
    client: &Client,
    peer: IpAddr,
    dest: &Address,
    proto: Proto,
    e: &DialError,
) {
    let (reason, rule) = match e {
        DialError::Denied(d) => {
            shared.refused.denied.inc();
            ("denied", d.rule())
        }
        DialError::Resolve { .. } => {
            shared.refused.resolve.inc();
            ("resolve", String::new())
        }
        DialError::NoSource { .. } => {
            shared.refused.no_source.inc();
            ("no_source", String::new())
        }
        DialError::Limit { .. } => ("limit", String::new()),
        DialError::Connect { .. } => ("connect_failed", String::new()),
    };
    let line = refusal_line(
        client.app_name(),
        peer,
        &address_text(dest),
        proto,
        reason,
        &rule,
    );
    tracing::warn!(target: "egress", "{line}");
    tracing::debug!(error = %e, "dial failed");
}

async fn connect(
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
    let start = Instant::now();
    let up = match dial::dial(shared, policy, client.pin_key(), &addr).await {
        Ok(up) => up,
        Err(e) => {
            dial_failed(shared, &client, peer.ip(), &addr, Proto::Connect, &e);
            refuse(&mut stream, &error_response(e.status(), &e.to_string())).await;
            return;
        }
    };
    let (mut upstream, lease) = (up.stream, up.lease);
    let reply = if head.minor == 0 {
        &b"HTTP/1.0 200 Connection established\r\n\r\n"[..]
    } else {
        &b"HTTP/1.1 200 Connection established\r\n\r\n"[..]
    };
    if stream.write_all(reply).await.is_err() {
        return;
    }
    // Bytes the client sent right behind the head (a TLS ClientHello) go first.
    if !early.is_empty() && upstream.write_all(early).await.is_err() {
        return;
    }
    lease.stats.bytes_out.add(early.len() as u64);
    let moved = relay::relay_tcp(stream, upstream, policy.egress.idle_timeout, &lease.stats).await;
    let record = TunnelRecord {
        app: client.app_name(),
        client: peer.ip(),
        egress_ip: lease.source,
        dest: Some(lease.dest),
        proto: Proto::Connect,
        bytes_out: moved.out + early.len() as u64,
        bytes_in: moved.into,
        duration: start.elapsed(),
    };
    tracing::info!(target: "egress", "{}", record.line());
}

/// `host:port` as the client asked (for refusal lines).
pub(crate) fn address_text(addr: &Address) -> String {
    match addr {
        Address::Ip(sa) => sa.to_string(),
        Address::Domain(h, p) => format!("{h}:{p}"),
    }
}

/// Writes an error response and closes gracefully: our half first, then what the client
/// still sends is read and dropped for a moment, so that closing with unread bytes does
/// not reset the connection and destroy the response before the client has read it.
async fn refuse(stream: &mut TcpStream, response: &[u8]) {
    if stream.write_all(response).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    // On the heap: an array here would be part of every connection task's state (this
    // future is inlined into it), which the runtime moves when it spawns the task.
    let mut sink = vec![0u8; 4096];
    let drain = async {
        let mut total = 0usize;
        while total < 256 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// A complete error response that closes the connection.
pub(crate) fn error_response(status: u16, detail: &str) -> Vec<u8> {
    let reason = reason(status);
    let body = format!("{status} {reason}: {detail}\n");
    let auth = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"spaced egress\"\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses() {
        let r = String::from_utf8(error_response(407, "wrong egress credentials")).unwrap();
        assert!(r.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"));
        assert!(r.contains("Proxy-Authenticate: Basic"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let r = String::from_utf8(error_response(403, "x")).unwrap();
        assert!(!r.contains("Proxy-Authenticate"));
        for s in [400, 403, 407, 431, 501, 502, 503, 504, 505, 599] {
            assert!(!reason(s).is_empty());
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address_text(&to_address(&Host::Name("a.b".into()), 443)),
            "a.b:443"
        );
        assert_eq!(
            address_text(&to_address(&Host::Ip("::1".parse().unwrap()), 80)),
            "[::1]:80"
        );
        assert_eq!(credentials(None), Ok(None));
        assert_eq!(
            credentials(Some(b"Basic YTpi")),
            Ok(Some((b"a".to_vec(), b"b".to_vec())))
        );
        assert_eq!(credentials(Some(b"Bearer x")), Err(Refusal::BadCredentials));
    }
}
