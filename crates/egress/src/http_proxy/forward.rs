//! The forwarding half of the HTTP proxy, on hyper: absolute-form requests are sent in
//! origin form to the destination over a connection dialled from the pinned source, with
//! hop-by-hop and `Proxy-*` headers removed both ways; the client connection stays alive
//! across requests. A `CONNECT` that arrives later on such a connection is tunnelled too.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use spaced_net::relay::IdleTimer;
use spaced_net::{Rewind, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::auth::identify;
use super::head::{self, MAX_HEAD};
use super::response;
use crate::address::{Address, address_text};
use crate::logline::Proto;
use crate::relay::{self, Moved};
use crate::state::Shared;
use crate::tunnel::Tunnel;

type Body = Either<Incoming, Full<Bytes>>;

/// How long a kept-alive client connection may wait for (and take to send) its next head.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Serves `stream` with hyper; `read` holds the bytes already read from it.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    read: Vec<u8>,
    peer: SocketAddr,
    shutdown: Shutdown,
) {
    let io = TokioIo::new(Rewind::new(Bytes::from(read), stream));
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(shared, peer, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Hyper runs this timer from the moment it waits for a head, so it is also the
        // keep-alive idle limit: long enough for client pools to reuse connections.
        .header_read_timeout(KEEPALIVE)
        .max_buf_size(MAX_HEAD.max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(shared: Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let policy = shared.store.load_full();
    let connect = req.method() == Method::CONNECT;
    let Some(addr) = target(req.uri(), connect) else {
        shared.refused.bad_request.inc();
        // The same answer as on the connection's first request (the strict parser's):
        // an https:// URL is told to use CONNECT.
        if let Some(scheme) = req.uri().scheme_str().filter(|_| !connect)
            && !scheme.eq_ignore_ascii_case("http")
        {
            let e = head::scheme_error(scheme);
            return error(e.status(), &e.to_string());
        }
        return error(
            400,
            "absolute-form http:// URL or CONNECT host:port required",
        );
    };
    let proto = if connect { Proto::Connect } else { Proto::Http };
    let auth = req
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let client = match identify(&shared, &policy, peer.ip(), auth, &addr, proto) {
        Ok(c) => c,
        Err(r) => return error(r.status(), &r.to_string()),
    };
    let tunnel = Tunnel::start(client, peer.ip(), proto);
    let up = match tunnel.dial(&shared, &policy, &addr).await {
        Ok(up) => up,
        Err(e) => return error(e.status(), &e.to_string()),
    };
    let idle = policy.egress.idle_timeout;
    if connect {
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            let lease = up.lease;
            let moved = relay::relay(TokioIo::new(upgraded), up.stream, idle, &lease.stats).await;
            tunnel.finish(&lease, moved);
        });
        return Response::new(Either::Right(Full::new(Bytes::new())));
    }
    let counts = Arc::new(Counts::default());
    let io = Counting {
        inner: up.stream,
        counts: counts.clone(),
        timer: IdleTimer::new(idle),
        moved: false,
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await
    else {
        return error(502, "destination connection failed");
    };
    // The connection task holds the lease until the exchange is over, then writes the
    // tunnel's log line.
    let lease = up.lease;
    tokio::spawn(async move {
        let _ = conn.await;
        let moved = Moved {
            out: counts.out.load(Ordering::Relaxed),
            into: counts.into.load(Ordering::Relaxed),
        };
        lease.stats.bytes_out.add(moved.out);
        lease.stats.bytes_in.add(moved.into);
        tunnel.finish(&lease, moved);
        drop(lease);
    });
    let Ok(outbound) = origin_request(req, &addr) else {
        return error(400, "malformed request");
    };
    match sender.send_request(outbound).await {
        Ok(mut resp) => {
            strip_hop_by_hop(resp.headers_mut());
            resp.map(Either::Left)
        }
        Err(_) => error(502, "the destination closed without a valid response"),
    }
}

/// The destination of a request: `host:port` for CONNECT, `http://host[:port]/…` otherwise.
fn target(uri: &Uri, connect: bool) -> Option<Address> {
    let auth = uri.authority()?;
    if !connect && uri.scheme_str().map(|s| s.eq_ignore_ascii_case("http")) != Some(true) {
        return None;
    }
    // Re-parse with the strict head parser's rules so both paths accept the same targets.
    let line = if connect {
        format!("CONNECT {} HTTP/1.1\r\n\r\n", auth.as_str())
    } else {
        format!("GET http://{}/ HTTP/1.1\r\n\r\n", auth.as_str())
    };
    let head = head::parse_request_head(line.as_bytes()).ok()?;
    match head.target {
        head::Target::Authority { host, port } | head::Target::Absolute { host, port, .. } => {
            Some(head::to_address(&host, port))
        }
        _ => None,
    }
}

/// Rewrites a proxy request into origin form for the destination.
fn origin_request(req: Request<Incoming>, addr: &Address) -> Result<Request<Body>, ()> {
    let (mut parts, body) = req.into_parts();
    let host_header = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| address_text(addr));
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    parts.uri = path.parse().map_err(|_| ())?;
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // RFC 9112 §3.2.2: the target's authority replaces whatever Host the client sent, so
    // the destination cannot be told a different name than the one that was vetted.
    let v = HeaderValue::from_str(&host_header).map_err(|_| ())?;
    parts.headers.insert(header::HOST, v);
    Ok(Request::from_parts(parts, Either::Left(body)))
}

/// Removes hop-by-hop headers: `Connection` and those it names, the fixed list of RFC 9110
/// §7.6.1, and every `Proxy-*` header (credentials must never reach the destination).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy {
        headers.remove(n);
    }
}

