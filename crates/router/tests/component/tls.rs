//! TLS listeners end to end: HTTP/2 and HTTP/1.1 over TLS, `X-Forwarded-Proto: https`,
//! and the log line's `protocol`, `tls`, `tls_version`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use crate::harness::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use spaced_testkit::capture::Capture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS connection to `addr` for `api.test`.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> TlsStream<tokio::net::TcpStream> {
    let tcp = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let name = ServerName::try_from("api.test").unwrap();
    within("handshake", TlsConnector::from(config).connect(name, tcp))
        .await
        .unwrap()
}

#[tokio::test]
async fn h2_and_h1_over_tls_with_https_headers_and_log_fields() {
    let (capture, _guard) = Capture::install("router");
    let cert = spaced_testkit::pki::self_signed(&["api.test"]);
    let b = Backend::start("b").await;
    let toml = space(
        "tls_listen = [\"127.0.0.1:0\"]",
        &(app("api", &["api.test"], &[b.addr])
            + "\n[[tls]]\ncert = \"api.crt\"\nkey = \"api.key\"\n"),
    );
    let files = [
        ("api.crt", cert.cert_pem.clone()),
        ("api.key", cert.key_pem.clone()),
    ];
    let r = Router::start_with(policy_with_files(&toml, &files)).await;
    let tls_addr = r.handle.tls_listen[0];

    // HTTP/2 (ALPN h2).
    let tls = tls_connect(
        tls_addr,
        tls_client(cert.cert_der.clone(), &[b"h2", b"http/1.1"]),
    )
    .await;
    let mut sender = h2_client(tls).await;
    let req = http::Request::get("https://api.test/h2?x=1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = within("h2 request", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = within("h2 body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"b");
    let seen = b.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/h2?x=1");
    assert_eq!(seen.headers["host"], "api.test");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(
        seen.headers["x-forwarded-port"],
        tls_addr.port().to_string().as_str()
    );

    // HTTP/1.1 (no ALPN).
    let tls = tls_connect(tls_addr, tls_client(cert.cert_der.clone(), &[])).await;
    let (mut sender, conn) = within(
        "h1 handshake",
        hyper::client::conn::http1::handshake(TokioIo::new(tls)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/h1")
        .header("host", "api.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = within("h1 request", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    within("h1 body", resp.into_body().collect()).await.unwrap();

    // A head hyper refuses gets the error page over TLS too.
    let mut tls = tls_connect(tls_addr, tls_client(cert.cert_der.clone(), &[])).await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost api.test\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = within("bad head answer", tls.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("\r\ncontent-type: text/html\r\n"), "{out}");
    assert!(
        out.contains("\r\nx-request-id: ") && out.contains("H26"),
        "{out}"
    );

    eventually("the h2 and h1 log lines", || {
        let lines = capture.lines();
        let has = |p: &str| lines.iter().any(|(_, l)| l.contains(p));
        has("path=\"/h2?x=1\"") && has("path=\"/h1\"")
    })
    .await;
    let lines: Vec<String> = capture.lines().into_iter().map(|(_, l)| l).collect();
    let h2 = lines
        .iter()
        .find(|l| l.contains("path=\"/h2?x=1\""))
        .expect("h2 line");
    assert!(
        h2.ends_with("protocol=http2.0 tls=true tls_version=tls1.3"),
        "{h2}"
    );
    assert!(h2.contains(" host=api.test "), "{h2}");
    let h1 = lines
        .iter()
        .find(|l| l.contains("path=\"/h1\""))
        .expect("h1 line");
    assert!(
        h1.ends_with("protocol=http1.1 tls=true tls_version=tls1.3"),
        "{h1}"
    );
}

/// A router serving `apps` with one certificate, for `api.test`, on its TLS listener, and
/// an HTTP/2 connection to it.
async fn h2_router(
    apps: String,
) -> (
    Router,
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
) {
    let cert = spaced_testkit::pki::self_signed(&["api.test"]);
    let toml = space(
        "tls_listen = [\"127.0.0.1:0\"]",
        &(apps + "\n[[tls]]\ncert = \"api.crt\"\nkey = \"api.key\"\n"),
    );
    let files = [
        ("api.crt", cert.cert_pem.clone()),
        ("api.key", cert.key_pem.clone()),
    ];
    let r = Router::start_with(policy_with_files(&toml, &files)).await;
    let tls = tls_connect(
        r.handle.tls_listen[0],
        tls_client(cert.cert_der.clone(), &[b"h2"]),
    )
    .await;
    (r, h2_client(tls).await)
}

/// HTTP/2 routes by `:authority`: a `host` header naming another app beside it neither
/// chooses the app nor reaches the dyno (RFC 9113 §8.3.1; BEHAVIOR.md "Which app").
#[tokio::test]
async fn h2_routes_by_authority_not_a_host_header_beside_it() {
    let api = Backend::start("api").await;
    let other = Backend::start("other").await;
    let apps =
        app("api", &["api.test"], &[api.addr]) + &app("other", &["other.test"], &[other.addr]);
    let (_r, mut sender) = h2_router(apps).await;
    for (authority, host) in [("api.test", "other.test"), ("api.test", "nope.test")] {
        let req = http::Request::get(format!("https://{authority}/a"))
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = within("h2 request", sender.send_request(req))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "authority {authority}, host {host}");
        let body = within("h2 body", resp.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"api");
        assert_eq!(api.last().headers["host"], authority);
    }
    assert_eq!(other.count(), 0);
}

/// HTTP/2 takes the heads HTTP/1 takes (up to 1000 headers, 8 KiB lines: far over h2's
/// default 16 KiB header list), and the router's limits answer beyond them (400, H26),
/// not h2's own bare 431.
#[tokio::test]
async fn h2_header_limits_are_the_router_ones() {
    let b = Backend::start("b").await;
    let (_r, mut sender) = h2_router(app("api", &["api.test"], &[b.addr])).await;
    let long = "v".repeat(8000);
    for (n, value, want) in [(999, "v", 200), (4, long.as_str(), 200), (1001, "v", 400)] {
        let mut req = http::Request::get("https://api.test/h");
        for i in 0..n {
            req = req.header(format!("x-h{i}"), value);
        }
        let req = req.body(Empty::<Bytes>::new()).unwrap();
        let resp = within("h2 request", sender.send_request(req))
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{n} headers of {} bytes", value.len());
        let id = resp.headers()["x-request-id"].clone();
        let body = within("h2 body", resp.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        if want == 400 {
            let page = String::from_utf8_lossy(&body);
            assert!(
                page.contains("H26") && page.contains(id.to_str().unwrap()),
                "{page}"
            );
        }
    }
}
