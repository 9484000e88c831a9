//! Recording dynos: HTTP/1.1 servers on loopback that answer with their name and record
//! every request they saw (method, target, version, headers, body, peer), so a test can
//! assert on what reached the dyno. A few paths behave otherwise, for the failure cases
//! (see [`Backend`]).

// Test support: a failed step here is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request's method.
    pub method: String,
    /// Its target as received (path and query).
    pub uri: String,
    /// The target's path alone.
    pub path: String,
    /// Its HTTP version.
    pub version: http::Version,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Bytes,
    /// The address it came from (the router's source address).
    pub peer: SocketAddr,
}

/// A dyno: answers `200 <name>` by default; special paths:
/// `/slow/<ms>` waits before answering, `/drop` closes without a response,
/// `/stall` sends the head then stalls the body, `/health` answers `health` status,
/// `/ws` accepts any upgrade and echoes bytes, `/hop` answers with hop-by-hop headers,
/// `/big/<n>` answers n bytes.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it answers.
    pub name: String,
    /// Every request it saw (health checks excluded), oldest first.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// The status `/health` answers (200 to begin with).
    pub health: Arc<AtomicU16>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Connections open now.
    pub open: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Backend {
    /// Starts a dyno named `name` on 127.0.0.1:0.
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, name)
    }

    /// Serves on `listener` (a test that needs the address before the dyno runs).
    pub fn serve(listener: TcpListener, name: &str) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(AtomicU16::new(200));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let b = Self {
            addr,
            name: name.to_string(),
            seen: Arc::clone(&seen),
            health: Arc::clone(&health),
            connections: Arc::clone(&connections),
            open: Arc::clone(&open),
            stop: stop.clone(),
        };
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = stop.cancelled() => return,
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                };
                connections.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let open = Arc::clone(&open);
                let (seen, health, name) = (Arc::clone(&seen), Arc::clone(&health), name.clone());
                let stop = stop.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        dyno(
                            req,
                            peer,
                            name.clone(),
                            Arc::clone(&seen),
                            Arc::clone(&health),
                        )
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .max_headers(2000)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        b
    }

    /// How many requests it saw (health checks excluded).
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The last request it saw.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request reached the backend")
    }

    /// Every request it saw (health checks excluded), oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops accepting and closes its connections.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type DynoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> DynoBody {
    Full::new(b.into()).boxed()
}

async fn dyno(
    req: Request<Incoming>,
    peer: SocketAddr,
    name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    health: Arc<AtomicU16>,
) -> Result<Response<DynoBody>, std::io::Error> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        let status = StatusCode::from_u16(health.load(Ordering::SeqCst)).unwrap();
        return Ok(Response::builder()
            .status(status)
            .body(full("health"))
            .unwrap());
    }
    if path == "/ws" {
        let on = hyper::upgrade::on(req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(full(""))
            .unwrap());
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        path: parts.uri.path().to_string(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: body.clone(),
        peer,
    });
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(100))).await;
    }
    if path == "/drop" {
        return Err(std::io::Error::other("dropping the connection"));
    }
    if path == "/stall" {
        return Ok(Response::builder()
            .body(BodyExt::boxed(Stall(false)))
            .unwrap());
    }
    if path == "/hop" {
        return Ok(Response::builder()
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-request-id", "dyno-chose-this")
            .header("x-end", "1")
            .body(full(name))
            .unwrap());
    }
    if let Some(n) = path.strip_prefix("/big/") {
        return Ok(Response::new(full(vec![b'x'; n.parse().unwrap_or(0)])));
    }
    if path == "/echo" {
        return Ok(Response::new(full(body)));
    }
    Ok(Response::new(full(name)))
}

/// A body that sends one frame and then nothing, forever.
struct Stall(bool);

impl hyper::body::Body for Stall {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.0 {
            return std::task::Poll::Pending;
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            b"part",
        )))))
    }
}
