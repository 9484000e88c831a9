//! Dyno responses as they come on the wire, relayed for requests without a body (the raw
//! dyno path): chunked, close-delimited, interim 1xx, HEAD, and keep-alive connections
//! the dyno closed while they sat in the pool.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::*;
use spaced_testkit::tcp_info::segments_in;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A fake dyno: for each connection, reads request heads and answers each with `reply`;
/// with `one_shot`, closes the connection after one answer (without saying so).
async fn scripted_dyno(reply: &'static [u8], one_shot: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&conns);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                        if one_shot {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

async fn router_for(addr: SocketAddr) -> Router {
    Router::start(&space("", &app("api", &["api.test"], &[addr]))).await
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn chunked_response_is_decoded_and_reframed() {
    let (addr, _) = scripted_dyno(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\ntrailer: t\r\n\r\n",
        false,
    )
    .await;
    let r = router_for(addr).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hello world");
    // The connection went back to the pool: a second request reuses it.
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.text(), "hello world");
}

#[tokio::test]
async fn close_delimited_response_is_relayed_whole() {
    let (addr, conns) =
        scripted_dyno(b"HTTP/1.0 200 OK\r\nx-a: b\r\n\r\nuntil the end", true).await;
    let r = router_for(addr).await;
    for _ in 0..2 {
        let got = get(r.addr, "api.test", "/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "until the end");
    }
    // Never reused: a connection per request.
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let (addr, _) = scripted_dyno(
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        false,
    )
    .await;
    let r = router_for(addr).await;
    let got = raw(r.addr, GET).await;
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.ends_with("\r\n\r\nok"), "{got}");
}

#[tokio::test]
async fn head_response_keeps_its_length_and_has_no_body() {
    let (addr, _) = scripted_dyno(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", false).await;
    let r = router_for(addr).await;
    let got = raw(
        r.addr,
        b"HEAD / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.to_lowercase().contains("content-length: 42"), "{got}");
    assert!(got.ends_with("\r\n\r\n"), "{got}");
}

#[tokio::test]
async fn pooled_connection_closed_by_the_dyno_is_replaced_without_error() {
    // The dyno answers keep-alive and then silently closes: every pooled connection is
    // stale by the next request, which must go out again on a new one.
    let (addr, conns) =
        scripted_dyno(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true).await;
    let r = router_for(addr).await;
    let mut c = Client::connect(r.addr).await;
    // With a pause the close is seen before checkout; without one the request may hit the
    // stale socket and is sent again.
    for pause in [20, 0, 20, 0, 0, 0] {
        let got = c.get("api.test", "/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "ok");
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
    assert!(conns.load(Ordering::SeqCst) >= 6);
}

/// H12's clock runs from when the request was sent, so a request sent again, after a
/// pooled connection closed without an answer, gets the whole `response` time again.
#[tokio::test]
async fn a_request_sent_again_gets_the_full_response_timeout_again() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let (seen, second_requests) = (Arc::clone(&conns), Arc::new(AtomicUsize::new(0)));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let second_requests = Arc::clone(&second_requests);
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                for request in 0.. {
                    match s.read(&mut chunk).await {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    let ms = |n| tokio::time::sleep(std::time::Duration::from_millis(n));
                    if request == 0 {
                        // Held, so that two requests open two connections.
                        ms(100).await;
                    } else if second_requests.fetch_add(1, Ordering::SeqCst) == 0 {
                        // The first reused connection: no answer, then closed.
                        ms(500).await;
                        return;
                    } else {
                        // The one it is sent again on: answered within `response` of that.
                        ms(400).await;
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let keys = "[router.timeouts]\nresponse = \"600ms\"\n";
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[addr]))).await;
    let (a, b) = tokio::join!(get(r.addr, "api.test", "/"), get(r.addr, "api.test", "/"));
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    assert_eq!(conns.load(Ordering::SeqCst), 2, "two pooled connections");
    // 500 ms on the first connection, then 400 ms on the second: 900 ms in all, more than
    // `response`, but under it from each send.
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "ok");
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "sent again on the pooled one"
    );
}

#[tokio::test]
async fn switching_protocols_without_an_upgrade_is_h25() {
    let (addr, _) = scripted_dyno(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
        false,
    )
    .await;
    let r = router_for(addr).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 502);
    assert!(got.text().contains("H25"), "{}", got.text());
}

/// A connection's last response (`Connection: close`, or HTTP/1.0) and its FIN reach the
/// client in one segment; with a request body, or on a keep-alive connection, responses
/// are sent as they are written.
#[tokio::test]
async fn last_response_and_fin_share_a_segment() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let ask = |req: &'static [u8]| async move {
        let mut s = send(r.addr, req).await;
        let mut out = Vec::new();
        within("response and close", s.read_to_end(&mut out))
            .await
            .unwrap();
        (String::from_utf8(out).unwrap(), segments_in(&s))
    };
    for req in [
        &b"GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\nhost: api.test\r\n\r\n",
    ] {
        let (out, segs) = ask(req).await;
        assert!(
            out.starts_with("HTTP/1.") && out.ends_with("\r\n\r\nb"),
            "{out}"
        );
        // The handshake's SYN-ACK, the ACK of the request (a new connection acknowledges
        // at once), then the response with the FIN: 4 when the FIN comes on its own.
        assert_eq!(segs, 3, "{out}");
    }
    // A body to read first: written at once (response, then FIN).
    let (out, segs) = ask(
        b"POST / HTTP/1.1\r\nhost: api.test\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(segs >= 3, "{out}");
    // Keep-alive: the first response arrives with no shutdown behind it.
    let mut s = send(r.addr, b"GET / HTTP/1.1\r\nhost: api.test\r\n\r\n").await;
    let mut buf = [0u8; 4096];
    let n = within("keep-alive response", s.read(&mut buf))
        .await
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

/// `MSG_MORE` is for the end of a last response only: on a `Connection: close` request
/// whose dyno streams its body slowly, the first part reaches the client at once. Held
/// back, it would wait ~200 ms for the kernel's probe timer; a loaded machine can stall a
/// test too, so the check passes if any of three tries sees the part within 150 ms.
#[tokio::test]
async fn streamed_last_response_is_not_held_back() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dyno_addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst")
                    .await;
                tokio::time::sleep(std::time::Duration::from_millis(600)).await;
                let _ = s.write_all(b"-last").await;
            });
        }
    });
    let r = Router::start(&space("", &app("api", &["api.test"], &[dyno_addr]))).await;
    let mut prompt = 0;
    for _ in 0..3 {
        let mut c = send(
            r.addr,
            b"GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
        )
        .await;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let early = tokio::time::timeout(std::time::Duration::from_millis(150), async {
            while !got.ends_with(b"first") {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        prompt += usize::from(early.is_ok());
        within("the rest", c.read_to_end(&mut got)).await.unwrap();
        assert!(
            got.ends_with(b"first-last"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(prompt > 0, "the first part was held back every time");
}
