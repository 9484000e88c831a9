//! Test harness: a real router started with `spawn` on 127.0.0.1:0, real dynos (small hyper
//! servers on 127.0.0.1:0 that record what they saw), and small clients.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

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
use spaced_config::{DynoBoard, Policy, Store};
use spaced_net::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use spaced_testkit::{eventually, policy, policy_with_files, within};

/// An HTTP/2 client on `io` (cleartext with prior knowledge, or TLS after ALPN `h2`), its
/// connection driven by a task of its own.
pub async fn h2_client<T>(
    io: T,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = within(
        "h2 handshake",
        hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(io),
        ),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// A TLS client configuration trusting the certificate `root_der` (a CA or a self-signed
/// leaf), offering `alpn`.
pub fn tls_client(root_der: Vec<u8>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root_der.into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub fn init_tracing() {
    spaced_testkit::capture::init_tracing("router=info,spaced_router=debug");
}

/// The TOML of a space with one router listener on 127.0.0.1:0 and the given extra text
/// (router keys first, then sections).
pub fn space(router_keys: &str, rest: &str) -> String {
    format!(
        "[space]\nname = \"test\"\ninternal = [\"127.0.0.0/8\"]\n\n[router]\nlisten = [\"127.0.0.1:0\"]\ninternal_listen = [\"127.0.0.1:0\"]\n{router_keys}\n{rest}"
    )
}

/// An app with web dynos at `addrs`.
pub fn app(name: &str, hosts: &[&str], addrs: &[SocketAddr]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let mut s = format!(
        "\n[[app]]\nname = \"{name}\"\nhosts = [{}]\n",
        hosts.join(", ")
    );
    for a in addrs {
        s.push_str(&format!(
            "\n[[app.dyno]]\nprocess = \"web\"\naddr = \"{a}\"\n"
        ));
    }
    s
}

pub struct Router {
    pub handle: spaced_router::Handle,
    pub store: Arc<Store>,
    pub board: Arc<DynoBoard>,
    pub shutdown: Shutdown,
    pub addr: SocketAddr,
    pub internal: SocketAddr,
    version: AtomicUsize,
}

impl Router {
    pub async fn start(toml: &str) -> Self {
        Self::start_with(policy(toml)).await
    }

    pub async fn start_with(policy: Policy) -> Self {
        Self::try_start_with(policy).await.expect("router starts")
    }

    /// Starts a router, or says why it could not bind.
    pub async fn try_start_with(policy: Policy) -> Result<Self, spaced_router::RouterError> {
        init_tracing();
        let store = Arc::new(Store::new(policy, "v1".into()));
        let board = Arc::new(DynoBoard::new());
        let shutdown = Shutdown::new();
        let handle = within(
            "spawn",
            spaced_router::spawn(Arc::clone(&store), Arc::clone(&board), shutdown.clone()),
        )
        .await?;
        // A policy may have no plain or no internal listener (TLS only, say): then the
        // address is unspecified, and a test that dials it fails on the connect.
        let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
        let addr = handle.listen.first().copied().unwrap_or(unbound);
        let internal = handle.internal_listen.first().copied().unwrap_or(unbound);
        Ok(Self {
            handle,
            store,
            board,
            shutdown,
            addr,
            internal,
            version: AtomicUsize::new(1),
        })
    }

    /// Swaps in `policy` under `tag`, as a reload does.
    pub fn reload_with(&self, policy: Policy, tag: &str) {
        self.store.apply(policy, tag.into());
    }

    /// The first external plain listener, as an address a client can dial.
    pub fn external(&self) -> SocketAddr {
        dialable(self.handle.listen[0])
    }

    /// The first internal listener, as an address a client can dial.
    pub fn internal(&self) -> SocketAddr {
        dialable(self.handle.internal_listen[0])
    }

    /// The first TLS listener, as an address a client can dial.
    pub fn tls(&self) -> SocketAddr {
        dialable(self.handle.tls_listen[0])
    }

    /// Swaps in a new policy.
    pub fn reload(&self, toml: &str) {
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        self.store.apply(policy(toml), format!("v{v}"));
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `0.0.0.0:p`/`[::]:p` → `127.0.0.1:p`.
fn dialable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// What a backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

/// A dyno: answers `200 <name>` by default; special paths:
/// `/slow/<ms>` waits before answering, `/drop` closes without a response,
/// `/stall` sends the head then stalls the body, `/health` answers `health` status,
/// `/ws` accepts any upgrade and echoes bytes, `/hop` answers with hop-by-hop headers,
/// `/big/<n>` answers n bytes.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub health: Arc<AtomicU16>,
    pub connections: Arc<AtomicUsize>,
    /// Connections open now.
    pub open: Arc<AtomicUsize>,
    stop: Shutdown,
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, name)
    }

    pub fn serve(listener: TcpListener, name: &str) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(AtomicU16::new(200));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let stop = Shutdown::new();
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

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request reached the backend")
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

/// A response as a test sees it.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive HTTP/1.1 client connection to the router.
pub struct Client {
    tx: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
        Self::over(stream).await
    }

    /// From a given loopback source address (127.0.0.x).
    pub async fn connect_from(addr: SocketAddr, source: &str) -> Self {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let stream = within("connect", sock.connect(addr)).await.unwrap();
        Self::over(stream).await
    }

    async fn over(stream: TcpStream) -> Self {
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        Self { tx }
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Got {
        self.send(
            Request::get(path)
                .header("host", host)
                .body(Full::default())
                .unwrap(),
        )
        .await
        .expect("response")
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> hyper::Result<Got> {
        within("ready", self.tx.ready()).await?;
        let resp = within("response", self.tx.send_request(req)).await?;
        let (parts, body) = resp.into_parts();
        let body = within("body", body.collect()).await?.to_bytes();
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// One request on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Got {
    Client::connect(addr).await.get(host, path).await
}

/// A fresh connection with `bytes` written on it.
pub async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = within("connect", TcpStream::connect(addr)).await.unwrap();
    within("write", s.write_all(bytes)).await.unwrap();
    s
}

/// Writes raw bytes, reads until the server closes or `limit` bytes.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = send(addr, bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 64 * 1024 {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A loopback port nobody listens on.
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// The `/dynos` entry of `addr`.
pub fn dyno_entry(r: &Router, addr: SocketAddr) -> serde_json::Value {
    r.handle
        .dynos_json()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["addr"] == addr.to_string())
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}
