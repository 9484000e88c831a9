//! A client that stops reading its response is cut after `timeouts.idle` (as HAProxy's
//! `timeout client`, nginx's `send_timeout`), on both dyno paths and over HTTP/2, which
//! frees the dyno; a client that reads slowly but keeps reading is not.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::*;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const KEYS: &str = "[router.timeouts]\nidle = \"1s\"\nclient_header = \"300ms\"\n";
/// A response far larger than every socket buffer on the way.
const BIG: &str = "/big/30000000";

async fn setup() -> (Backend, Router) {
    let b = Backend::start("b").await;
    let r = Router::start(&space(KEYS, &app("api", &["api.test"], &[b.addr]))).await;
    (b, r)
}

/// A client with a small receive buffer that sends `head` and then reads nothing.
async fn stalled(addr: SocketAddr, head: &[u8]) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(2048).unwrap();
    let mut s = within("connect", sock.connect(addr)).await.unwrap();
    within("write", s.write_all(head)).await.unwrap();
    s
}

fn metric(r: &Router, name: &str) -> Option<u64> {
    let mut m = String::new();
    r.handle.render_metrics(&mut m);
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// The connection is cut and counted, the request is over and the dyno is let go.
async fn assert_cut(b: &Backend, r: &Router, cuts: u64) {
    eventually("the response is under way", || {
        b.open.load(Ordering::SeqCst) == 1
            && metric(r, "spaced_router_requests_in_flight") == Some(1)
    })
    .await;
    eventually("the stalled client is cut", || {
        metric(r, "spaced_router_client_not_reading_total") == Some(cuts)
    })
    .await;
    eventually("the request is over", || {
        metric(r, "spaced_router_requests_in_flight") == Some(0)
    })
    .await;
    eventually("the dyno is let go", || b.open.load(Ordering::SeqCst) == 0).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_idle() {
    let (b, r) = setup().await;
    // Without a body: the fast path and a raw dyno connection.
    let get = format!("GET {BIG} HTTP/1.1\r\nhost: api.test\r\n\r\n");
    let s = stalled(r.addr, get.as_bytes()).await;
    assert_cut(&b, &r, 1).await;
    drop(s);
    // With a body: hyper on both sides.
    let post = format!("POST {BIG} HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\n\r\nx");
    let s = stalled(r.addr, post.as_bytes()).await;
    assert_cut(&b, &r, 2).await;
    drop(s);
}

/// HTTP/2: a stream window of 0 lets the response head through and no DATA; the client
/// answers PINGs, so only the response's progress shows it takes nothing.
#[tokio::test]
async fn an_http2_client_with_a_closed_window_is_cut_after_idle() {
    let (b, r) = setup().await;
    let io = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let (mut sender, conn) = within(
        "h2 handshake",
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(0)
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(io)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://api.test{BIG}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = within("h2 response head", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_cut(&b, &r, 1).await;
    drop(resp);
}

/// A client that pauses well within `idle` between reads gets the whole response.
#[tokio::test]
async fn a_slow_reader_that_keeps_reading_is_served() {
    let (_b, r) = setup().await;
    let mut s = send(
        r.addr,
        b"GET /big/1000000 HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        match within("read", s.read(&mut buf)).await.unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        &text[..64.min(text.len())]
    );
    let body = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - body, 1_000_000);
    assert_eq!(
        metric(&r, "spaced_router_client_not_reading_total"),
        Some(0)
    );
}
