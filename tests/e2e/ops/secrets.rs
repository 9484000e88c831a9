//! `[app] egress_token_file`: a token rotated the way Kubernetes updates a Secret volume.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{T, start, status};
use crate::harness::ConfigDir;
use spaced_testkit::dyno::Backend;

/// `user:password` as HTTP Basic credentials.
pub(super) fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// GET through the egress forward proxy as app `api` with `token`: the status.
fn via_egress(egress: SocketAddr, backend: SocketAddr, token: &str) -> u16 {
    let mut s = TcpStream::connect(egress).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET http://{backend}/via-egress HTTP/1.1\r\nHost: {backend}\r\nProxy-Authorization: Basic {}\r\nConnection: close\r\n\r\n",
        basic("api", token)
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    status(&String::from_utf8_lossy(&buf))
}

/// Kubernetes' Secret volume update: the data goes to a new timestamped directory, a
/// `..data_tmp` symlink to it is renamed over `..data`, the old directory is removed.
fn kubernetes_swap(secrets: &std::path::Path, generation: u32, token: &str) {
    let data = secrets.join(format!("..2026_12_07_{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("api.token"), format!("{token}\n")).unwrap();
    let tmp = secrets.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    let old = std::fs::read_link(secrets.join("..data")).ok();
    std::fs::rename(&tmp, secrets.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(secrets.join(old)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_replaces_the_old_token() {
    let backend = Backend::start("dest").await;
    let dir = ConfigDir::new();
    let secrets = dir.path("secrets");
    std::fs::create_dir(&secrets).unwrap();
    kubernetes_swap(&secrets, 1, "old-token");
    std::os::unix::fs::symlink("..data/api.token", secrets.join("api.token")).unwrap();
    let text = r#"
[space]
name = "ops"
internal = ["127.0.0.0/8"]

[egress]
listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.1"]
default_deny = false

[admin]
listen = "127.0.0.1:0"

[[app]]
name = "api"
egress_token_file = "secrets/api.token"
"#;
    let daemon = start(&dir, text, true).await;
    let egress = daemon.addrs().bound.egress[0];
    let to = backend.addr;
    let ask_with = move |token: &'static str| {
        tokio::task::spawn_blocking(move || via_egress(egress, to, token))
    };
    assert_eq!(ask_with("old-token").await.unwrap(), 200);
    assert_eq!(ask_with("new-token").await.unwrap(), 407);

    kubernetes_swap(&secrets, 2, "new-token");
    let waited = Instant::now();
    while ask_with("old-token").await.unwrap() != 407 {
        assert!(
            waited.elapsed() < T,
            "the old token still works after the swap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ask_with("new-token").await.unwrap(), 200);
    assert_eq!(daemon.store().meta().version, 2);

    // An emptied secret is rejected without a word of what it held; the token in force
    // keeps working.
    kubernetes_swap(&secrets, 3, "");
    let waited = Instant::now();
    while daemon.store().meta().last_error.is_none() {
        assert!(
            waited.elapsed() < T,
            "the empty token file was not rejected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = daemon.store().meta().last_error.clone().unwrap();
    assert!(error.contains("the file is empty"), "{error}");
    assert!(
        error.contains(":16:21: "),
        "located at the key's value: {error}"
    );
    assert_eq!(ask_with("new-token").await.unwrap(), 200);
    daemon.stop().await;
}
