//! The accept loop on real loopback sockets: admission before any byte, canonical peers,
//! the connection cap, cancellation.

// Helpers outside #[test] fns panic on purpose: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use spaced_net::{ConnLimit, Shutdown, serve, tcp_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

/// Connects to `to` from the loopback address `from` (to play another network).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.into(), 0)).unwrap();
    timeout(T, sock.connect(to)).await.unwrap().unwrap()
}

/// Reads until EOF; returns what came before it.
async fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(T, s.read_to_end(&mut out)).await.unwrap().unwrap();
    out
}

#[tokio::test]
async fn admitted_and_rejected() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let admit = {
        let seen = Arc::clone(&seen);
        move |peer: SocketAddr| {
            seen.lock().unwrap().push(peer);
            peer.ip() != IpAddr::from([127, 0, 0, 3])
        }
    };
    let task = tokio::spawn(serve(listener, shutdown.clone(), admit, move |s, p| {
        tx.send((s, p)).unwrap();
    }));

    // Rejected: closed at once, nothing written, never handed over.
    let mut denied = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr).await;
    let _ = denied.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let mut buf = [0u8; 16];
    let got = timeout(T, denied.read(&mut buf)).await.unwrap();
    assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");

    // Admitted: handed over with its canonical address, TCP_NODELAY on.
    let mut client = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr).await;
    let (mut server, peer) = timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert!(server.nodelay().unwrap());
    client.write_all(b"hi").await.unwrap();
    let mut two = [0u8; 2];
    timeout(T, server.read_exact(&mut two))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&two, b"hi");

    let seen: Vec<IpAddr> = seen.lock().unwrap().iter().map(SocketAddr::ip).collect();
    assert_eq!(
        seen,
        [IpAddr::from([127, 0, 0, 3]), IpAddr::from([127, 0, 0, 2])]
    );
    assert!(
        rx.try_recv().is_err(),
        "the rejected connection was never handed over"
    );

    shutdown.cancel();
    timeout(T, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn dual_stack_peers_are_folded_to_ipv4() {
    let Ok(listener) = tcp_listener("[::]:0".parse().unwrap()) else {
        spaced_testkit::skip("dual_stack_peers_are_folded_to_ipv4: no dual-stack listener");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let shutdown = Shutdown::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let admit = {
        let admitted = Arc::clone(&admitted);
        move |peer| {
            admitted.lock().unwrap().push(peer);
            true
        }
    };
    let task = tokio::spawn(serve(listener, shutdown.clone(), admit, move |_, p| {
        tx.send(p).unwrap();
    }));
    let client = connect_from(Ipv4Addr::new(127, 0, 0, 4), ([127, 0, 0, 1], port).into()).await;
    let peer = timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert!(peer.is_ipv4());
    assert_eq!(admitted.lock().unwrap()[0], peer);
    shutdown.cancel();
    timeout(T, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn conn_limit_closes_the_excess_without_a_word() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let limit = ConnLimit::new(2);
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The guard is taken in `admit` and handed to `handle` through a slot, the way a
    // router would: refusing happens before anything is spawned.
    let pending = Arc::new(Mutex::new(None));
    let admit = {
        let (limit, pending) = (limit.clone(), Arc::clone(&pending));
        move |_| match limit.try_acquire() {
            Some(guard) => {
                *pending.lock().unwrap() = Some(guard);
                true
            }
            None => false,
        }
    };
    let task = tokio::spawn(serve(listener, shutdown.clone(), admit, move |s, _| {
        let guard = pending.lock().unwrap().take().unwrap();
        tx.send((s, guard)).unwrap();
    }));
    let _a = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    let _b = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    let first = timeout(T, rx.recv()).await.unwrap().unwrap();
    let _second = timeout(T, rx.recv()).await.unwrap().unwrap();
    let mut third = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    assert!(read_to_eof(&mut third).await.is_empty());
    assert_eq!(limit.open(), 2);
    drop(first); // the connection ends, its slot comes back
    let _d = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    let _fourth = timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_eq!(limit.open(), 2);
    shutdown.cancel();
    timeout(T, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn cancellation_ends_the_loop_with_ok() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let root = Shutdown::new();
    let child = root.child();
    let task = tokio::spawn(serve(listener, child, |_| true, |_, _| {}));
    tokio::task::yield_now().await;
    root.cancel();
    assert!(timeout(T, task).await.unwrap().unwrap().is_ok());
    // The listener was dropped with the loop: new connections are refused.
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    assert!(sock.connect(&addr.into()).is_err());
}

#[tokio::test]
async fn already_cancelled_returns_before_accepting() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let shutdown = Shutdown::new();
    shutdown.cancel();
    let res = timeout(T, serve(listener, shutdown, |_| panic!("admit"), |_, _| {})).await;
    assert!(res.unwrap().is_ok());
}

/// CONFIG.md's example binds `0.0.0.0:80` (external) and `10.0.0.2:80` (internal) at once.
#[tokio::test]
async fn a_specific_address_binds_beside_a_wildcard_on_the_same_port() {
    let wildcard = tcp_listener("0.0.0.0:0".parse().unwrap()).unwrap();
    let port = wildcard.local_addr().unwrap().port();
    let specific = tcp_listener(SocketAddr::from(([127, 0, 0, 2], port)));
    assert!(specific.is_ok(), "{specific:?}");
}
