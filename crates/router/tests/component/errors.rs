//! The error table: timeouts, dyno failures, malformed requests, Expect, upgrades, and
//! the client-side deadlines.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::harness::*;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FAST: &str = "retries = 1\n\n[router.timeouts]\nconnect = \"300ms\"\nresponse = \"300ms\"\nidle = \"300ms\"\nclient_header = \"400ms\"\nkeepalive = \"600ms\"\n";

async fn router(b: &Backend) -> Router {
    Router::start(&space(FAST, &app("api", &["api.test"], &[b.addr]))).await
}

#[tokio::test]
async fn slow_dyno_is_h12() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let got = get(r.addr, "api.test", "/slow/3000").await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("H12"), "{}", got.text());
}

#[tokio::test]
async fn dyno_closing_without_response_is_h13() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let got = get(r.addr, "api.test", "/drop").await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("H13"), "{}", got.text());
    // The router still serves afterwards.
    assert_eq!(get(r.addr, "api.test", "/").await.status, 200);
}

#[tokio::test]
async fn dyno_idle_mid_response_is_h15_and_closes() {
    // Current-thread runtime: the router's tasks log under this capture.
    let (capture, _guard) = spaced_testkit::capture::Capture::install("router");
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let mut c = Client::connect(r.addr).await;
    let req = Request::get("/stall")
        .header("host", "api.test")
        .body(Full::default())
        .unwrap();
    // The head arrives; the body stops after the first part and the connection is cut.
    assert!(c.send(req).await.is_err());
    // And it was an H15 that cut it (not the client's deadline or a dyno error): the
    // request's log line says so, with the 200 already relayed.
    eventually("the request's log line", || !capture.lines().is_empty()).await;
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (_, line) = &lines[0];
    assert!(line.contains("code=H15 "), "{line}");
    assert!(line.contains("path=\"/stall\""), "{line}");
    assert!(line.contains(" status=200 "), "{line}");
}

