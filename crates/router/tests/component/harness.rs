//! Test harness: a real router started with `spawn` on 127.0.0.1:0, real dynos (small hyper
//! servers on 127.0.0.1:0 that record what they saw), and small clients.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
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

pub use spaced_testkit::dyno::{Backend, Seen};

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
