//! `spaced check` and friends, as a subprocess.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{ConfigDir, Spaced, bin, free_port, http, policy, root};

#[test]
fn check_accepts_the_shipped_configs() {
    for file in ["config/spaced.toml", "config/demo.toml"] {
        let out = Command::new(bin())
            .arg("check")
            .arg(root().join(file))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: {stdout}");
        assert!(stdout.contains(": ok: "), "{stdout}");
        assert_eq!(stdout.lines().count(), 1, "one-line summary: {stdout}");
    }
}

#[test]
fn check_reports_every_error_with_line_and_column() {
    let dir = ConfigDir::new();
    let text = "[space]\nname = \"e2e\"\ntrusted = [\"10.0.0.1/8\"]\n\n[[app]]\nname = \"Bad_Name\"\nbogus = 1\n";
    std::fs::write(dir.path("bad.toml"), text).unwrap();
    let path = dir.path("bad.toml");
    let out = Command::new(bin())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    // The unknown key is a parse error: it is reported first, at the key, on its own.
    assert!(
        first.starts_with(&format!("{}:7:1: ", path.display())),
        "{stdout}"
    );
    std::fs::write(dir.path("bad.toml"), text.replace("bogus = 1\n", "")).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "both semantic errors collected: {stdout}");
    assert_eq!(
        lines[0],
        format!(
            "{}:3:12: invalid CIDR \"10.0.0.1/8\": host bits set (did you mean 10.0.0.0/8?)",
            path.display()
        )
    );
    assert!(
        lines[1].starts_with(&format!("{}:6:8: ", path.display())),
        "{stdout}"
    );
}

#[test]
fn check_missing_file_fails_cleanly() {
    let out = Command::new(bin())
        .arg("check")
        .arg("/nonexistent/spaced.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Not `:1:1:`, which reads like a parse error (issue 18).
    assert_eq!(
        stdout.trim_end(),
        "config file /nonexistent/spaced.toml: No such file or directory"
    );
}

#[test]
fn explain_names_the_rule() {
    let demo = root().join("config/demo.toml");
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("explain")
            .arg("--config")
            .arg(&demo)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let (code, text) = run(&["--client", "127.0.0.66", "--host", "demo.localhost"]);
    assert_eq!(code, Some(1));
    assert_eq!(text, "denied at L4: 127.0.0.66 is in space.blocked");
    let (code, text) = run(&["--client", "127.0.0.5", "--host", "billing.internal"]);
    assert_eq!(code, Some(1));
    assert!(text.contains("S11"), "{text}");
    let (code, text) = run(&[
        "--client",
        "127.0.0.5",
        "--host",
        "billing.internal",
        "--listener",
        "internal",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(text, "allowed: app billing, web dynos 1");
    let (code, text) = run(&["--client", "::ffff:127.0.0.66", "--host", "demo.localhost"]);
    assert_eq!(code, Some(1), "mapped addresses fold to IPv4: {text}");
}

/// A second `spaced run` on the addresses of a running one fails to start (exit 1, naming
/// the address) instead of sharing its listeners through SO_REUSEPORT and silently taking
/// part of their connections; the first keeps serving.
#[test]
fn second_daemon_on_the_same_addresses_fails_to_start() {
    let dir = ConfigDir::new();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let router = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(dir.path("trusted.txt"), "127.0.0.0/8\n").unwrap();
    let text = policy(admin, &format!("\n[router]\nlisten = [\"{router}\"]\n"));
    dir.write_atomic("spaced.toml", &text);
    let _first = Spaced::start(&dir.path("spaced.toml"), admin, &["--no-watch"]);
    let mut second = Spaced {
        child: Command::new(bin())
            .args(["run", "--no-watch", "--config"])
            .arg(dir.path("spaced.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        admin,
    };
    let code = second.wait_exit(Duration::from_secs(10));
    if code.is_none() {
        // Still running (sharing the listeners): stop it so its stderr ends.
        let _ = second.child.kill();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = second.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("listener {router} is already in use")),
        "{stderr}"
    );
    assert!(matches!(http(admin, "GET", "/readyz"), Ok((200, _))));
}