#[tokio::test]
async fn connect_timeout_is_h19() {
    // A listener with a full accept queue drops SYNs: connects time out.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fill.push(s);
        }
    }
    let r = Router::start(&space(FAST, &app("api", &["api.test"], &[addr]))).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("H19"), "{}", got.text());
    drop(sock);
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let long_header = format!("x-long: {}\r\n", "a".repeat(8200));
    let many: String = (0..1001).map(|i| format!("x-{i}: v\r\n")).collect();
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nhost: api.test\r\n\r\n",
        "a".repeat(8200)
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "two hosts",
            "GET / HTTP/1.1\r\nhost: api.test\r\nhost: other.test\r\n\r\n".into(),
        ),
        (
            "conflicting length",
            "POST / HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"
                .into(),
        ),
        (
            "long header",
            format!("GET / HTTP/1.1\r\nhost: api.test\r\n{long_header}\r\n"),
        ),
        (
            "many headers",
            format!("GET / HTTP/1.1\r\nhost: api.test\r\n{many}\r\n"),
        ),
        ("long request line", long_target),
        // These three hyper refuses itself; the client still gets our page.
        (
            "bad header syntax",
            "GET / HTTP/1.1\r\nhost api.test\r\n\r\n".into(),
        ),
        ("garbage", "\u{1}\u{2} nonsense\r\n\r\n".into()),
        // RFC 9112 §3.2: a Host that is no host[:port] is a 400, not a route by its prefix.
        (
            "host with a bad port",
            "GET / HTTP/1.1\r\nhost: api.test:abc\r\n\r\n".into(),
        ),
        (
            "host with a path",
            "GET / HTTP/1.1\r\nhost: api.test/x\r\n\r\n".into(),
        ),
        (
            "two lengths",
            "POST / HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\ncontent-length: 1, 2\r\n\r\nab".into(),
        ),
    ];
    for (what, req) in cases {
        let out = raw(r.addr, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out}");
        assert_error_page(&out, "H26");
    }
    assert_eq!(b.count(), 0);
    // Limits themselves are fine.
    let ok: String = (0..998).map(|i| format!("x-{i}: v\r\n")).collect();
    let out = raw(
        r.addr,
        format!("GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n{ok}\r\n").as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// The HTML page of an error response, with the request id in the header and the body.
fn assert_error_page(out: &str, code: &str) {
    let (head, body) = out.split_once("\r\n\r\n").expect(out);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\ncontent-type: text/html"), "{out}");
    let id = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no request id: {out}"));
    let len: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no length: {out}"));
    assert_eq!(body.len(), len, "{out}");
    assert!(body.contains(code) && body.contains(id), "{out}");
}

/// hyper's own answers to a head it cannot parse become our page too: after a response on
/// the same connection, and for heads beyond hyper's own limits (a head over the 1 MiB
/// buffer, more than 1100 header lines, a target over 64 KiB: hyper says 431 or 414), which
/// get H26's 400 like every other broken limit (BEHAVIOR.md "Limits ... 400").
#[tokio::test]
async fn heads_hyper_refuses_get_the_error_page() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let out = raw(
        r.addr,
        b"GET / HTTP/1.1\r\nhost: api.test\r\n\r\nGET / HTTP/1.1\r\nhost: api.test\r\nbad\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let second = &out[out.find("HTTP/1.1 400").expect(&out)..];
    assert_error_page(second, "H26");
    assert!(
        second
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{second}"
    );

    let huge_head = format!(
        "GET / HTTP/1.1\r\nhost: api.test\r\n{}\r\n",
        "x-fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(20_000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nhost: api.test\r\n{}\r\n",
        "x: 1\r\n".repeat(2000)
    );
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nhost: api.test\r\n\r\n",
        "a".repeat(70_000)
    );
    for head in [huge_head, many_headers, long_target] {
        let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
        // The router may stop reading (and answer) before the whole head is written.
        let _ = s.write_all(head.as_bytes()).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert_error_page(&out, "H26");
    }
    assert_eq!(b.count(), 1);
}

/// A chunked request body that breaks its framing is malformed (H26, 400), not a client
/// that left (H27): the client is still there to read the answer.
#[tokio::test]
async fn a_malformed_chunked_body_is_400() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    for (what, chunks) in [
        ("size not hex", "zz\r\nbody\r\n0\r\n\r\n"),
        ("negative size", "-4\r\nbody\r\n0\r\n\r\n"),
        (
            "size past u64",
            "fffffffffffffffffffff\r\nbody\r\n0\r\n\r\n",
        ),
        ("data longer than its size", "2\r\nbody\r\n0\r\n\r\n"),
        ("no line end after the data", "4\r\nbodyX0\r\n\r\n"),
    ] {
        let req = format!(
            "POST / HTTP/1.1\r\nhost: api.test\r\ntransfer-encoding: chunked\r\n\r\n{chunks}"
        );
        let out = raw(r.addr, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out}");
        assert!(out.contains("\r\nconnection: close\r\n"), "{what}: {out}");
        assert_error_page(&out, "H26");
    }
}

#[tokio::test]
async fn expect_100_continue_honoured_and_others_417() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let out = raw(
        r.addr,
        b"POST /echo HTTP/1.1\r\nhost: api.test\r\nexpect: 200-ok\r\ncontent-length: 2\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 417"), "{out}");

    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: api.test\r\nexpect: 100-continue\r\ncontent-length: 5\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = within("100", s.read(&mut buf)).await.unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    s.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    within("response", s.read_to_end(&mut rest)).await.unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("200 OK") && rest.ends_with("hello"), "{rest}");
    assert!(!b.last().headers.contains_key("expect"));
}