fn error(status: u16, detail: &str) -> Response<Body> {
    response::error(status, detail).map(Either::Right)
}

#[derive(Debug, Default)]
struct Counts {
    out: AtomicU64,
    into: AtomicU64,
}

/// Counts the bytes of a destination connection for the tunnel's log line, and ends it
/// when no byte moves either way for `idle_timeout`, as a CONNECT tunnel's relay does: a
/// destination that stalls mid-answer would otherwise hold the client, the socket and a
/// `max_per_destination` slot for as long as the client waits.
struct Counting {
    inner: TcpStream,
    counts: Arc<Counts>,
    timer: IdleTimer,
    /// A byte moved since the timer last looked.
    moved: bool,
}

impl Counting {
    /// Called when the socket has nothing to give or take now: `Pending`, or the idle
    /// error once `idle_timeout` passed without a byte.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let moved = std::mem::take(&mut self.moved);
        self.timer
            .poll_expired(cx, moved)
            .map(|_| io::ErrorKind::TimedOut.into())
    }
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_pending() {
            return self.poll_idle(cx).map(Err);
        }
        let n = buf.filled().len().saturating_sub(before);
        self.moved |= n > 0;
        self.counts.into.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        match &r {
            Poll::Ready(Ok(n)) => {
                self.moved |= *n > 0;
                self.counts.out.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Poll::Pending => return self.poll_idle(cx).map(Err),
            Poll::Ready(Err(_)) => {}
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("host", "example.com"),
            ("x-kept", "yes"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "x-kept"]);
    }

    #[test]
    fn targets() {
        let u: Uri = "http://Example.com:8080/x?y".parse().unwrap();
        assert_eq!(
            target(&u, false),
            Some(Address::Domain("example.com".into(), 8080))
        );
        let u: Uri = "http://10.0.0.1/x".parse().unwrap();
        assert_eq!(
            target(&u, false),
            Some(Address::Ip("10.0.0.1:80".parse().unwrap()))
        );
        let u: Uri = "https://example.com/".parse().unwrap();
        assert_eq!(target(&u, false), None);
        let u: Uri = "/x".parse().unwrap();
        assert_eq!(target(&u, false), None);
        let u: Uri = "example.com:443".parse().unwrap();
        assert_eq!(
            target(&u, true),
            Some(Address::Domain("example.com".into(), 443))
        );
    }
}
