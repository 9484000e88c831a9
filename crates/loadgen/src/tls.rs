//! The one `ClientConfig` every connection shares: TLS 1.3 only, the bench's CA as the
//! only root, the key-exchange groups asked for, and resumption on or off.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs::{self, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::pin::Pinned;
use crate::tickets::TicketStore;

/// A key-exchange group the client offers (and sends a key share for, the first one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// X25519: what `openssl s_time` (OpenSSL 3.0) and the peers pick first.
    X25519,
    /// NIST P-256.
    Secp256r1,
    /// X25519 + ML-KEM-768 (post-quantum hybrid; rustls's own default first choice, which
    /// OpenSSL 3.0 servers do not know).
    X25519mlkem768,
}

/// Why the client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file is not PEM or holds a certificate that cannot be a root.
    #[error("certificate {index} is not PEM")]
    Pem {
        /// Which certificate in the file (0-based).
        index: usize,
        /// The parser's reason.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate parsed as PEM but not as a trust anchor.
    #[error("certificate {index} is not a usable root")]
    Root {
        /// Which certificate in the file (0-based).
        index: usize,
        /// webpki's reason.
        #[source]
        source: rustls::Error,
    },
    /// The file holds no certificate at all: every handshake would fail.
    #[error("no certificate in the file")]
    Empty,
    /// No key-exchange group to offer.
    #[error("no key-exchange group given")]
    NoGroup,
    /// rustls refused the provider or the versions.
    #[error("client configuration")]
    Config(#[source] rustls::Error),
}

/// How the client decides the server's certificate is the right one.
#[derive(Clone, Debug)]
pub enum Trust {
    /// webpki: a chain to one of these roots, valid for the SNI name (the default).
    Roots(RootCertStore),
    /// Exactly one of these certificates, byte for byte (`--pin`, see `pin.rs`).
    Pinned(Vec<CertificateDer<'static>>),
}

/// Every `CERTIFICATE` block in a PEM file's text (at least one).
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(index, cert)| cert.map_err(|source| TlsError::Pem { index, source }))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::Empty);
    }
    Ok(certs)
}

/// The roots in a PEM file's text (every `CERTIFICATE` block).
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in certs_from_pem(pem)?.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|source| TlsError::Root { index, source })?;
    }
    Ok(roots)
}

/// The shared client configuration. With `resume`, a ticket store (`tickets.rs`) keeps
/// every TLS 1.3 ticket the server sends and each new connection offers one (once) as a
/// PSK; without it, every handshake is full.
pub fn client_config(
    trust: Trust,
    groups: &[Group],
    resume: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    if groups.is_empty() {
        return Err(TlsError::NoGroup);
    }
    let kx_groups: Vec<&'static dyn SupportedKxGroup> = groups
        .iter()
        .map(|g| match g {
            Group::X25519 => kx_group::X25519,
            Group::Secp256r1 => kx_group::SECP256R1,
            Group::X25519mlkem768 => kx_group::X25519MLKEM768,
        })
        .collect();
    let provider = CryptoProvider {
        kx_groups,
        ..aws_lc_rs::default_provider()
    };
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?;
    let mut config = match trust {
        Trust::Roots(roots) => builder.with_root_certificates(roots),
        Trust::Pinned(certs) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(certs, algorithms))),
    }
    .with_no_client_auth();
    config.resumption = if resume {
        Resumption::store(Arc::new(TicketStore::default()))
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}