/// Sends an `Upgrade: echo` request; the socket and the response head, read byte by byte
/// so nothing after it is consumed.
async fn open_upgrade(r: &Router) -> (TcpStream, Vec<u8>) {
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nhost: api.test\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        within("head", s.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    (s, head)
}

#[tokio::test]
async fn upgrade_relayed_both_ways() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let (mut s, head) = open_upgrade(&r).await;
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    assert!(head.contains("x-request-id"), "{head}");
    // The last one has the shape of hyper's answer to a bad head, which the router replaces
    // on a connection that is still HTTP: an upgraded one's bytes pass as they are.
    for msg in [
        &b"hello"[..],
        b"again",
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
    ] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        within("echo", s.read_exact(&mut back)).await.unwrap();
        assert_eq!(back, msg);
    }
}

/// Shutdown drains an upgraded connection like a request: it keeps relaying through the
/// grace period and the drain completes once the client closes it.
#[tokio::test]
async fn upgrade_survives_shutdown_until_closed() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let (mut s, head) = open_upgrade(&r).await;
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let shutdown = r.shutdown.clone();
    let drain = tokio::spawn(async move { shutdown.drain(Duration::from_secs(20)).await });
    // The pause is the test: a drain that did not wait would have finished by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !drain.is_finished(),
        "drain must wait for the upgraded connection"
    );
    s.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    within("echo after shutdown", s.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(&back, b"still here");
    drop(s);
    assert!(within("drain", drain).await.unwrap(), "drain completes");
}

