//! What a newcomer meets: `--version`, `spaced check` warnings, a missing config file,
//! and the demo tour's egress lines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::secrets::basic;
use super::{start, status};
use crate::harness::{ConfigDir, bin};

#[test]
fn version_names_the_commit() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(
        stdout.trim(),
        format!(
            "spaced {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            env!("SPACED_COMMIT")
        )
    );
    let commit = env!("SPACED_COMMIT");
    assert!(
        commit == "unknown" || commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{commit}"
    );
}

#[test]
fn check_warns_about_an_admin_listener_off_loopback() {
    let dir = ConfigDir::new();
    for (listen, warned) in [
        ("0.0.0.0:9901", true),
        ("10.0.0.2:9901", true),
        ("[::]:9901", true),
        ("127.0.0.1:9901", false),
        ("[::1]:9901", false),
    ] {
        std::fs::write(
            dir.path("a.toml"),
            format!("[space]\nname = \"ops\"\n[admin]\nlisten = \"{listen}\"\n"),
        )
        .unwrap();
        let out = Command::new(bin())
            .arg("check")
            .arg(dir.path("a.toml"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "a warning is not an error: {stdout}{stderr}"
        );
        assert_eq!(
            stdout.lines().count(),
            1,
            "stdout stays the summary: {stdout}"
        );
        assert_eq!(
            stderr.contains("warning: admin.listen") && stderr.contains("not a loopback address"),
            warned,
            "{listen}: {stderr}"
        );
    }
}

#[test]
fn a_missing_config_file_says_so_plainly() {
    let dir = ConfigDir::new();
    let missing = dir.path("x.toml");
    let run = Command::new(bin())
        .args(["run", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr).trim_end(),
        format!(
            "spaced: config file {}: No such file or directory",
            missing.display()
        )
    );
    let check = Command::new(bin())
        .arg("check")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim_end(),
        format!(
            "config file {}: No such file or directory",
            missing.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tour_shows_the_source_ip_its_dyno_echoes() {
    let dyno = spaced::demo::spawn_dyno(
        "127.0.0.1:0".parse().unwrap(),
        "demo".into(),
        "web.1".into(),
    )
    .await
    .unwrap();
    let dir = ConfigDir::new();
    let text = format!(
        r#"
[space]
name = "demo"
internal = ["127.0.0.0/8"]

[egress]
listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.10", "127.0.0.11"]
deny = []

[[app]]
name = "demo"
hosts = ["demo.localhost"]
egress_token = "demo-token"

[[app.dyno]]
addr = "{dyno}"
"#
    );
    let daemon = start(&dir, &text, false).await;
    let tour = spaced::demo::tour(&daemon.store().load());
    let egress = daemon.addrs().bound.egress[0];
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(egress).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET http://{dyno}/ HTTP/1.1\r\nHost: {dyno}\r\nProxy-Authorization: Basic {}\r\nConnection: close\r\n\r\n",
            basic("demo", "demo-token")
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert_eq!(status(&answer), 200, "{answer}");
    let echoed = answer
        .lines()
        .find_map(|l| l.strip_prefix("connection from "))
        .and_then(|peer| peer.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no peer echoed: {answer}"));
    assert!(
        tour.contains(&format!("\"connection from {}:…\"", echoed.ip())),
        "the tour names {} (what the dyno echoed):\n{tour}",
        echoed.ip()
    );
    assert!(tour.contains(&format!("http://{dyno}/")), "{tour}");
    daemon.stop().await;
}
