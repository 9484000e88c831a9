//! The TLS client side of `syslog+tls://`, `https://` and `otlp+https://` drains: the
//! drain's `ca` file, or the system's roots.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::SendError;

/// Connects TLS over `tcp` to `host`, offering `alpn`.
pub(crate) async fn connect(
    tcp: TcpStream,
    host: &str,
    ca: Option<&[u8]>,
    alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| SendError::Tls(format!("ca: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| SendError::Tls(format!("ca: {e}")))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| SendError::Tls(format!("server name {host:?}: {e}")))?;
    Ok(TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await?)
}
