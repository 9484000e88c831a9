//! Router security on real sockets: L4 admission (trusted, blocked, internal, reloads,
//! dual-stack folding), per-app trust through X-Forwarded-For and PROXY headers, TLS
//! (SNI, HTTP/2), slow clients and the connection cap. Clients play different networks by
//! binding 127.0.0.2, 127.0.0.3, … before connecting.

// Test helpers outside `#[test]` fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub(crate) mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use harness::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use spaced_net::proxy_protocol::{Command, encode_v1, encode_v2};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

/// A policy: external and internal listeners on port 0, one external app `web`
/// (`web.test`), one external app `api` (`api.test`) trusting only 192.0.2.0/24, one
/// internal app `secret` (`secret.test`); `space` and `router` lines spliced in.
fn toml(dyno: SocketAddr, space: &str, router: &str) -> String {
    format!(
        r#"
[space]
name = "t"
internal = ["127.0.0.0/8"]
{space}

[router]
listen = ["127.0.0.1:0"]
internal_listen = ["127.0.0.1:0"]
{router}

[[app]]
name = "web"
hosts = ["web.test"]
[[app.dyno]]
process = "web"
addr = "{dyno}"

[[app]]
name = "api"
hosts = ["api.test"]
trusted = ["192.0.2.0/24"]
[[app.dyno]]
process = "web"
addr = "{dyno}"

[[app]]
name = "secret"
hosts = ["secret.test"]
routing = "internal"
[[app.dyno]]
process = "web"
addr = "{dyno}"
"#
    )
}

async fn router(space: &str, router: &str) -> Router {
    let dyno = backend().await;
    Router::start_with(policy(&toml(dyno, space, router))).await
}

