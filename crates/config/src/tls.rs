//! Certificates and keys for `[[tls]]`: read, parsed, matched.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::ErrorKind;

type Reader<'a> = &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>;

/// Loads a chain and key. On error, says whether the key (true) or the certificate is at fault.
pub(crate) fn load(
    read: Reader<'_>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<String>, Arc<CertifiedKey>), (bool, ErrorKind)> {
    let cert_err = |reason: String| {
        (
            false,
            ErrorKind::Tls {
                what: "certificate",
                path: cert_path.display().to_string(),
                reason,
            },
        )
    };
    let key_err = |reason: String| {
        (
            true,
            ErrorKind::Tls {
                what: "key",
                path: key_path.display().to_string(),
                reason,
            },
        )
    };
    let cert_pem = read(cert_path).map_err(|e| cert_err(e.to_string()))?;
    let key_pem = read(key_path).map_err(|e| key_err(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(cert_err("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_err(format!("not a PEM private key ({e})")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| key_err(format!("unsupported key ({e})")))?;
    let names = Vec::new();
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| key_err(format!("does not match the certificate ({e})")))?;
    Ok((names, Arc::new(certified)))
}
