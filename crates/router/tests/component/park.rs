//! Idle keep-alive connections parked outside their requests' future (issue 22,
//! `conn/park.rs`): a connection idle past the release point (the connection timer's
//! wake-up, within `client_header` of its last response) is served again when it sends,
//! pipelined requests included, plain and TLS; closes at `keepalive` with a FIN (TLS: a
//! close_notify first); stays open for `client_header` when the router stops, answering a
//! request with `Connection: close`, then closes; survives reloads; keeps its
//! `max_connections` slot.
//!
//! Parking is not visible from outside, so each test idles for several `client_header`s
//! (the timer looks at least that often), a margin that only grows on a loaded machine.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// `client_header` short, so the release point comes soon; `keepalive` long, so nothing
/// but the park is tested unless a test sets it.
const TIMEOUTS: &str = "[router.timeouts]\nclient_header = \"300ms\"\nkeepalive = \"60s\"\n";
/// Long enough for the timer to have found the connection idle (several `client_header`s).
const PARK: Duration = Duration::from_millis(1200);

/// One response read off `s`: its head and body (the dynos answer with a length).
async fn response<S: AsyncRead + Unpin>(s: &mut S, carry: &mut Vec<u8>) -> (String, String) {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end + 4]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if carry.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&carry[end + 4..end + 4 + len]).to_string();
                carry.drain(..end + 4 + len);
                return (head, body);
            }
        }
        let n = within("response", s.read(&mut buf)).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(carry)
        );
        carry.extend_from_slice(&buf[..n]);
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: api.test\r\n\r\n").into_bytes()
}

/// A request, then idle past the release point, then one request and a pipelined pair,
/// each answered in order; then idle and served again.
async fn serves_after_park<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, b: &Backend) {
    let mut carry = Vec::new();
    s.write_all(&get("/first")).await.unwrap();
    let (head, body) = response(s, &mut carry).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "b");
    for round in 0..2 {
        tokio::time::sleep(PARK).await;
        s.write_all(&get(&format!("/after/{round}"))).await.unwrap();
        let (head, _) = response(s, &mut carry).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(b.last().uri, format!("/after/{round}"));
        tokio::time::sleep(PARK).await;
        // A pipelined pair in one write, as the first bytes after a park.
        let pair = [get(&format!("/one/{round}")), get(&format!("/two/{round}"))].concat();
        s.write_all(&pair).await.unwrap();
        for path in ["one", "two"] {
            let (head, body) = response(s, &mut carry).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
            assert!(
                !head.to_ascii_lowercase().contains("connection: close"),
                "{head}"
            );
            assert_eq!(body, "b");
        }
        let uris: Vec<String> = b.requests().iter().map(|r| r.uri.to_string()).collect();
        assert!(
            uris.ends_with(&[format!("/one/{round}"), format!("/two/{round}")]),
            "{uris:?}"
        );
    }
    assert!(carry.is_empty(), "{:?}", String::from_utf8_lossy(&carry));
}

/// Reads until the peer closes: `Ok(bytes)` after a clean end (FIN, TLS close_notify).
async fn until_closed<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    within("close", s.read_to_end(&mut out)).await.map(|_| out)
}

/// A router with one TLS listener for `api.test` (and `keys` among its router keys), and
/// a client config trusting it.
async fn tls_router(keys: &str, b: &Backend) -> (Router, Arc<rustls::ClientConfig>) {
    let cert = spaced_testkit::pki::self_signed(&["api.test"]);
    let toml = space(
        &format!("tls_listen = [\"127.0.0.1:0\"]\n{keys}"),
        &(app("api", &["api.test"], &[b.addr])
            + "\n[[tls]]\ncert = \"api.crt\"\nkey = \"api.key\"\n"),
    );
    let files = [
        ("api.crt", cert.cert_pem.clone()),
        ("api.key", cert.key_pem.clone()),
    ];
    let r = Router::start_with(policy_with_files(&toml, &files)).await;
    (r, tls_client(cert.cert_der.clone(), &[b"http/1.1"]))
}

