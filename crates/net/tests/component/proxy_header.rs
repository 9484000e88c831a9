//! `read_header` on real sockets: it consumes exactly the header, copes with a header
//! that arrives in pieces, and gives up on junk, early close and the deadline.

// Helpers outside #[test] fns panic on purpose: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use spaced_net::proxy_protocol::{Command, ProxyError, encode_v1, encode_v2, read_header};
use spaced_net::tcp_listener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(5);

async fn pair() -> (TcpStream, TcpStream) {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn rest(server: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(T, server.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

#[tokio::test]
async fn v1_then_http_is_left_unread() {
    let (mut client, mut server) = pair().await;
    let mut wire = encode_v1(sa("203.0.113.9:40000"), sa("10.0.0.2:80"));
    wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
    client.write_all(&wire).await.unwrap();
    let header = timeout(T, read_header(&mut server, T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header.source, Some(sa("203.0.113.9:40000")));
    assert_eq!(rest(&mut server, 16).await, b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn v2_then_tls_is_left_unread() {
    let (mut client, mut server) = pair().await;
    let mut wire = encode_v2(
        Command::Proxy,
        sa("[2001:db8::9]:1"),
        sa("[2001:db8::1]:443"),
    );
    wire.extend_from_slice(&[0x16, 0x03, 0x01]);
    client.write_all(&wire).await.unwrap();
    let header = timeout(T, read_header(&mut server, T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header.source, Some(sa("[2001:db8::9]:1")));
    assert_eq!(rest(&mut server, 3).await, [0x16, 0x03, 0x01]);
}

#[tokio::test]
async fn v2_local_gives_no_source() {
    let (mut client, mut server) = pair().await;
    let mut wire = encode_v2(Command::Local, sa("1.1.1.1:1"), sa("1.1.1.1:1"));
    wire.push(b'X');
    client.write_all(&wire).await.unwrap();
    let header = timeout(T, read_header(&mut server, T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((header.command, header.source), (Command::Local, None));
    assert_eq!(rest(&mut server, 1).await, b"X");
}

#[tokio::test]
async fn dribbled_header_is_assembled() {
    let (mut client, mut server) = pair().await;
    let wire = encode_v1(sa("192.0.2.1:5"), sa("192.0.2.2:6"));
    let writer = tokio::spawn(async move {
        for b in wire {
            client.write_all(&[b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        client.write_all(b"after").await.unwrap();
        client
    });
    let header = timeout(T, read_header(&mut server, T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header.destination, Some(sa("192.0.2.2:6")));
    assert_eq!(rest(&mut server, 5).await, b"after");
    drop(timeout(T, writer).await.unwrap().unwrap());
}

#[tokio::test]
async fn junk_is_refused_without_waiting_for_the_deadline() {
    let (mut client, mut server) = pair().await;
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // Deadline far beyond the test timeout: the refusal must come from the bytes.
    let res = timeout(T, read_header(&mut server, Duration::from_secs(3600))).await;
    assert!(matches!(res.unwrap(), Err(ProxyError::Signature)));
}

#[tokio::test]
async fn early_close_is_truncated() {
    let (mut client, mut server) = pair().await;
    client.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    drop(client);
    let res = timeout(T, read_header(&mut server, T)).await.unwrap();
    let err = res.unwrap_err();
    assert!(matches!(err, ProxyError::Truncated) && !err.is_malformed());
}

#[tokio::test]
async fn silence_times_out() {
    let (_client, mut server) = pair().await;
    let res = timeout(T, read_header(&mut server, Duration::from_millis(100))).await;
    let err = res.unwrap().unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn in_memory_stream_works_too() {
    let (mut a, mut b) = tokio::io::duplex(64);
    let wire = encode_v2(Command::Proxy, sa("10.1.1.1:1000"), sa("10.2.2.2:2000"));
    let writer = tokio::spawn(async move {
        a.write_all(&wire).await.unwrap();
        a.write_all(b"tail").await.unwrap();
        a
    });
    let header = timeout(T, read_header(&mut b, T)).await.unwrap().unwrap();
    assert_eq!(header.source, Some(sa("10.1.1.1:1000")));
    let mut tail = [0u8; 4];
    timeout(T, b.read_exact(&mut tail)).await.unwrap().unwrap();
    assert_eq!(&tail, b"tail");
    drop(timeout(T, writer).await.unwrap().unwrap());
}

mod chunked {
    //! Whatever way the bytes are split across writes, the reader takes exactly the header.

    use super::*;
    use proptest::prelude::*;

    fn header_and_tail() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Vec<usize>)> {
        let v4 = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p)));
        let v6 = (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p)));
        let addr = prop_oneof![v4, v6];
        (
            addr.clone(),
            addr,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 1..64),
            proptest::collection::vec(1usize..40, 1..20),
        )
            .prop_map(|(src, dst, v1, tail, cuts)| {
                let wire = if v1 {
                    encode_v1(src, dst)
                } else {
                    encode_v2(Command::Proxy, src, dst)
                };
                (wire, tail, cuts)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn exact_read_under_any_split((wire, tail, cuts) in header_and_tail()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (mut a, mut b) = tokio::io::duplex(1024);
                let all = [wire.clone(), tail.clone()].concat();
                let writer = tokio::spawn(async move {
                    let mut at = 0;
                    for cut in cuts.iter().cycle() {
                        if at >= all.len() {
                            break;
                        }
                        let end = (at + cut).min(all.len());
                        a.write_all(&all[at..end]).await.unwrap();
                        tokio::task::yield_now().await;
                        at = end;
                    }
                    a
                });
                let header = timeout(T, read_header(&mut b, T)).await.unwrap().unwrap();
                assert!(header.source.is_some());
                let mut rest = vec![0; tail.len()];
                timeout(T, b.read_exact(&mut rest)).await.unwrap().unwrap();
                assert_eq!(rest, tail);
                drop(writer.await.unwrap());
            });
        }
    }
}
