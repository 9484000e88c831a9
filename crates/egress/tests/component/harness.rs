//! Shared pieces of the egress component tests: a policy from TOML, the gateway on
//! 127.0.0.1:0, "whoami" servers that report the address they saw, and clients bound to
//! chosen loopback sources.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use spaced_config::Store;
use spaced_net::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub const T: Duration = Duration::from_secs(10);

/// Awaits `f` within the test deadline.
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .expect("test step timed out")
}

pub use spaced_testkit::policy;

/// The usual test space: 127.0.0.1 and .2 inside, two source IPs, nothing denied, and
/// apps `api` (token s3cret) and `web` (token w3b) plus `extra`.
pub fn config(egress_extra: &str, apps: &str) -> String {
    format!(
        r#"
[space]
name = "test"
internal = ["127.0.0.1/32", "127.0.0.2/32", "::1/128"]

[egress]
listen = ["127.0.0.1:0"]
socks_listen = ["127.0.0.1:0"]
{egress_extra}

{apps}
"#
    )
}

pub const POOL2: &str = r#"source_ips = ["127.0.0.10", "127.0.0.11"]"#;

pub const APPS: &str = r#"
[[app]]
name = "api"
egress_token = "s3cret"

[[app]]
name = "web"
egress_token = "w3b"
"#;

pub struct Gateway {
    pub store: Arc<Store>,
    pub handle: spaced_egress::Handle,
    pub shutdown: Shutdown,
}

impl Gateway {
    pub async fn start(text: &str) -> Self {
        let store = Arc::new(Store::new(policy(text), String::new()));
        let shutdown = Shutdown::new();
        let handle = within(spaced_egress::spawn(store.clone(), shutdown.clone()))
            .await
            .expect("egress spawn");
        Self {
            store,
            handle,
            shutdown,
        }
    }

    pub fn http(&self) -> SocketAddr {
        self.handle.listen[0]
    }

    pub fn socks(&self) -> SocketAddr {
        self.handle.socks_listen[0]
    }

