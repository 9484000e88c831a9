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
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stdout}{stderr}");
        // stdout is the one-line summary; the warnings go to stderr: both samples dial
        // their dynos on loopback with `default_deny = false`, which `check` warns about.
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.contains(": ok: "), "{stdout}");
        // The open file limit warning depends on the machine's hard limit (20000 is below
        // what config/spaced.toml can hold open).
        for w in stderr.lines() {
            assert!(
                w.contains(": warning: egress.default_deny = false")
                    || w.contains(": warning: open file limit (RLIMIT_NOFILE) "),
                "{stderr}"
            );
        }
    }
}

/// Issue 18: `default_deny = false` is valid but warned about (exit 0); the example's
/// explicit `deny` keeps the built-in list and gets no warning. Issue 19: a mistyped
/// secret is reported by key and problem, never echoed.
#[test]
fn check_warns_about_default_deny_off_and_never_echoes_a_secret() {
    let dir = ConfigDir::new();
    let base = "[space]\nname = \"e2e\"\n[egress]\nlisten = [\"127.0.0.1:3128\"]\nsource_ips = [\"127.0.0.10\"]\n";
    let run = |text: &str| {
        let path = dir.path("c.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(bin())
            .arg("check")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&format!("{base}default_deny = false\n"));
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].ends_with("c.toml: warning: egress.default_deny = false: the built-in deny list (loopback, link-local and cloud metadata, 0.0.0.0/8, 100.64.0.0/10, multicast, reserved, and their IPv6 forms) is off; apps may reach this host's admin API and the cloud metadata service"), "{stderr}");
    let (code, stdout, stderr) = run(&format!("{base}deny = [\"10.0.0.0/8\"]\n"));
    assert_eq!((code, stdout.lines().count()), (Some(0), 1), "{stdout}");
    assert_eq!(stderr, "", "no warning");
    let (code, stdout, _) = run(&format!(
        "{base}[[app]]\nname = \"api\"\negress_token = 987654321\n"
    ));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("c.toml:8:16: invalid type for app.egress_token: integer"),
        "{stdout}"
    );
    assert!(!stdout.contains("987654321"), "{stdout}");
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

/// Issue 19: `spaced explain --xff` walks X-Forwarded-For as the router does: a non-ASCII
/// entry left of the client changes nothing, one where the client should be makes it
/// unknown (refused by an app with `trusted`), never the proxy's address.
#[test]
fn explain_xff_walk_never_falls_back_to_the_proxy() {
    let dir = ConfigDir::new();
    let text = "[space]\nname = \"e2e\"\ntrusted = [\"10.0.0.0/8\"]\n\n[router]\n\
                listen = [\"127.0.0.1:0\"]\ntrusted_proxies = [\"10.0.0.2\"]\n\n[[app]]\n\
                name = \"api\"\nhosts = [\"api.test\"]\ntrusted = [\"10.0.0.2\", \"192.0.2.0/24\"]\n\
                [[app.dyno]]\nprocess = \"web\"\naddr = \"127.0.0.1:9\"\n";
    std::fs::write(dir.path("xff.toml"), text).unwrap();
    let run = |xff: &str| {
        let out = Command::new(bin())
            .args(["explain", "--config"])
            .arg(dir.path("xff.toml"))
            .args(["--client", "10.0.0.2", "--host", "api.test", "--xff", xff])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let (code, text) = run("é, 203.0.113.9");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("203.0.113.9 is not in app api"), "{text}");
    let (code, text) = run("é");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("client unknown"), "{text}");
    let (code, text) = run("é, 192.0.2.5");
    assert_eq!(code, Some(0), "{text}");
}