async fn tls_connect(
    r: &Router,
    config: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = within("connect", TcpStream::connect(r.tls()))
        .await
        .unwrap();
    let name = ServerName::try_from("api.test").unwrap();
    within(
        "handshake",
        TlsConnector::from(Arc::clone(config)).connect(name, tcp),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests_pipelined_too() {
    let b = Backend::start("b").await;
    let r = Router::start(&space(TIMEOUTS, &app("api", &["api.test"], &[b.addr]))).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    serves_after_park(&mut s, &b).await;
    // All of it on one connection to the router.
    drop(s);
}

#[tokio::test]
async fn a_parked_tls_connection_serves_its_next_requests_pipelined_too() {
    let b = Backend::start("b").await;
    let (r, client) = tls_router(TIMEOUTS, &b).await;
    let mut s = tls_connect(&r, &client).await;
    serves_after_park(&mut s, &b).await;
}

/// Parked or not, an idle connection closes at `keepalive` counted from its last response,
/// with a FIN (over TLS, a close_notify first: the read ends cleanly).
#[tokio::test]
async fn a_parked_connection_closes_at_keepalive() {
    let keys = "[router.timeouts]\nclient_header = \"300ms\"\nkeepalive = \"2s\"\n";
    let b = Backend::start("b").await;
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[b.addr]))).await;
    let (tr, client) = tls_router(keys, &b).await;

    let mut plain = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let mut tls = tls_connect(&tr, &client).await;
    let (mut c1, mut c2) = (Vec::new(), Vec::new());
    plain.write_all(&get("/")).await.unwrap();
    tls.write_all(&get("/")).await.unwrap();
    response(&mut plain, &mut c1).await;
    response(&mut tls, &mut c2).await;
    let idle_from = Instant::now();
    let (plain_end, tls_end) = tokio::join!(until_closed(&mut plain), until_closed(&mut tls));
    let took = idle_from.elapsed();
    assert_eq!(plain_end.unwrap(), b"", "plain: a FIN after nothing more");
    assert_eq!(
        tls_end.unwrap(),
        b"",
        "TLS: close_notify after nothing more"
    );
    // Not before `keepalive` (the client started counting after the router did, so a
    // little less), however late a loaded machine makes it.
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");
}

/// A client that closes a parked connection gets a FIN back, and the router lets the
/// connection go (its `max_connections` slot with it).
#[tokio::test]
async fn a_parked_connection_holds_its_slot_until_it_ends() {
    let keys = format!("max_connections = 1\n{TIMEOUTS}");
    let b = Backend::start("b").await;
    let r = Router::start(&space(&keys, &app("api", &["api.test"], &[b.addr]))).await;
    // `max_connections = 1`: one external client.
    let mut held = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let mut carry = Vec::new();
    held.write_all(&get("/")).await.unwrap();
    response(&mut held, &mut carry).await;
    tokio::time::sleep(PARK).await;
    // Parked, it still holds the external share: another client is closed at once.
    let mut other = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let _ = other.write_all(&get("/")).await;
    let refused = until_closed(&mut other).await.unwrap_or_default();
    assert!(
        refused.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&refused)
    );
    // The parked client leaves: a FIN back, and the slot is free for the next one.
    held.shutdown().await.unwrap();
    assert_eq!(until_closed(&mut held).await.unwrap(), b"");
    // The slot comes back once the router has seen the close: a few tries.
    let mut served = false;
    for _ in 0..50 {
        let mut next = within("connect", TcpStream::connect(r.addr)).await.unwrap();
        let _ = next.write_all(&get("/")).await;
        let mut buf = [0u8; 64];
        let n = within("answer", next.read(&mut buf)).await.unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the parked connection's slot never came back");
}

/// When the router stops, a parked connection is treated as an idle one always was: a
/// request it sends within `client_header` is answered with `Connection: close`; one that
/// sends nothing is closed after `client_header`, well before `keepalive`, and the stop's
/// drain does not wait for it longer.
#[tokio::test]
async fn a_parked_connection_on_stop_answers_with_close_or_is_closed() {
    let keys = "[router.timeouts]\nclient_header = \"1s\"\nkeepalive = \"60s\"\n";
    let b = Backend::start("b").await;
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[b.addr]))).await;
    let mut asks = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let mut quiet = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let (mut c1, mut c2) = (Vec::new(), Vec::new());
    for (s, c) in [(&mut asks, &mut c1), (&mut quiet, &mut c2)] {
        s.write_all(&get("/")).await.unwrap();
        response(s, c).await;
    }
    // Past the release point (the timer looks every `client_header`).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stopped = Instant::now();
    r.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    asks.write_all(&get("/last")).await.unwrap();
    let (head, _) = response(&mut asks, &mut c1).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{head}"
    );
    assert_eq!(until_closed(&mut asks).await.unwrap(), b"");
    assert_eq!(until_closed(&mut quiet).await.unwrap_or_default(), b"");
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "held for {took:?} after the stop"
    );
    assert!(
        within("drain", r.shutdown.drain(Duration::from_secs(8))).await,
        "the stop waited for the parked connections"
    );
}

/// A reload while a connection is parked: it stays open and its next request goes by the
/// new policy.
#[tokio::test]
async fn a_parked_connection_survives_a_reload() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let r = Router::start(&space(TIMEOUTS, &app("api", &["api.test"], &[a.addr]))).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let mut carry = Vec::new();
    s.write_all(&get("/")).await.unwrap();
    assert_eq!(response(&mut s, &mut carry).await.1, "a");
    tokio::time::sleep(PARK).await;
    r.reload(&space(TIMEOUTS, &app("api", &["api.test"], &[b.addr])));
    tokio::time::sleep(PARK).await;
    s.write_all(&get("/")).await.unwrap();
    assert_eq!(response(&mut s, &mut carry).await.1, "b");
}