    pub fn reload(&self, text: &str) {
        self.store.apply(policy(text), format!("{}", text.len()));
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An HTTP server that answers every request with the peer IP it saw as the body, an
/// `X-Saw-Proxy-Auth: 0|1` header, and `Connection: close`. Counts accepted connections.
pub struct Whoami {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Whoami {
    pub async fn start(bind: &str) -> Self {
        let listener = TcpListener::bind(bind).await.expect("whoami bind");
        let addr = listener.local_addr().expect("whoami addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    let saw = u8::from(head.contains("proxy-authorization"));
                    let body = peer.ip().to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Saw-Proxy-Auth: {saw}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Self { addr, accepted }
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A UDP server that answers each datagram with the sender's IP.
pub async fn udp_whoami(bind: &str) -> SocketAddr {
    let sock = UdpSocket::bind(bind).await.expect("udp whoami bind");
    let addr = sock.local_addr().expect("udp whoami addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(from.ip().to_string().as_bytes(), from).await;
        }
    });
    addr
}

/// Connects to `to` from `from` (a loopback address), to play a client on another network.
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let from: IpAddr = from.parse().expect("source address");
    let s =
        Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    s.bind(&SocketAddr::new(from, 0).into())
        .expect("bind client");
    s.set_nonblocking(true).expect("nonblocking");
    let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    within(sock.connect(to)).await.expect("connect")
}

/// Reads until EOF (bounded) and returns the text.
pub async fn read_all(s: &mut TcpStream) -> String {
    let mut v = Vec::new();
    within(s.read_to_end(&mut v)).await.expect("read");
    String::from_utf8_lossy(&v).into_owned()
}

/// Reads one response head (through the blank line).
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut v = Vec::new();
    let mut b = [0u8; 1];
    while !v.ends_with(b"\r\n\r\n") {
        let n = within(s.read(&mut b)).await.expect("read head");
        if n == 0 {
            break;
        }
        v.push(b[0]);
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// Reads the body that `head` announces with its Content-Length, leaving `s` at the next
/// response (keep-alive).
pub async fn read_body(s: &mut TcpStream, head: &str) -> String {
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().expect("content-length"))
        })
        .expect("a content-length");
    let mut body = vec![0u8; len];
    within(s.read_exact(&mut body)).await.expect("read body");
    String::from_utf8(body).expect("utf-8 body")
}

/// An absolute-form `GET http://target/` on the kept-alive proxy connection `s`, as the app
/// whose Basic credentials are `auth`; must answer 200. Returns the body (the IP the
/// destination saw); `s` stays usable.
pub async fn forwarded_get(s: &mut TcpStream, target: SocketAddr, auth: &str) -> String {
    let req = format!(
        "GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
    );
    within(s.write_all(req.as_bytes())).await.expect("write");
    let head = read_head(s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    read_body(s, &head).await
}

/// The gateway's metrics contain `line`.
pub fn assert_metric(gw: &Gateway, line: &str) {
    let mut m = String::new();
    gw.handle.render_metrics(&mut m);
    assert!(m.contains(line), "{line} not in:\n{m}");
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// CONNECT through the proxy; returns the stream and the response head.
pub async fn http_connect(
    from: &str,
    proxy: SocketAddr,
    target: &str,
    creds: Option<(&str, &str)>,
) -> (TcpStream, String) {
    let mut s = connect_from(from, proxy).await;
    let auth = creds
        .map(|(u, p)| format!("Proxy-Authorization: Basic {}\r\n", basic(u, p)))
        .unwrap_or_default();
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n");
    within(s.write_all(req.as_bytes())).await.expect("write");
    let head = read_head(&mut s).await;
    (s, head)
}

/// GET / through an open tunnel; returns the body (the IP the server saw).
pub async fn get_through(mut s: TcpStream) -> String {
    within(s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .expect("write");
    let resp = read_all(&mut s).await;
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(resp)
}

/// A SOCKS5 handshake; `creds` selects user/password, else no-auth. Returns the stream
/// and the reply code (or the failed auth / method status as `0x100 | status`).
pub async fn socks_connect(
    from: &str,
    proxy: SocketAddr,
    dest: &[u8],
    creds: Option<(&str, &str)>,
) -> (TcpStream, u16) {
    let mut s = connect_from(from, proxy).await;
    let method = if creds.is_some() { 2u8 } else { 0u8 };
    within(s.write_all(&[5, 1, method])).await.expect("write");
    let mut sel = [0u8; 2];
    within(s.read_exact(&mut sel)).await.expect("method reply");
    if sel[1] != method {
        return (s, 0x100 | u16::from(sel[1]));
    }
    if let Some((u, p)) = creds {
        let mut m = vec![1, u.len() as u8];
        m.extend_from_slice(u.as_bytes());
        m.push(p.len() as u8);
        m.extend_from_slice(p.as_bytes());
        within(s.write_all(&m)).await.expect("write");
        let mut st = [0u8; 2];
        within(s.read_exact(&mut st)).await.expect("auth reply");
        if st[1] != 0 {
            return (s, 0x100 | u16::from(st[1]));
        }
    }
    let mut req = vec![5, 1, 0];
    req.extend_from_slice(dest);
    within(s.write_all(&req)).await.expect("write");
    let mut rep = [0u8; 4];
    if within(s.read_exact(&mut rep)).await.is_err() {
        return (s, 0x200);
    }
    let rest = match rep[3] {
        1 => 6,
        4 => 18,
        _ => 0,
    };
    let mut skip = vec![0u8; rest];
    let _ = within(s.read_exact(&mut skip)).await;
    (s, u16::from(rep[1]))
}

/// SOCKS5 address bytes for an IP socket address.
pub fn socks_addr(sa: SocketAddr) -> Vec<u8> {
    let mut v = Vec::new();
    match sa.ip() {
        IpAddr::V4(a) => {
            v.push(1);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(4);
            v.extend_from_slice(&a.octets());
        }
    }
    v.extend_from_slice(&sa.port().to_be_bytes());
    v
}

/// SOCKS5 address bytes for a domain.
pub fn socks_domain(host: &str, port: u16) -> Vec<u8> {
    let mut v = vec![3, host.len() as u8];
    v.extend_from_slice(host.as_bytes());
    v.extend_from_slice(&port.to_be_bytes());
    v
}

/// Where rendezvous hashing pins `app` in `pool`.
pub fn pinned(app: &str, pool: &[&str]) -> String {
    let pool: Vec<IpAddr> = pool.iter().map(|p| p.parse().expect("ip")).collect();
    spaced_egress::pin::choose(spaced_egress::pin::PinKey::App(app), &pool)
        .expect("non-empty pool")
        .to_string()
}

/// Asserts that the gateway closed `s` without writing a byte (BEHAVIOR.md "Closing
/// without a word"): the read ends with EOF, or with a reset when the client had sent bytes
/// the gateway never read.
pub async fn assert_closed_without_a_word(s: &mut TcpStream, what: &str) {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 64];
    match within(s.read(&mut b)).await {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "{what}: the gateway answered {:?}",
            String::from_utf8_lossy(&b[..n])
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}
