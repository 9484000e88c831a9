//! Throwaway certificates (rcgen): a CA with leaves signed by it, or one self-signed leaf.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: Vec<u8>,
    /// Its private key, DER (PKCS#8).
    pub key_der: Vec<u8>,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
}

/// A self-signed certificate for `sans` (DNS names or IP addresses).
///
/// # Panics
/// When rcgen cannot generate a key or a certificate (it can always, for these inputs).
pub fn self_signed(sans: &[&str]) -> Leaf {
    let key = generate();
    let cert = params(sans, false)
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("self-signed certificate: {e}"));
    Leaf {
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
        key_der: key.serialize_der(),
        cert_der: cert.der().to_vec(),
    }
}

/// A throwaway CA; [`Pki::leaf`] signs certificates with it.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh CA with a key of its own.
    ///
    /// # Panics
    /// When rcgen cannot generate it.
    pub fn new() -> Self {
        let ca = CertifiedIssuer::self_signed(params(&[], true), generate())
            .unwrap_or_else(|e| panic!("CA certificate: {e}"));
        Self { ca }
    }

    /// A leaf for `sans`, signed by this CA.
    ///
    /// # Panics
    /// When rcgen cannot generate it.
    pub fn leaf(&self, sans: &[&str]) -> Leaf {
        let key = generate();
        let cert = params(sans, false)
            .signed_by(&key, &self.ca)
            .unwrap_or_else(|e| panic!("leaf certificate: {e}"));
        Leaf {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
            key_der: key.serialize_der(),
            cert_der: cert.der().to_vec(),
        }
    }

    /// The CA's certificate, DER (for a client's root store).
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca.der().to_vec()
    }

    /// The CA's certificate, PEM (for a CA file).
    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca.pem().into_bytes()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

fn generate() -> KeyPair {
    KeyPair::generate().unwrap_or_else(|e| panic!("key pair: {e}"))
}

fn params(sans: &[&str], ca: bool) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut p = CertificateParams::new(sans).unwrap_or_else(|e| panic!("SANs: {e}"));
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}
