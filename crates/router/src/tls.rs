//! TLS for `router.tls_listen`: a rustls acceptor whose certificate is chosen per handshake
//! by SNI from the policy in force, so certificates hot-reload with the policy and a
//! handshake never sees half of two policies.
//!
//! TLS 1.2 and 1.3 only, the aws-lc-rs provider (chosen by instruction counts: an RSA
//! 2048 handshake costs 0.65× ring's, ECDSA P-256 0.93×; the crate README, "TLS"), ALPN
//! `h2` then `http/1.1` (BEHAVIOR.md, "Headers to the dyno": HTTP/2 from clients over TLS).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spaced_config::{Store, TlsCert};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocols offered, in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS acceptor serving the certificates of whatever policy `store` holds at each
/// handshake (see [`select`]). With no `[[tls]]` in the policy, handshakes fail.
pub fn acceptor(store: Arc<Store>) -> TlsAcceptor {
    TlsAcceptor::from(Arc::new(server_config(store)))
}

/// The rustls configuration behind [`acceptor`], for callers that drive rustls directly.
pub fn server_config(store: Arc<Store>) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3 with its default suites")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(PolicyCerts { store }));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // Resumption only saves work; without a ticket key (the RNG failed, when handshakes
    // would fail too) every handshake is a full one.
    if let Err(e) = enable_resumption(&mut config) {
        tracing::warn!(error = %e, "TLS session tickets off: no ticket key");
    }
    config
}

/// Session resumption by stateless tickets (see the crate README, "TLS"): a ticket key
/// that rotates every 6 hours (tickets live 12 hours, so one from the previous key still
/// resumes), no server-side session cache, and no 0-RTT data (replayable).
pub fn enable_resumption(config: &mut ServerConfig) -> Result<(), rustls::Error> {
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    // With tickets, a session cache would only serve TLS 1.2 clients without ticket
    // support, and it is a lock shared by every handshake; keep none.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    // Two tickets, as OpenSSL (so nginx and HAProxy) sends after a full handshake: a
    // client opening two connections at once can resume both.
    config.send_tls13_tickets = 2;
    Ok(())
}

/// Picks the certificate for a client's SNI: an exact name first, then a `*.` wildcard
/// matching exactly one label (as clients verify wildcards, RFC 6125 §6.4.3), else the
/// first `[[tls]]` (also for no SNI). `None` only when there is no certificate at all.
///
/// Names compare case-insensitively, a trailing dot ignored.
pub fn select<'a>(certs: &'a [TlsCert], sni: Option<&str>) -> Option<&'a TlsCert> {
    if let Some(name) = sni.map(|s| s.strip_suffix('.').unwrap_or(s))
        && !name.is_empty()
    {
        let exact = certs.iter().find(|c| {
            c.names
                .iter()
                .any(|n| !n.starts_with("*.") && n.eq_ignore_ascii_case(name))
        });
        if exact.is_some() {
            return exact;
        }
        // `*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`.
        if let Some((label, parent)) = name.split_once('.')
            && !label.is_empty()
            && !label.contains('*')
            && !parent.is_empty()
        {
            let wild = certs.iter().find(|c| {
                c.names.iter().any(|n| {
                    n.strip_prefix("*.")
                        .is_some_and(|suffix| suffix.eq_ignore_ascii_case(parent))
                })
            });
            if wild.is_some() {
                return wild;
            }
        }
    }
    certs.first()
}

/// The negotiated version as the router log line writes it: `tls1.2`, `tls1.3` or
/// `unknown` (before the handshake finished).
pub fn tls_version_label(conn: &rustls::ServerConnection) -> &'static str {
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "tls1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "tls1.2",
        _ => "unknown",
    }
}

/// Whether the client and we agreed on HTTP/2 by ALPN.
pub fn negotiated_h2(conn: &rustls::ServerConnection) -> bool {
    conn.alpn_protocol() == Some(b"h2")
}

/// The certificate resolver: reads the store once per handshake.
#[derive(Debug)]
struct PolicyCerts {
    /// The live policy; a reload swaps it and the next handshake sees the new certificates.
    store: Arc<Store>,
}

impl ResolvesServerCert for PolicyCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let policy = self.store.load();
        select(&policy.tls, hello.server_name()).map(|c| Arc::clone(&c.key))
    }
}

#[cfg(test)]
mod tests;