#[tokio::test]
async fn l4_deny_closes_with_zero_bytes() {
    let r = router(r#"trusted = ["127.0.0.2"]"#, "").await;
    let ok = get("127.0.0.2", r.external(), "web.test", "").await;
    assert_eq!(status(&ok), Some(200), "{}", String::from_utf8_lossy(&ok));
    let denied = get("127.0.0.3", r.external(), "web.test", "").await;
    assert!(denied.is_empty(), "wrote {denied:?}");
}

#[tokio::test]
async fn blocked_wins_over_trusted() {
    let r = router(
        r#"trusted = ["127.0.0.0/8"]
blocked = ["127.0.0.3"]"#,
        "",
    )
    .await;
    assert_eq!(
        status(&get("127.0.0.2", r.external(), "web.test", "").await),
        Some(200)
    );
    assert!(
        get("127.0.0.3", r.external(), "web.test", "")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn reload_removing_a_range_stops_the_next_connection() {
    let dyno = backend().await;
    let before = toml(dyno, r#"trusted = ["127.0.0.2", "127.0.0.3"]"#, "");
    let r = Router::start_with(policy(&before)).await;
    // A keep-alive connection opened before the reload.
    let mut kept = connect_from("127.0.0.3", r.external()).await;
    assert_eq!(get_keepalive(&mut kept, "web.test").await, 200);

    let after = toml(dyno, r#"trusted = ["127.0.0.2"]"#, "");
    r.reload_with(policy(&after), "v2");
    assert!(
        get("127.0.0.3", r.external(), "web.test", "")
            .await
            .is_empty()
    );
    assert_eq!(
        status(&get("127.0.0.2", r.external(), "web.test", "").await),
        Some(200)
    );
    // Reloads never close client connections (BEHAVIOR.md): the old one still works.
    assert_eq!(get_keepalive(&mut kept, "web.test").await, 200);
}

#[tokio::test]
async fn internal_app_is_s11_externally_and_reachable_internally() {
    let r = router(r#"trusted = ["127.0.0.0/8"]"#, "").await;
    let hidden = get("127.0.0.2", r.external(), "secret.test", "").await;
    let unknown = get("127.0.0.2", r.external(), "nothere.test", "").await;
    assert_eq!(status(&hidden), Some(404));
    assert_eq!(status(&unknown), Some(404));
    let inside = get("127.0.0.2", r.internal(), "secret.test", "").await;
    assert_eq!(status(&inside), Some(200));
    // The internal listener serves external apps too.
    assert_eq!(
        status(&get("127.0.0.2", r.internal(), "web.test", "").await),
        Some(200)
    );
}

#[tokio::test]
async fn internal_listener_admits_only_the_space() {
    let r = router(r#"trusted = ["127.0.0.0/8"]"#, "").await;
    let p = toml(backend().await, r#"trusted = ["127.0.0.0/8"]"#, "").replace(
        r#"internal = ["127.0.0.0/8"]"#,
        r#"internal = ["127.0.0.2"]"#,
    );
    r.reload_with(policy(&p), "v2");
    assert_eq!(
        status(&get("127.0.0.2", r.internal(), "secret.test", "").await),
        Some(200)
    );
    assert!(
        get("127.0.0.3", r.internal(), "secret.test", "")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn xff_from_an_untrusted_peer_does_not_pass_the_app_check() {
    let r = router(
        r#"trusted = ["127.0.0.0/8"]"#,
        r#"trusted_proxies = ["127.0.0.4"]"#,
    )
    .await;
    let spoofed = get(
        "127.0.0.2",
        r.external(),
        "api.test",
        "X-Forwarded-For: 192.0.2.9\r\n",
    )
    .await;
    assert_eq!(
        status(&spoofed),
        Some(403),
        "{}",
        String::from_utf8_lossy(&spoofed)
    );
}

#[tokio::test]
async fn a_trusted_proxy_xff_passes_the_app_check() {
    let r = router(
        r#"trusted = ["127.0.0.0/8"]"#,
        r#"trusted_proxies = ["127.0.0.4"]"#,
    )
    .await;
    let resp = get(
        "127.0.0.4",
        r.external(),
        "api.test",
        "X-Forwarded-For: 6.6.6.6, 192.0.2.9\r\n",
    )
    .await;
    assert_eq!(
        status(&resp),
        Some(200),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    // The peer is appended, never replacing what came before.
    assert_eq!(
        header(&resp, "x-seen-xff").as_deref(),
        Some("6.6.6.6, 192.0.2.9, 127.0.0.4")
    );
    // Without the header, the proxy itself is the client: not in api's range.
    let resp = get("127.0.0.4", r.external(), "api.test", "").await;
    assert_eq!(status(&resp), Some(403));
}

const PROXY_SPACE: &str = r#"trusted = ["127.0.0.0/8", "192.0.2.0/24"]"#;
const PROXY_ROUTER: &str = "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.4\"]";

#[tokio::test]
async fn proxy_v1_and_v2_from_a_trusted_proxy_pass() {
    let r = router(PROXY_SPACE, PROXY_ROUTER).await;
    let to = r.external();
    let client: SocketAddr = "192.0.2.9:40000".parse().unwrap();
    for prefix in [encode_v1(client, to), encode_v2(Command::Proxy, client, to)] {
        let s = connect_from("127.0.0.4", to).await;
        let resp = exchange(s, &prefix, "api.test", "").await;
        assert_eq!(
            status(&resp),
            Some(200),
            "{}",
            String::from_utf8_lossy(&resp)
        );
    }
    // v2 LOCAL: the proxy itself is the client (trusted at L4, not in api's range).
    let s = connect_from("127.0.0.4", to).await;
    let local = encode_v2(Command::Local, client, to);
    assert_eq!(
        status(&exchange(s, &local, "web.test", "").await),
        Some(200)
    );
    let s = connect_from("127.0.0.4", to).await;
    assert_eq!(
        status(&exchange(s, &local, "api.test", "").await),
        Some(403)
    );
}

#[tokio::test]
async fn proxy_source_is_checked_at_l4() {
    let r = router(PROXY_SPACE, PROXY_ROUTER).await;
    let to = r.external();
    let outsider: SocketAddr = "198.51.100.1:40000".parse().unwrap();
    let s = connect_from("127.0.0.4", to).await;
    assert!(
        exchange(s, &encode_v1(outsider, to), "web.test", "")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn proxy_header_from_an_untrusted_peer_or_malformed_closes() {
    let r = router(PROXY_SPACE, PROXY_ROUTER).await;
    let to = r.external();
    let client: SocketAddr = "192.0.2.9:40000".parse().unwrap();
    let s = connect_from("127.0.0.2", to).await;
    assert!(
        exchange(s, &encode_v1(client, to), "web.test", "")
            .await
            .is_empty()
    );
    let s = connect_from("127.0.0.2", to).await;
    assert!(exchange(s, b"", "web.test", "").await.is_empty());
    for bad in [
        &b"PROXY BOGUS 1 2 3 4\r\n"[..],
        b"PROXY TCP4 192.0.2.9 127.0.0.1 99999 80\r\n",
        b"GET / HTTP/1.1\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
    ] {
        let s = connect_from("127.0.0.4", to).await;
        let resp = exchange(s, bad, "web.test", "").await;
        assert!(resp.is_empty(), "{bad:?} got {resp:?}");
    }
}

#[tokio::test]
async fn mapped_ipv4_on_a_dual_stack_listener_is_folded() {
    let dyno = backend().await;
    // `::/0` is all of IPv6, not the IPv4 clients a dual-stack socket reports as mapped.
    let text = toml(dyno, r#"trusted = ["127.0.0.2", "::/0"]"#, "")
        .replace(r#"listen = ["127.0.0.1:0"]"#, r#"listen = ["[::]:0"]"#);
    let r = match Router::try_start_with(policy(&text)).await {
        Ok(r) => r,
        Err(e) => {
            spaced_testkit::skip(&format!("no dual-stack listener on this machine ({e})"));
            return;
        }
    };
    let to = SocketAddr::from(([127, 0, 0, 1], r.handle.listen[0].port()));
    assert_eq!(
        status(&get("127.0.0.2", to, "web.test", "").await),
        Some(200)
    );
    assert!(get("127.0.0.3", to, "web.test", "").await.is_empty());
}

/// Two certificates (`a.test`, `b.test` + `*.b.test`) from one CA, on a TLS listener.
async fn tls_router(pki: &Pki) -> (Router, Vec<u8>, Vec<u8>) {
    let dyno = backend().await;
    let Leaf {
        cert_pem: a_pem,
        key_pem: a_key,
        cert_der: a_der,
        ..
    } = pki.leaf(&["a.test"]);
    let Leaf {
        cert_pem: b_pem,
        key_pem: b_key,
        cert_der: b_der,
        ..
    } = pki.leaf(&["b.test", "*.b.test"]);
    let files = vec![
        ("a.crt".to_string(), a_pem),
        ("a.key".to_string(), a_key),
        ("b.crt".to_string(), b_pem),
        ("b.key".to_string(), b_key),
    ];
    let text = toml(
        dyno,
        r#"trusted = ["127.0.0.0/8"]"#,
        r#"tls_listen = ["127.0.0.1:0"]"#,
    )
    .replace(
        r#"hosts = ["web.test"]"#,
        r#"hosts = ["web.test", "a.test", "x.b.test"]"#,
    ) + "\n[[tls]]\ncert = \"a.crt\"\nkey = \"a.key\"\n[[tls]]\ncert = \"b.crt\"\nkey = \"b.key\"\n";
    (
        Router::start_with(policy_with_files(&text, &files)).await,
        a_der,
        b_der,
    )
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let pki = Pki::new();
    let (r, a_der, b_der) = tls_router(&pki).await;
    let connector = TlsConnector::from(client(&pki, &[b"http/1.1"]));
    for (sni, want) in [("a.test", &a_der), ("b.test", &b_der), ("x.b.test", &b_der)] {
        let tcp = connect_from("127.0.0.2", r.tls()).await;
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let tls = within("TLS handshake", connector.connect(name, tcp))
            .await
            .unwrap_or_else(|e| panic!("handshake for {sni}: {e}"));
        let served = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        assert_eq!(&served, want, "certificate for {sni}");
        if sni != "b.test" {
            let resp = exchange(tls, b"", sni, "").await;
            assert_eq!(
                status(&resp),
                Some(200),
                "{}",
                String::from_utf8_lossy(&resp)
            );
        }
    }
}

#[tokio::test]
async fn http2_over_tls_end_to_end() {
    let pki = Pki::new();
    let (r, _, _) = tls_router(&pki).await;
    let connector = TlsConnector::from(client(&pki, &[b"h2", b"http/1.1"]));
    let tcp = connect_from("127.0.0.2", r.tls()).await;
    let name = ServerName::try_from("a.test").unwrap();
    let tls = within("TLS handshake", connector.connect(name, tcp))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = within(
        "h2 handshake",
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for host in ["a.test", "web.test"] {
        let req = http::Request::get(format!("https://{host}/"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = within("h2 request", sender.send_request(req))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = within("h2 body", resp.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"ok");
    }
    let req = http::Request::get("https://secret.test/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = within("h2 request", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_after_client_header() {
    let r = router(
        r#"trusted = ["127.0.0.0/8"]"#,
        "[router.timeouts]\nclient_header = \"300ms\"",
    )
    .await;
    let mut s = connect_from("127.0.0.2", r.external()).await;
    within(
        "write",
        s.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nX-Slow: "),
    )
    .await
    .unwrap();
    // Trickle a byte now and then, never finishing the head; the router must close (a 408
    // may come first). `read_to_close` fails the test if it takes longer than LIMIT.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    within("trickle", trickle).await;
    let rest = read_to_close(&mut s).await;
    assert!(
        rest.is_empty() || status(&rest) == Some(408),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

/// An HTTP/2 client that goes quiet is closed at `keepalive` like any other, even when it
/// never answers the PING of the router's GOAWAY: its socket and `max_connections` slot
/// are not held for ever.
#[tokio::test]
async fn a_silent_http2_client_is_cut_off() {
    let r = router(
        r#"trusted = ["127.0.0.0/8"]"#,
        "[router.timeouts]\nclient_header = \"300ms\"\nkeepalive = \"300ms\"",
    )
    .await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = b"\0\0\0\x04\0\0\0\0\0";
    // A HEADERS frame on stream 1 without END_HEADERS: a head never finished.
    let open_headers = b"\0\0\x01\x01\0\0\0\0\x01\x82";
    for opening in [
        preface.to_vec(),
        [&preface[..], settings].concat(),
        [&preface[..], settings, open_headers].concat(),
    ] {
        let mut s = connect_from("127.0.0.2", r.external()).await;
        within("write", s.write_all(&opening)).await.unwrap();
        // The router's GOAWAY and PING may come first; the close must follow.
        let _ = read_to_close(&mut s).await;
    }
}

#[tokio::test]
async fn max_connections_is_enforced() {
    let r = router(r#"trusted = ["127.0.0.0/8"]"#, "max_connections = 2").await;
    let mut one = connect_from("127.0.0.2", r.external()).await;
    let mut two = connect_from("127.0.0.3", r.external()).await;
    assert_eq!(get_keepalive(&mut one, "web.test").await, 200);
    assert_eq!(get_keepalive(&mut two, "web.test").await, 200);
    let third = get("127.0.0.5", r.external(), "web.test", "").await;
    assert!(third.is_empty(), "beyond the cap: {third:?}");
    // A slot frees when a connection ends; the next one is served (the router notices the
    // close asynchronously, so try a few times).
    drop(one);
    let served = async {
        loop {
            if status(&get("127.0.0.5", r.external(), "web.test", "").await) == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    within("a freed slot", served).await;
    assert_eq!(get_keepalive(&mut two, "web.test").await, 200);
}
