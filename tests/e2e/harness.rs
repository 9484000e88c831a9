//! Test harness: a spaced subprocess with its admin API, temp config dirs, tiny HTTP client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `spaced` binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_spaced")
}

/// The repository root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port free on 127.0.0.1 for TCP and UDP, never the same twice in this binary (for
/// subprocess configs, which must name a port before the process starts).
pub(crate) fn free_port() -> u16 {
    spaced_testkit::ports::free()
}

/// A minimal HTTP/1.1 exchange with `Connection: close`, `Host` the address itself (as
/// the admin listener wants it): (status, body).
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    exchange(addr, method, path, &addr.to_string())
}

/// [`http`] with another `Host` (a router's app).
pub(crate) fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// GET /config as JSON.
pub(crate) fn config_json(admin: SocketAddr) -> serde_json::Value {
    let (status, body) = http(admin, "GET", "/config").unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls until `f` holds, or panics with `what` after `timeout`.
pub(crate) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A config directory in a temp dir.
pub(crate) struct ConfigDir {
    pub(crate) dir: tempfile::TempDir,
}

impl ConfigDir {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces `name` atomically, as editors and config-management tools do (write a temp
    /// file, rename over).
    pub(crate) fn write_atomic(&self, name: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }
}

/// A running `spaced run` subprocess, killed on drop.
pub(crate) struct Spaced {
    pub(crate) child: Child,
    pub(crate) admin: SocketAddr,
}

impl Spaced {
    pub(crate) fn start(config: &Path, admin: SocketAddr, extra: &[&str]) -> Self {
        let child = Command::new(bin())
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let me = Self { child, admin };
        wait_for("spaced /readyz", Duration::from_secs(20), || {
            matches!(http(admin, "GET", "/readyz"), Ok((200, _)))
        });
        me
    }

    pub(crate) fn signal(&self, sig: i32) {
        // std cannot send arbitrary signals; the `kill` command can.
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn version(&self) -> u64 {
        config_json(self.admin)["version"].as_u64().unwrap()
    }

    /// Waits for the process to exit, returning its exit code.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Spaced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal valid policy with an admin listener and a trusted_file.
pub(crate) fn policy(admin: SocketAddr, apps: &str) -> String {
    format!(
        r#"
[space]
name = "e2e"
internal = ["127.0.0.0/8"]
trusted_file = "trusted.txt"

[admin]
listen = "{admin}"
{apps}
"#
    )
}

pub(crate) mod process;
