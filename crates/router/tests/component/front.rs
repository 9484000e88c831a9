//! The HTTP/1 fast path (`front`) against hyper's path: the same request reaches the dyno
//! with the same head whichever path serves it, and a connection the fast path hands to
//! hyper mid-way keeps every pipelined request, in order.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A head with everything the router rewrites: forwarding headers to replace or append
/// to, hop-by-hop headers, a client request id, mixed-case names, repeated headers, and
/// the `Content-Length: 0` many clients send without a body.
const HEAD: &str = "GET /p/a?q=1 HTTP/1.1\r\n\
    Host: api.test\r\n\
    X-Custom: one\r\n\
    x-forwarded-for: 203.0.113.9\r\n\
    X-Forwarded-For:  198.51.100.7 \r\n\
    X-Forwarded-Proto: gopher\r\n\
    X-Forwarded-Port: 1\r\n\
    X-Request-Start: 0\r\n\
    X-Request-Id: client-chosen-id-0123456789\r\n\
    Via: 1.0 edge\r\n\
    Keep-Alive: timeout=5\r\n\
    TE: trailers\r\n\
    Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
    x-custom: two\r\n\
    Content-Length: 0\r\n\
    Accept: */*\r\n";

/// `head` (without its blank line) on a connection of its own, on the fast path, with
/// `Connection: close`; the whole response.
async fn on_fast_path(addr: std::net::SocketAddr, head: &str) -> String {
    raw(addr, format!("{head}connection: close\r\n\r\n").as_bytes()).await
}

/// The same request on hyper's path: a `Connection` that names a header (absent here)
/// keeps it off the fast path, and hyper's path strips `Connection` all the same.
async fn on_hyper_path(addr: std::net::SocketAddr, head: &str) -> String {
    raw(
        addr,
        format!("{head}connection: close, x-absent\r\n\r\n").as_bytes(),
    )
    .await
}

/// The headers a dyno got, lowercase names in order of appearance, `x-request-start`
/// checked and left out (it is the clock).
fn seen_headers(s: &Seen) -> Vec<(String, String)> {
    let start = s.headers.get("x-request-start").expect("x-request-start");
    assert!(start.to_str().unwrap().parse::<u64>().unwrap() > 1_600_000_000_000);
    let mut out: Vec<(String, String)> = s
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() != "x-request-start")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_dyno_gets_the_same_head_from_either_path() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let fast = on_fast_path(r.addr, HEAD).await;
    assert!(fast.starts_with("HTTP/1.1 200 OK\r\n"), "{fast}");
    let via_fast = b.last();
    let slow = on_hyper_path(r.addr, HEAD).await;
    assert!(slow.starts_with("HTTP/1.1 200 OK\r\n"), "{slow}");
    let via_hyper = b.last();
    assert_eq!(b.count(), 2);
    assert_eq!(via_fast.method, via_hyper.method);
    assert_eq!(via_fast.uri, "/p/a?q=1");
    assert_eq!(via_fast.uri, via_hyper.uri);
    assert_eq!(seen_headers(&via_fast), seen_headers(&via_hyper));
    let h = &via_fast.headers;
    let all = |n: &str| {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-custom"), ["one", "two"]);
    assert_eq!(all("content-length"), ["0"]);
    assert_eq!(
        all("x-forwarded-for"),
        ["203.0.113.9, 198.51.100.7, 127.0.0.1"]
    );
    assert_eq!(all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        all("x-forwarded-port"),
        [r.addr.port().to_string().as_str()]
    );
    assert_eq!(all("x-request-id"), ["client-chosen-id-0123456789"]);
    assert_eq!(all("via"), ["1.0 edge, 1.1 spaced"]);
    for gone in ["keep-alive", "te", "proxy-authorization", "connection"] {
        assert!(!h.contains_key(gone), "{gone} reached the dyno");
    }
    // And the client's responses agree too, but for the date.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&fast), strip(&slow));
}

/// Reads one response (head and `content-length` body) from `s`, leaving what follows.
async fn read_response(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let whole: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return String::from_utf8_lossy(&whole).into_owned();
            }
        }
        let mut chunk = [0u8; 4096];
        let n = within("response", s.read(&mut chunk)).await.unwrap();
        assert!(
            n > 0,
            "closed early; have {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn pipelined_requests_survive_the_hand_over_to_hyper() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    // A GET the fast path serves, then a POST (a body: hyper's), then GETs hyper serves
    // on the connection it took over; all written at once.
    let mut s = send(
        r.addr,
        b"GET /one HTTP/1.1\r\nhost: api.test\r\n\r\n\
          POST /two HTTP/1.1\r\nhost: api.test\r\ncontent-length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nhost: api.test\r\n\r\n\
          GET /four HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    let mut buf = Vec::new();
    for _ in 0..4 {
        let resp = read_response(&mut s, &mut buf).await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.ends_with("\r\n\r\nb"), "{resp}");
    }
    let mut rest = Vec::new();
    within("close", s.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    let seen = b.seen.lock().unwrap().clone();
    let got: Vec<_> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.uri.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("GET", "/one"),
            ("POST", "/two"),
            ("GET", "/three"),
            ("GET", "/four")
        ]
    );
    assert_eq!(seen[1].body.as_ref(), b"hello");
}

#[tokio::test]
async fn a_head_split_across_writes_is_served_and_the_connection_kept() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let mut s = send(r.addr, b"GET /split HTTP/1.1\r\nho").await;
    // The pause is the test: the rest of the head comes in a later segment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"st: api.test\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let resp = read_response(&mut s, &mut buf).await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    // Kept alive: a second request on it.
    s.write_all(b"HEAD /again HTTP/1.1\r\nhost: api.test\r\n\r\n")
        .await
        .unwrap();
    let resp = within("second", async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
    })
    .await;
    // HEAD: the GET's length, no body.
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("content-length: 1\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n"), "{resp}");
    assert_eq!(b.count(), 2);
}

/// A response without its date and request id (new ones each time), to compare byte for
/// byte what the two paths sent.
fn normal(s: &str) -> String {
    let id = s
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or("-")
        .to_string();
    s.split("\r\n")
        .filter(|l| !l.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
        .replace(&id, "ID")
}

#[tokio::test]
async fn a_client_gets_the_same_response_from_either_path() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    for (method, host, path) in [
        ("GET", "api.test", "/hop"),
        ("GET", "api.test", "/big/70000"),
        ("HEAD", "api.test", "/big/10"),
        ("GET", "api.test", "/drop"),
        ("GET", "nobody.test", "/"),
        ("DELETE", "api.test", "/x"),
    ] {
        let head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
        let fast = on_fast_path(r.addr, &head).await;
        let slow = on_hyper_path(r.addr, &head).await;
        assert!(fast.starts_with("HTTP/1.1 "), "{fast}");
        assert_eq!(normal(&fast), normal(&slow), "{method} {host}{path}");
    }
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_a_cleartext_listener() {
    use http_body_util::{BodyExt, Empty};

    let (capture, _guard) = spaced_testkit::capture::Capture::install("router");
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let tcp = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let mut sender = h2_client(tcp).await;
    for path in ["/one", "/two"] {
        let req = http::Request::builder()
            .uri(format!("http://api.test{path}"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = within("h2 request", sender.send_request(req))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.as_ref(), b"b");
        assert_eq!(b.last().uri, path);
        // The dyno speaks HTTP/1.1 and sees the authority as Host.
        assert_eq!(b.last().headers["host"], "api.test");
    }
    // With neither `:authority` nor `host`: 400, as HTTP/1.1 without Host.
    let req = http::Request::builder()
        .uri("/three")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = within("h2 request", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(b.last().uri, "/two");
    eventually("logged", || capture.lines().len() >= 3).await;
    assert!(
        capture
            .lines()
            .iter()
            .all(|(_, l)| l.contains(" protocol=http2.0 ")),
        "{:?}",
        capture.lines()
    );
}

/// A dyno that answers each request head with the response its path names, as raw bytes.
async fn scripted_dyno() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let reply: &[u8] = match path.as_str() {
                        "/dup-length" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
                        "/204-length" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
                        "/304-length" => b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n",
                        "/zero-length" => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                        _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1e\r\n0123456789abcdefghijklmnopqrst\r\n0\r\n\r\n",
                    };
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Found by the differential audit of the build before the fast path against this one:
/// the fast path must frame a dyno's odd lengths as hyper's server did.
#[tokio::test]
async fn odd_dyno_lengths_are_framed_as_hyper_frames_them() {
    let dyno = scripted_dyno().await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[dyno]))).await;
    for (method, path) in [
        ("GET", "/dup-length"),
        ("GET", "/204-length"),
        ("GET", "/304-length"),
        ("GET", "/zero-length"),
        ("HEAD", "/304-length"),
        ("GET", "/chunked"),
    ] {
        let head = format!("{method} {path} HTTP/1.1\r\nhost: api.test\r\n");
        let fast = on_fast_path(r.addr, &head).await;
        let slow = on_hyper_path(r.addr, &head).await;
        assert!(fast.starts_with("HTTP/1.1 "), "{fast}");
        assert_eq!(normal(&fast), normal(&slow), "{method} {path}");
        assert!(fast.matches("content-length").count() <= 1, "{fast}");
    }
    // HEAD with the length twice: hyper's server drops the connection without a byte
    // ("unexpected content-length"); the fast path says it once.
    let fast = raw(
        r.addr,
        b"HEAD /dup-length HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        fast.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"),
        "{fast}"
    );
    assert_eq!(fast.matches("content-length").count(), 1, "{fast}");
}

#[tokio::test]
async fn a_fragment_never_reaches_the_dyno() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    for (target, dyno_gets) in [
        ("/a#frag", "/a"),
        ("/a?x=1#y", "/a?x=1"),
        ("/#/../etc", "/"),
    ] {
        let got = raw(
            r.addr,
            format!("GET {target} HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert_eq!(b.last().uri, dyno_gets);
    }
}

/// A client that leaves while the dyno's body stalls ends the relay at once, as with
/// hyper: the line is the 200 that was under way, not an H15 a whole idle timeout later.
#[tokio::test]
async fn a_client_leaving_mid_body_ends_the_relay_at_once() {
    let (capture, _guard) = spaced_testkit::capture::Capture::install("router");
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let mut s = send(r.addr, b"GET /stall HTTP/1.1\r\nhost: api.test\r\n\r\n").await;
    let mut chunk = [0u8; 1024];
    let n = within("head", s.read(&mut chunk)).await.unwrap();
    assert!(String::from_utf8_lossy(&chunk[..n]).starts_with("HTTP/1.1 200 OK"));
    drop(s);
    eventually("logged", || !capture.lines().is_empty()).await;
    let (_, line) = capture.lines().remove(0);
    assert!(
        line.starts_with("at=info ") && line.contains(" status=200 "),
        "{line}"
    );
}

/// RFC 9112 §2.3: HTTP/1.2 is served as HTTP/1.1 (nginx and haproxy do; hyper's parser
/// refused it, a 400), keep-alive by default as 1.1 is; HTTP/2.0 on an HTTP/1 request
/// line is still refused.
#[tokio::test]
async fn a_later_http1_minor_version_is_served_as_1_1() {
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let mut s = send(
        r.addr,
        b"GET /one HTTP/1.2\r\nhost: api.test\r\n\r\n\
          GET /two HTTP/1.3\r\nhost: api.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    let mut buf = Vec::new();
    for _ in 0..2 {
        let resp = read_response(&mut s, &mut buf).await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    }
    let seen = b.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.version == http::Version::HTTP_11));
    // A body takes it to hyper's path, which reads the same rewritten line.
    let resp = raw(
        r.addr,
        b"POST /three HTTP/1.2\r\nhost: api.test\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert_eq!(b.last().body.as_ref(), b"hi");
    let resp = raw(r.addr, b"GET / HTTP/2.0\r\nhost: api.test\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
}
