//! TLS session resumption through the real router on a loopback socket: a client gets a
//! ticket on its first connection and resumes with it on the next (TLS 1.3 and 1.2), and
//! a policy reload that swaps the certificate keeps serving: new clients see the new
//! certificate, a client holding a ticket from before still resumes.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use crate::harness::*;
use rustls::HandshakeKind;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `api.test`: (DER, cert PEM, key PEM).
fn cert() -> (CertificateDer<'static>, Vec<u8>, Vec<u8>) {
    let leaf = spaced_testkit::pki::self_signed(&["api.test"]);
    (leaf.cert_der.into(), leaf.cert_pem, leaf.key_pem)
}

/// A client trusting `trusted`, with rustls's default in-memory ticket store (so one
/// config is one client that remembers its sessions).
fn client(
    trusted: &[&CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add((*c).clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One HTTPS request on a new connection; returns how the handshake went and the
/// certificate the client holds for the session. Reading the answer also reads the
/// tickets the server sent after its handshake.
async fn request(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> (HandshakeKind, CertificateDer<'static>) {
    let tcp = within("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let name = ServerName::try_from("api.test").unwrap();
    let mut tls = within(
        "handshake",
        TlsConnector::from(Arc::clone(config)).connect(name, tcp),
    )
    .await
    .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    // The answer is complete before the close; how the close arrives does not matter.
    let _ = within("answer", tls.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let conn = tls.get_ref().1;
    let kind = conn.handshake_kind().unwrap();
    let served = conn.peer_certificates().unwrap()[0].clone().into_owned();
    (kind, served)
}

fn toml(b: SocketAddr, cert: &str, key: &str) -> String {
    space(
        "tls_listen = [\"127.0.0.1:0\"]",
        &(app("api", &["api.test"], &[b])
            + &format!("\n[[tls]]\ncert = \"{cert}\"\nkey = \"{key}\"\n")),
    )
}

#[tokio::test]
async fn tickets_resume_tls13_and_tls12_and_survive_a_certificate_reload() {
    let b = Backend::start("b").await;
    let (der1, crt1, key1) = cert();
    let (der2, crt2, key2) = cert();
    let files = [
        ("one.crt", crt1),
        ("one.key", key1),
        ("two.crt", crt2),
        ("two.key", key2),
    ];
    let r = Router::start_with(policy_with_files(
        &toml(b.addr, "one.crt", "one.key"),
        &files,
    ))
    .await;
    let addr = r.handle.tls_listen[0];
    let both = [&der1, &der2];

    // TLS 1.3: full, then resumed with the ticket from the first connection.
    let c13 = client(&both, &[&rustls::version::TLS13]);
    assert_eq!(
        request(addr, &c13).await,
        (HandshakeKind::Full, der1.clone())
    );
    assert_eq!(
        request(addr, &c13).await,
        (HandshakeKind::Resumed, der1.clone())
    );
    // TLS 1.2 resumes by ticket too (RFC 5077).
    let c12 = client(&both, &[&rustls::version::TLS12]);
    assert_eq!(request(addr, &c12).await.0, HandshakeKind::Full);
    assert_eq!(request(addr, &c12).await.0, HandshakeKind::Resumed);

    // A reload swaps the certificate: a new client gets the new one in a full handshake…
    r.store.apply(
        policy_with_files(&toml(b.addr, "two.crt", "two.key"), &files),
        "v2".into(),
    );
    let fresh = client(&both, &[&rustls::version::TLS13]);
    assert_eq!(
        request(addr, &fresh).await,
        (HandshakeKind::Full, der2.clone())
    );
    assert_eq!(request(addr, &fresh).await, (HandshakeKind::Resumed, der2));
    // …and a client holding a ticket from before the reload still resumes: the ticket key
    // belongs to the listener, not to the policy (the crate README, "TLS").
    assert_eq!(request(addr, &c13).await.0, HandshakeKind::Resumed);
    // A client that only trusts the old certificate, without a ticket, is refused by its
    // own verification, so the swap is real.
    let old_only = client(&[&der1], &[&rustls::version::TLS13]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("api.test").unwrap();
    assert!(
        within("handshake", TlsConnector::from(old_only).connect(name, tcp))
            .await
            .is_err()
    );
}
