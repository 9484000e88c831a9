//! Certificates and keys for `[[tls]]`: read, parsed, matched, and the server names taken
//! from the leaf certificate's SANs (what SNI selection keys on).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::error::ErrorKind;

type Reader<'a> = &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>;

/// Which `[[tls]]` value an error belongs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Culprit {
    Cert,
    Key,
}

/// Loads a chain and key, checks that they belong together, and returns the leaf's DNS
/// names (lowercase, `*.x` kept, duplicates removed, in certificate order).
pub(crate) fn load(
    read: Reader<'_>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<String>, Arc<CertifiedKey>), (Culprit, ErrorKind)> {
    let cert_err = |reason: String| {
        (
            Culprit::Cert,
            ErrorKind::Tls {
                what: "certificate",
                path: cert_path.display().to_string(),
                reason,
            },
        )
    };
    let key_err = |reason: String| {
        (
            Culprit::Key,
            ErrorKind::Tls {
                what: "key",
                path: key_path.display().to_string(),
                reason,
            },
        )
    };
    let cert_pem = read(cert_path).map_err(|e| cert_err(format!("cannot read: {e}")))?;
    let key_pem = read(key_path).map_err(|e| key_err(format!("cannot read: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain ({e})")))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err("no certificate in the file".into()));
    };
    let names = san_names(leaf).map_err(cert_err)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_err(format!("not a PEM private key ({e})")))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| key_err(format!("unsupported key ({e})")))?;
    let certified = CertifiedKey::new(chain, signing);
    // A mismatched pair would load fine and fail every handshake; catch it at load time.
    certified.keys_match().map_err(|_| {
        key_err(format!(
            "does not match the certificate {:?}",
            cert_path.display().to_string()
        ))
    })?;
    Ok((names, Arc::new(certified)))
}

/// The leaf's SAN DNS names. A certificate with none (IP SANs only) is still fine as the
/// default certificate, so that is not an error.
fn san_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("not a usable X.509 certificate ({e})"))?;
    let mut names: Vec<String> = Vec::new();
    for name in cert.valid_dns_names() {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}
