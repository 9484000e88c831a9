//! `connect_from` and `original_dst` on loopback.

// Helpers outside #[test] fns panic on purpose: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use spaced_net::outbound::{ConnectError, connect_from, original_dst};
use spaced_net::tcp_listener;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn leaves_from_the_given_source() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let source = IpAddr::from([127, 0, 0, 10]);
    let (stream, accepted) = tokio::join!(connect_from(Some(source), addr, T), async {
        timeout(T, listener.accept()).await
    });
    let stream = stream.unwrap();
    let (_server, peer) = accepted.unwrap().unwrap();
    assert_eq!(peer.ip(), source);
    assert_eq!(stream.local_addr().unwrap(), peer);
    assert_eq!(stream.peer_addr().unwrap(), addr);
    assert!(stream.nodelay().unwrap());
}

#[tokio::test]
async fn many_connections_from_one_source_get_distinct_ports() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let source = Some(IpAddr::from([127, 0, 0, 11]));
    let mut ports = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..20 {
        let (s, a) = tokio::join!(connect_from(source, addr, T), listener.accept());
        let s = s.unwrap();
        ports.push(s.local_addr().unwrap().port());
        keep.push((s, a.unwrap()));
    }
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 20);
}

#[tokio::test]
async fn without_source_and_over_ipv6() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (s, _) = tokio::join!(connect_from(None, addr, T), listener.accept());
    assert_eq!(s.unwrap().peer_addr().unwrap(), addr);

    let Ok(listener6) = tcp_listener("[::1]:0".parse().unwrap()) else {
        spaced_testkit::skip("without_source_and_over_ipv6: no IPv6 loopback (the IPv4 half ran)");
        return;
    };
    let addr6 = listener6.local_addr().unwrap();
    let (s, a) = tokio::join!(
        connect_from(Some("::1".parse().unwrap()), addr6, T),
        listener6.accept()
    );
    assert_eq!(s.unwrap().peer_addr().unwrap(), addr6);
    assert_eq!(a.unwrap().1.ip(), "::1".parse::<IpAddr>().unwrap());
}

#[tokio::test]
async fn refused_is_classified() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = timeout(T, connect_from(None, addr, T))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_refused() && !err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn family_mismatch_is_the_source_s_fault() {
    let dest: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = connect_from(Some("::1".parse().unwrap()), dest, T)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::FamilyMismatch { .. }));
    assert!(err.is_source_unusable());
    // A mapped source folds to IPv4 and is fine.
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 12).to_ipv6_mapped());
    let addr = listener.local_addr().unwrap();
    let (s, a) = tokio::join!(connect_from(Some(mapped), addr, T), listener.accept());
    s.unwrap();
    assert_eq!(a.unwrap().1.ip(), IpAddr::from([127, 0, 0, 12]));
}

#[tokio::test]
async fn full_backlog_times_out() {
    // A listener that never accepts: once its queue is full the kernel drops SYNs, so a
    // connect hangs until our timeout.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut keep = Vec::new();
    let mut timed_out = None;
    for _ in 0..16 {
        match connect_from(None, addr, Duration::from_millis(300)).await {
            Ok(s) => keep.push(s),
            Err(e) => {
                timed_out = Some(e);
                break;
            }
        }
    }
    let err = timed_out.expect("the backlog never filled");
    assert!(err.is_timeout() && !err.is_refused(), "{err:?}");
}

#[tokio::test]
async fn original_dst_of_a_plain_connection() {
    // Not redirected: conntrack (if loaded) reports the address we connected to, else the
    // lookup fails. Either way it must not panic or lie.
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (_c, a) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (server, _) = a.unwrap();
    let got = original_dst(&server);
    eprintln!("original_dst: {got:?}");
    match got {
        Ok(dst) => assert_eq!(dst, addr),
        Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
    }
    // The same through a dual-stack listener (an IPv4 client on an AF_INET6 socket).
    let Ok(listener) = tcp_listener("[::]:0".parse().unwrap()) else {
        spaced_testkit::skip(
            "original_dst_of_a_plain_connection: no dual-stack listener (the IPv4 half ran)",
        );
        return;
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], listener.local_addr().unwrap().port()));
    let (_c, a) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (server, _) = a.unwrap();
    let got = original_dst(&server);
    eprintln!("original_dst: {got:?}");
    match got {
        Ok(dst) => assert_eq!(dst, addr),
        Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
    }
}