/// A gauge of the router's metrics.
fn gauge(r: &Router, name: &str) -> i64 {
    let mut out = String::new();
    r.handle.render_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// Waits (generously: a loaded machine) until `name` reads `want`.
async fn gauge_reaches(r: &Router, name: &str, want: i64) {
    let mut last = 0;
    for _ in 0..300 {
        last = gauge(r, name);
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} stayed at {last}, not {want}");
}

const PARKED: &str = "spaced_router_parked_connections";

/// Many idle plain connections wait in the lot together (no task each), and every one is
/// served again when it sends; idle again, they go back to the lot.
#[tokio::test]
async fn many_plain_connections_in_the_lot_are_each_served_again() {
    const N: usize = 200;
    let b = Backend::start("b").await;
    let r = Router::start(&space(TIMEOUTS, &app("api", &["api.test"], &[b.addr]))).await;
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
        let mut carry = Vec::new();
        s.write_all(&get("/first")).await.unwrap();
        let (head, _) = response(&mut s, &mut carry).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        conns.push((s, carry));
    }
    gauge_reaches(&r, PARKED, N as i64).await;
    for (i, (s, carry)) in conns.iter_mut().enumerate() {
        s.write_all(&get(&format!("/again/{i}"))).await.unwrap();
        let (head, body) = response(s, carry).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{i}: {head}");
        assert_eq!(body, "b");
    }
    gauge_reaches(&r, PARKED, N as i64).await;
    assert_eq!(gauge(&r, "spaced_router_connections"), N as i64);
}

/// A client that closes its connection while it is in the lot gets a FIN back, and the
/// connection leaves the lot and frees its `max_connections` slot.
#[tokio::test]
async fn a_client_closing_in_the_lot_frees_its_slot() {
    let b = Backend::start("b").await;
    let r = Router::start(&space(TIMEOUTS, &app("api", &["api.test"], &[b.addr]))).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let mut carry = Vec::new();
    s.write_all(&get("/")).await.unwrap();
    response(&mut s, &mut carry).await;
    gauge_reaches(&r, PARKED, 1).await;
    assert_eq!(gauge(&r, "spaced_router_connections"), 1);
    s.shutdown().await.unwrap();
    assert_eq!(until_closed(&mut s).await.unwrap(), b"");
    gauge_reaches(&r, PARKED, 0).await;
    gauge_reaches(&r, "spaced_router_connections", 0).await;
    // A reset (no FIN) is cleaned up too.
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(&get("/")).await.unwrap();
    response(&mut s, &mut carry).await;
    gauge_reaches(&r, PARKED, 1).await;
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    gauge_reaches(&r, PARKED, 0).await;
    gauge_reaches(&r, "spaced_router_connections", 0).await;
}

/// TLS connections park in their task, not in the lot.
#[tokio::test]
async fn a_parked_tls_connection_stays_out_of_the_lot() {
    let b = Backend::start("b").await;
    let (r, client) = tls_router(TIMEOUTS, &b).await;
    let mut s = tls_connect(&r, &client).await;
    let mut carry = Vec::new();
    s.write_all(&get("/")).await.unwrap();
    response(&mut s, &mut carry).await;
    tokio::time::sleep(PARK).await;
    assert_eq!(gauge(&r, PARKED), 0);
    s.write_all(&get("/again")).await.unwrap();
    let (head, _) = response(&mut s, &mut carry).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// The stop with connections in the lot (seen there): as for any parked connection, a
/// request sent within `client_header` is answered with `Connection: close`, a quiet
/// connection is closed after `client_header`, and the drain ends.
#[tokio::test]
async fn the_stop_hands_the_lot_back() {
    let keys = "[router.timeouts]\nclient_header = \"1s\"\nkeepalive = \"60s\"\n";
    let b = Backend::start("b").await;
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[b.addr]))).await;
    let mut asks = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let mut quiet = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    let (mut c1, mut c2) = (Vec::new(), Vec::new());
    for (s, c) in [(&mut asks, &mut c1), (&mut quiet, &mut c2)] {
        s.write_all(&get("/")).await.unwrap();
        response(s, c).await;
    }
    gauge_reaches(&r, PARKED, 2).await;
    r.shutdown.cancel();
    gauge_reaches(&r, PARKED, 0).await;
    asks.write_all(&get("/last")).await.unwrap();
    let (head, _) = response(&mut asks, &mut c1).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{head}"
    );
    assert_eq!(until_closed(&mut asks).await.unwrap(), b"");
    assert_eq!(until_closed(&mut quiet).await.unwrap_or_default(), b"");
    assert!(
        within("drain", r.shutdown.drain(Duration::from_secs(8))).await,
        "the stop waited for the parked connections"
    );
}
