//! Which private keys `[[tls]]` takes with the aws-lc-rs provider: RSA 2048 (and the
//! ECDSA keys of `tests/tls.rs`), not RSA 1024 — the same bounds ring had, checked so that
//! changing providers cannot quietly accept a weak key. The fixtures were made with
//! `openssl req -x509 -newkey rsa:BITS -nodes -days 36500 -subj /CN=rsa.test
//! -addext subjectAltName=DNS:rsa.test`.

use std::io;
use std::path::Path;

use spaced_config::{Source, parse};

const TOML: &str = "[space]\nname = \"s\"\n[router]\ntls_listen = [\"127.0.0.1:0\"]\n\
                    [[tls]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

fn parse_with(cert: &'static str, key: &'static str) -> Result<spaced_config::Policy, String> {
    let read = move |p: &Path| -> io::Result<Vec<u8>> {
        match p.file_name().and_then(|n| n.to_str()) {
            Some("c.pem") => Ok(cert.as_bytes().to_vec()),
            Some("k.pem") => Ok(key.as_bytes().to_vec()),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    };
    let source = Source {
        name: "t.toml",
        dir: Path::new("/etc/spaced"),
        read: &read,
    };
    parse(TOML.as_bytes(), &source).map_err(|e| e.to_string())
}

#[test]
fn rsa_2048_loads() {
    let p = parse_with(
        include_str!("fixtures/rsa2048.crt"),
        include_str!("fixtures/rsa2048.key"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.tls[0].names, ["rsa.test"]);
}

#[test]
fn rsa_1024_is_refused_at_the_key() {
    let e = parse_with(
        include_str!("fixtures/rsa1024.crt"),
        include_str!("fixtures/rsa1024.key"),
    )
    .err()
    .unwrap_or_else(|| panic!("a 1024-bit RSA key was accepted"));
    assert!(e.starts_with("t.toml:7:7: "), "{e}");
    assert!(e.contains("unsupported key"), "{e}");
}
