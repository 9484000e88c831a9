//! The generator against a real rustls server on 127.0.0.1:0 (tokio-rustls, an rcgen
//! certificate): full handshakes, resumed ones, and the failures it must count.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use spaced_loadgen::{
    Group, Options, Report, Trust, certs_from_pem, client_config, roots_from_pem, run,
};
use spaced_testkit::pki::{Leaf, self_signed};
use spaced_testkit::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NAME: &str = "storm.test";

/// A TLS 1.3 server answering every connection's request with `status`, then closing
/// (close_notify, FIN). rustls's defaults: a session cache and two tickets per handshake.
async fn server(leaf: &Leaf, status: &'static str) -> SocketAddr {
    server_seeing(leaf, status, Arc::default()).await
}

/// [`server`], recording the address of every client it accepts in `peers`.
async fn server_seeing(
    leaf: &Leaf,
    status: &'static str,
    peers: Arc<Mutex<HashSet<IpAddr>>>,
) -> SocketAddr {
    let key = PrivateKeyDer::try_from(leaf.key_der.clone()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.cert_der.clone().into()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            peers.lock().unwrap().insert(peer.ip());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(head.starts_with(b"GET /x HTTP/1.1\r\nHost: storm.test\r\n"));
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn options(addr: SocketAddr) -> Options {
    Options {
        connect: addr,
        sni: ServerName::try_from(NAME).unwrap(),
        host: NAME.into(),
        path: "/x".into(),
        concurrency: 4,
        // Long enough for a loaded machine to finish some handshakes; the tests check
        // counts, never rates.
        secs: Duration::from_secs(2),
        warmup: Duration::from_millis(200),
        step_timeout: Duration::from_secs(5),
        sources: vec![],
    }
}

async fn storm(addr: SocketAddr, trust: &Leaf, resume: bool) -> Report {
    let roots = roots_from_pem(&trust.cert_pem).unwrap();
    storm_with(addr, Trust::Roots(roots), resume).await
}

async fn storm_with(addr: SocketAddr, trust: Trust, resume: bool) -> Report {
    let config = client_config(trust, &[Group::X25519], resume).unwrap();
    within("the storm", run(&options(addr), config))
        .await
        .unwrap()
}

#[tokio::test]
async fn full_handshakes_complete_and_none_resume() {
    let leaf = self_signed(&[NAME]);
    let addr = server(&leaf, "200 OK").await;
    let r = storm(addr, &leaf, false).await;
    assert!(r.ok > 0, "{r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    assert_eq!(r.resumed, 0, "{r:?}");
    assert!(r.client_cpu_us_per_handshake > 0.0, "{r:?}");
    assert!(r.p99_ms >= r.p50_ms, "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["ok"], r.ok);
    assert!(json["client_cpu_us_per_handshake"].is_number());
}

#[tokio::test]
async fn resumed_handshakes_are_really_resumed() {
    let leaf = self_signed(&[NAME]);
    let addr = server(&leaf, "200 OK").await;
    let r = storm(addr, &leaf, true).await;
    assert_eq!(r.errors, 0, "{r:?}");
    // After the warm-up every connection has a ticket from an earlier one (two per
    // handshake, eight kept): all but a few are resumed.
    assert!(r.resumed > 0 && r.resumed * 10 >= r.ok * 9, "{r:?}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_an_error_not_a_handshake() {
    let leaf = self_signed(&[NAME]);
    let other = self_signed(&[NAME]);
    let addr = server(&leaf, "200 OK").await;
    let r = storm(addr, &other, false).await;
    assert_eq!(r.ok, 0, "{r:?}");
    assert!(r.errors > 0, "{r:?}");
    let first = r.first_error.unwrap();
    assert!(first.starts_with("TLS handshake"), "{first}");
}

#[tokio::test]
async fn a_pinned_certificate_is_trusted_and_no_other() {
    let leaf = self_signed(&[NAME]);
    let addr = server(&leaf, "200 OK").await;
    let pinned = Trust::Pinned(certs_from_pem(&leaf.cert_pem).unwrap());
    let r = storm_with(addr, pinned, true).await;
    assert!(r.ok > 0, "{r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(r.resumed > 0, "{r:?}");

    let other = Trust::Pinned(certs_from_pem(&self_signed(&[NAME]).cert_pem).unwrap());
    let r = storm_with(addr, other, false).await;
    assert_eq!(r.ok, 0, "{r:?}");
    assert!(r.errors > 0, "{r:?}");
    let first = r.first_error.unwrap();
    assert!(first.contains("UnknownIssuer"), "{first}");
}

#[tokio::test]
async fn connections_come_from_the_given_sources() {
    let leaf = self_signed(&[NAME]);
    let peers = Arc::default();
    let addr = server_seeing(&leaf, "200 OK", Arc::clone(&peers)).await;
    let sources: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let opts = Options {
        sources: sources.clone(),
        ..options(addr)
    };
    let roots = Trust::Roots(roots_from_pem(&leaf.cert_pem).unwrap());
    let config = client_config(roots, &[Group::X25519], false).unwrap();
    let r = within("the storm", run(&opts, config)).await.unwrap();
    assert!(r.ok > 0 && r.errors == 0, "{r:?}");
    let seen = peers.lock().unwrap().clone();
    assert_eq!(seen, sources.into_iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn a_status_other_than_200_is_an_error() {
    let leaf = self_signed(&[NAME]);
    let addr = server(&leaf, "503 Service Unavailable").await;
    let r = storm(addr, &leaf, false).await;
    assert_eq!(r.ok, 0, "{r:?}");
    assert!(r.errors > 0, "{r:?}");
    assert!(r.first_error.unwrap().contains("HTTP/1.1 503"));
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    assert!(roots_from_pem(b"not a certificate").is_err());
    let leaf = self_signed(&[NAME]);
    let roots = Trust::Roots(roots_from_pem(&leaf.cert_pem).unwrap());
    assert!(client_config(roots, &[], false).is_err());
    assert!(certs_from_pem(b"").is_err());
}