#[tokio::test]
async fn slow_request_head_is_closed() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: api").await.unwrap();
    let mut buf = Vec::new();
    // Closed (EOF, possibly after a 408) well before our own 10 s guard.
    let n = within("close", s.read_to_end(&mut buf)).await.unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn idle_keepalive_connection_is_closed() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: api.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = within("response", s.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then nothing: closed after keepalive.
    let n = within("keepalive close", s.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn client_idle_while_sending_is_h28() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: api.test\r\ncontent-length: 100\r\n\r\npartial")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = within("h28", s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    // 499 has no standard reason phrase: ours is nginx's, never hyper's `<none>`.
    assert!(
        text.starts_with("HTTP/1.1 499 Client Closed Request\r\n") && text.contains("H28"),
        "{text}"
    );
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let b = Backend::start("b").await;
    let r = router(&b).await;
    let mut c = Client::connect(r.addr).await;
    let got = c.get("api.test", "/big/1000000").await;
    assert_eq!(got.body.len(), 1_000_000);
    let payload = vec![b'y'; 300_000];
    let req = Request::post("/echo")
        .header("host", "api.test")
        .body(Full::new(bytes::Bytes::from(payload.clone())))
        .unwrap();
    let got = c.send(req).await.unwrap();
    assert_eq!(got.body.len(), payload.len());
}

#[tokio::test]
async fn slow_second_head_on_a_keepalive_connection_is_closed() {
    let b = Backend::start("b").await;
    let keys = "\n[router.timeouts]\nclient_header = \"300ms\"\nkeepalive = \"60s\"\n";
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[b.addr]))).await;
    let mut s = within("connect", TcpStream::connect(r.addr)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: api.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = within("response", s.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A second head that never completes: closed by client_header, long before keepalive.
    s.write_all(b"GET / HTTP/1.1\r\nhost: api").await.unwrap();
    let n = within("closed", s.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn invalid_dyno_response_is_h25() {
    // A "dyno" that answers with something that is not HTTP.
    expect_h25(raw_dyno(b"NOT HTTP AT ALL\r\n\r\n", Duration::from_secs(1)).await).await;
}

/// A request through a router whose only dyno is `addr` gets 502 with H25.
async fn expect_h25(addr: std::net::SocketAddr) {
    let r = Router::start(&space(FAST, &app("api", &["api.test"], &[addr]))).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 502);
    assert!(got.text().contains("H25"), "{}", got.text());
}

#[tokio::test]
async fn dyno_response_header_limit_is_the_request_one() {
    let reply = |n: usize| -> &'static [u8] {
        let mut r = String::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
        for i in 0..n {
            r.push_str(&format!("x-h{i}: v\r\n"));
        }
        r.push_str("\r\nok");
        Box::leak(r.into_bytes().into_boxed_slice())
    };
    // 150 headers (over hyper's default of 100) are relayed...
    let addr = raw_dyno(reply(150), Duration::from_secs(1)).await;
    let r = Router::start(&space(FAST, &app("api", &["api.test"], &[addr]))).await;
    // (read raw: the test's own hyper client stops at 100 headers)
    let got = raw(
        r.addr,
        b"GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.contains("x-h149: v") && got.ends_with("\r\n\r\nok"),
        "{got}"
    );
    // ...and more than 1000 are H25.
    expect_h25(raw_dyno(reply(1001), Duration::from_secs(1)).await).await;
}

/// A dyno's reason phrase reaches the client, on raw connections (no request body) as on
/// hyper's (with one), so a status without a standard name does not become `<none>`.
#[tokio::test]
async fn dyno_reason_phrase_is_relayed() {
    let addr = raw_dyno(
        b"HTTP/1.1 299 Custom Reason\r\ncontent-length: 2\r\n\r\nok",
        Duration::ZERO,
    )
    .await;
    let r = Router::start(&space(FAST, &app("api", &["api.test"], &[addr]))).await;
    for req in [
        "GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
        "POST / HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx",
    ] {
        let got = raw(r.addr, req.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 299 Custom Reason\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\nok"), "{got}");
    }
}

#[tokio::test]
async fn dyno_closing_mid_response_is_h18() {
    // A "dyno" that promises 100 bytes, sends 4, and hangs up.
    let addr = raw_dyno(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart",
        Duration::ZERO,
    )
    .await;
    let r = Router::start(&space(FAST, &app("api", &["api.test"], &[addr]))).await;
    let mut c = Client::connect(r.addr).await;
    let req = Request::get("/")
        .header("host", "api.test")
        .body(Full::default())
        .unwrap();
    // The head was relayed; the body is cut: the client sees an incomplete message.
    assert!(c.send(req).await.is_err());
    // Counted under the status that was relayed, as its log line shows it.
    let h18 = "spaced_router_requests_total{app=\"api\",status=\"200\",code=\"H18\"} 1";
    eventually("H18 counted", || {
        let mut m = String::new();
        r.handle.render_metrics(&mut m);
        m.contains(h18)
    })
    .await;
}

/// H18: what was relayed before the dyno broke off stays relayed (BEHAVIOR.md "Closing
/// without a word"), on hyper's path (a request body, HTTP/1.0) as on the fast path;
/// then the connection closes without a proper end.
#[tokio::test]
async fn what_was_relayed_before_h18_reaches_the_client() {
    for (reply, relayed) in [
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"[..],
            "hello",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart",
            "part",
        ),
    ] {
        let reply: &'static [u8] = Box::leak(reply.to_vec().into_boxed_slice());
        let addr = raw_dyno(reply, Duration::ZERO).await;
        let r = Router::start(&space(FAST, &app("api", &["api.test"], &[addr]))).await;
        for req in [
            "GET / HTTP/1.1\r\nhost: api.test\r\n\r\n",
            "POST / HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\n\r\nx",
            "GET / HTTP/1.0\r\nhost: api.test\r\n\r\n",
        ] {
            let got = raw(r.addr, req.as_bytes()).await;
            let what = format!("{req:?} -> {got:?}");
            assert!(got.starts_with("HTTP/1."), "{what}");
            let body = got.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            assert!(body.contains(relayed), "{what}");
            assert!(!body.ends_with("0\r\n\r\n"), "no proper end: {what}");
        }
    }
}

/// A fake dyno that reads one request, writes `reply` byte for byte, keeps the connection
/// open for `linger`, then hangs up.
async fn raw_dyno(reply: &'static [u8], linger: Duration) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    addr
}
