//! Starting the real resolver on 127.0.0.1:0 and talking raw DNS to it over UDP and TCP
//! from chosen loopback sources.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use socket2::{Domain, Protocol, Socket, Type};
use spaced_config::{DynoBoard, Store};
use spaced_net::Shutdown;
use spaced_resolver::{Handle, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Every await in these tests is bounded by this.
pub(crate) const T: Duration = Duration::from_secs(5);

/// Awaits `fut` or fails the test after [`T`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(T, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The space used by most tests: 127.0.0.1 and .2 are inside, .3 is not.
pub(crate) fn policy_text(extra: &str) -> String {
    format!(
        r#"
[space]
name = "t"
internal = ["127.0.0.1/32", "127.0.0.2/32"]

[resolver]
listen = ["127.0.0.1:0"]
{extra}
"#
    )
}

/// Parses a policy; panics with the errors if invalid.
pub(crate) use spaced_testkit::policy as parse;

/// A running resolver and what drives it.
pub(crate) struct Running {
    pub(crate) handle: Handle,
    pub(crate) addr: SocketAddr,
    pub(crate) store: Arc<Store>,
    pub(crate) board: Arc<DynoBoard>,
    pub(crate) shutdown: Shutdown,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the resolver on `text` with test options (short timeouts).
pub(crate) async fn start(text: &str) -> Running {
    start_with(
        text,
        Options {
            upstream_timeout: Duration::from_millis(500),
            tcp_idle: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .await
}

/// Starts the resolver with `options`.
pub(crate) async fn start_with(text: &str, options: Options) -> Running {
    let store = Arc::new(Store::new(parse(text), String::new()));
    let board = Arc::new(DynoBoard::new());
    let shutdown = Shutdown::new();
    let handle = within(
        "spawn",
        spaced_resolver::spawn_with(store.clone(), board.clone(), shutdown.clone(), options),
    )
    .await
    .expect("resolver binds");
    let addr = handle.listen[0];
    Running {
        handle,
        addr,
        store,
        board,
        shutdown,
    }
}

/// A query message.
pub(crate) fn query(name: &str, ty: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// A UDP socket bound to `src` (a loopback address playing a network).
pub(crate) async fn udp_from(src: &str) -> UdpSocket {
    let ip: IpAddr = src.parse().unwrap();
    UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap()
}

/// Sends raw bytes over UDP from `src`, returns the raw answer (or `None` after `wait`).
pub(crate) async fn udp_raw(
    server: SocketAddr,
    src: &str,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = udp_from(src).await;
    within("udp send", sock.send_to(bytes, server))
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// One UDP exchange from `src`.
pub(crate) async fn udp(server: SocketAddr, src: &str, q: &Message) -> Message {
    let raw = udp_raw(server, src, &q.to_vec().unwrap(), T)
        .await
        .expect("an answer over udp");
    Message::from_vec(&raw).expect("answer decodes")
}

/// A TCP connection from `src` (bound before connect).
pub(crate) async fn tcp_from(server: SocketAddr, src: &str) -> TcpStream {
    let ip: IpAddr = src.parse().unwrap();
    let s = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .unwrap();
    s.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    s.set_nonblocking(true).unwrap();
    let std: std::net::TcpStream = s.into();
    // Non-blocking connect through tokio.
    let sock = tokio::net::TcpSocket::from_std_stream(std);
    within("tcp connect", sock.connect(server)).await.unwrap()
}

/// One framed exchange on an open connection.
pub(crate) async fn tcp_exchange(stream: &mut TcpStream, q: &Message) -> Message {
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    within("tcp write", stream.write_all(&framed))
        .await
        .unwrap();
    let mut len = [0u8; 2];
    within("tcp read len", stream.read_exact(&mut len))
        .await
        .unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    within("tcp read body", stream.read_exact(&mut buf))
        .await
        .unwrap();
    Message::from_vec(&buf).expect("answer decodes")
}

/// One TCP exchange on a fresh connection from `src`.
pub(crate) async fn tcp(server: SocketAddr, src: &str, q: &Message) -> Message {
    let mut s = tcp_from(server, src).await;
    tcp_exchange(&mut s, q).await
}

/// The addresses in the answer section, in order.
pub(crate) fn ips(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// A policy with one app `app` whose `web` process has the dynos `10.1.x.y:80`, `n` of them.
pub(crate) fn dynos_text(n: usize) -> String {
    let mut s = String::from("[[app]]\nname = \"big\"\n");
    for i in 0..n {
        s += &format!(
            "[[app.dyno]]\naddr = \"10.1.{}.{}:80\"\n",
            i / 250,
            i % 250 + 1
        );
    }
    s
}
