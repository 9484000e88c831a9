use std::time::Duration;

use rcgen::{CertificateParams, CertifiedIssuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use spaced_config::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::*;
use crate::access::tests::policy_with;

/// A throwaway CA and leaf certificates signed by it.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { ca }
    }

    /// `(cert PEM, key PEM)` for these SANs.
    fn leaf(&self, sans: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

/// A policy with one `[[tls]]` per SAN list, in order. Names are set from the SANs here
/// too, so these tests do not depend on how the config crate fills them.
fn tls_policy(pki: &Pki, certs: &[&[&str]]) -> Policy {
    let mut toml =
        String::from("[space]\nname = \"t\"\n[router]\ntls_listen = [\"127.0.0.1:0\"]\n");
    let mut files = Vec::new();
    for (i, sans) in certs.iter().enumerate() {
        let (cert, key) = pki.leaf(sans);
        toml.push_str(&format!(
            "[[tls]]\ncert = \"c{i}.pem\"\nkey = \"k{i}.pem\"\n"
        ));
        files.push((format!("c{i}.pem"), cert));
        files.push((format!("k{i}.pem"), key));
    }
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let mut p = policy_with(&toml, &files);
    for (cert, sans) in p.tls.iter_mut().zip(certs) {
        cert.names = sans.iter().map(|s| s.to_ascii_lowercase()).collect();
    }
    p
}

fn names_of(certs: &[TlsCert], sni: Option<&str>) -> Option<String> {
    select(certs, sni).map(|c| c.names.join(","))
}

#[test]
fn select_exact_wildcard_default() {
    let pki = Pki::new();
    let p = tls_policy(
        &pki,
        &[
            &["default.test"],
            &["*.example.com"],
            &["api.example.com", "Other.test"],
        ],
    );
    let certs = &p.tls;
    // Exact wins over a wildcard listed earlier.
    assert_eq!(
        names_of(certs, Some("api.example.com")).unwrap(),
        "api.example.com,other.test"
    );
    assert_eq!(
        names_of(certs, Some("API.EXAMPLE.COM.")).unwrap(),
        "api.example.com,other.test"
    );
    assert_eq!(
        names_of(certs, Some("other.test")).unwrap(),
        "api.example.com,other.test"
    );
    // A wildcard covers one label only.
    assert_eq!(
        names_of(certs, Some("www.example.com")).unwrap(),
        "*.example.com"
    );
    assert_eq!(
        names_of(certs, Some("WWW.Example.com")).unwrap(),
        "*.example.com"
    );
    assert_eq!(
        names_of(certs, Some("a.b.example.com")).unwrap(),
        "default.test"
    );
    assert_eq!(
        names_of(certs, Some("example.com")).unwrap(),
        "default.test"
    );
    assert_eq!(
        names_of(certs, Some(".example.com")).unwrap(),
        "default.test"
    );
    // No SNI, unknown, empty: the first.
    assert_eq!(names_of(certs, None).unwrap(), "default.test");
    assert_eq!(names_of(certs, Some("nope.test")).unwrap(), "default.test");
    assert_eq!(names_of(certs, Some("")).unwrap(), "default.test");
    assert_eq!(names_of(certs, Some(".")).unwrap(), "default.test");
    // A literal "*.example.com" SNI is not an exact match for the wildcard entry.
    assert_eq!(
        names_of(certs, Some("*.example.com")).unwrap(),
        "default.test"
    );
    assert!(select(&[], Some("api.example.com")).is_none());
    assert!(select(&[], None).is_none());
}

#[test]
fn select_without_names_falls_back_to_the_default() {
    let pki = Pki::new();
    let mut p = tls_policy(&pki, &[&["a.test"], &["b.test"]]);
    for c in &mut p.tls {
        c.names.clear();
    }
    assert!(Arc::ptr_eq(
        &select(&p.tls, Some("b.test")).unwrap().key,
        &p.tls[0].key
    ));
}

#[test]
fn config_offers_h2_then_http1_and_tls12_13() {
    let store = Arc::new(Store::new(
        policy_with("[space]\nname = \"t\"\n", &[]),
        String::new(),
    ));
    let config = server_config(store);
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    // Resumption by stateless tickets living 12 hours, no server-side cache, no 0-RTT.
    assert!(config.ticketer.enabled());
    assert_eq!(config.ticketer.lifetime(), 12 * 60 * 60);
    assert!(!config.session_storage.can_cache());
    assert_eq!(config.send_tls13_tickets, 2);
    assert_eq!(config.max_early_data_size, 0);
}

struct Handshake {
    served: CertificateDer<'static>,
    version: &'static str,
    h2: bool,
}

/// One handshake over an in-memory pipe; echoes a byte to prove the channel works.
async fn handshake(
    acceptor: &TlsAcceptor,
    pki: &Pki,
    sni: &str,
    alpn: &[&[u8]],
    tls12_only: bool,
) -> Result<Handshake, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(client));
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut tls = acceptor.accept(b).await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            tls.write_all(&byte).await?;
            tls.flush().await?;
            let conn = tls.get_ref().1;
            Ok::<_, std::io::Error>((tls_version_label(conn), negotiated_h2(conn)))
        })
    };
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, a).await?;
    tls.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await?;
    let served = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (version, h2) = server.await.unwrap()?;
    Ok(Handshake {
        served,
        version,
        h2,
    })
}

fn leaf_der(p: &Policy, i: usize) -> CertificateDer<'static> {
    p.tls[i].key.cert[0].clone()
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn handshakes_pick_by_sni_and_hot_reload() {
    let pki = Pki::new();
    let p = tls_policy(&pki, &[&["a.test"], &["b.test", "*.b.test"]]);
    let (a_der, b_der) = (leaf_der(&p, 0), leaf_der(&p, 1));
    let store = Arc::new(Store::new(p, "one".into()));
    let acceptor = acceptor(Arc::clone(&store));

    let hs = within(handshake(&acceptor, &pki, "b.test", &ALPN, false))
        .await
        .unwrap();
    assert_eq!(hs.served, b_der);
    assert_eq!(hs.version, "tls1.3");
    assert!(hs.h2);
    let hs = within(handshake(&acceptor, &pki, "x.b.test", &[b"http/1.1"], true))
        .await
        .unwrap();
    assert_eq!(hs.served, b_der);
    assert_eq!(hs.version, "tls1.2");
    assert!(!hs.h2);
    let hs = within(handshake(&acceptor, &pki, "a.test", &[], false))
        .await
        .unwrap();
    assert_eq!(hs.served, a_der);
    // An unknown name gets the default, which the client rightly rejects.
    assert!(
        within(handshake(&acceptor, &pki, "c.test", &[], false))
            .await
            .is_err()
    );

    // A reload swaps the certificates for the next handshake.
    let p2 = tls_policy(&pki, &[&["c.test"]]);
    let c_der = leaf_der(&p2, 0);
    store.apply(p2, "two".into());
    let hs = within(handshake(&acceptor, &pki, "c.test", &[], false))
        .await
        .unwrap();
    assert_eq!(hs.served, c_der);
}

#[tokio::test]
async fn no_certificate_fails_the_handshake() {
    let pki = Pki::new();
    let store = Arc::new(Store::new(
        policy_with("[space]\nname = \"t\"\n", &[]),
        String::new(),
    ));
    let acceptor = acceptor(store);
    assert!(
        within(handshake(&acceptor, &pki, "a.test", &[], false))
            .await
            .is_err()
    );
}
