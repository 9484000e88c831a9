//! `[[tls]]` entries: SAN DNS names extracted (lowercase, wildcards kept, IP SANs left
//! out), chain order kept, paths resolved against the config's directory.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use spaced_config::{Source, parse};

fn cert(sans: &[&str]) -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("rcgen makes a certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn load(files: HashMap<PathBuf, String>, text: &str) -> spaced_config::Policy {
    let read = move |p: &Path| -> io::Result<Vec<u8>> {
        files
            .get(p)
            .map(|s| s.clone().into_bytes())
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    };
    let source = Source {
        name: "t.toml",
        dir: Path::new("/etc/spaced"),
        read: &read,
    };
    match parse(text.as_bytes(), &source) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn san_names_are_lowercase_with_wildcards_and_without_ips() {
    let (c1, k1) = cert(&[
        "API.Example.com",
        "*.Apps.Example.com",
        "10.0.0.1",
        "api.example.com",
    ]);
    let (c2, k2) = cert(&["127.0.0.1"]);
    let files = HashMap::from([
        (PathBuf::from("/etc/spaced/a.crt"), c1),
        (PathBuf::from("/etc/spaced/a.key"), k1),
        (PathBuf::from("/etc/spaced/certs/b.crt"), c2),
        (PathBuf::from("/etc/spaced/certs/b.key"), k2),
    ]);
    let p = load(
        files,
        "[space]\nname = \"s\"\n[router]\ntls_listen = [\"127.0.0.1:0\"]\n\
         [[tls]]\ncert = \"a.crt\"\nkey = \"a.key\"\n\
         [[tls]]\ncert = \"certs/b.crt\"\nkey = \"certs/b.key\"\n",
    );
    assert_eq!(p.tls.len(), 2);
    assert_eq!(p.tls[0].names, ["api.example.com", "*.apps.example.com"]);
    // IP SANs only: no server name, still usable as a default certificate.
    assert!(p.tls[1].names.is_empty());
    assert_eq!(p.tls[1].key_path, Path::new("/etc/spaced/certs/b.key"));
    assert_eq!(p.tls[0].key.cert.len(), 1);
    assert!(p.files.contains(&PathBuf::from("/etc/spaced/certs/b.crt")));
}

#[test]
fn absolute_paths_are_kept() {
    let (c, k) = cert(&["x.test"]);
    let files = HashMap::from([
        (PathBuf::from("/abs/x.crt"), c),
        (PathBuf::from("/abs/x.key"), k),
    ]);
    let p = load(
        files,
        "[space]\nname = \"s\"\n[[tls]]\ncert = \"/abs/x.crt\"\nkey = \"/abs/x.key\"\n",
    );
    assert_eq!(p.tls[0].names, ["x.test"]);
}
