//! SIGUSR2 upgrades (OPERATIONS.md "Stopping and upgrading without refusing anyone"): the
//! binary at the running one's path starts on the same sockets, and the old one drains.
//! The process runs from a link in a scratch directory so the test can replace "the
//! installed binary" under it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::process::{Load, Proc, exited, kill};
use crate::harness::{ConfigDir, bin, free_port, http, wait_for};
use crate::process::{Ports, backend};

const T: Duration = Duration::from_secs(30);

/// `bin()` installed at `dir/spaced` (a hard link when the file system allows).
fn install(dir: &Path) -> PathBuf {
    let dest = dir.join("spaced");
    let tmp = dir.join(".spaced.new");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(bin(), &tmp).is_err() {
        std::fs::copy(bin(), &tmp).unwrap();
    }
    std::fs::rename(&tmp, &dest).unwrap();
    dest
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn start(exe: &Path, config: &Path) -> Proc {
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg("--no-watch").arg("--config").arg(config);
    Proc::spawn(cmd)
}

/// Sends SIGUSR2 to `pid` and returns the new process's PID from the old one's log.
fn upgrade(p: &mut Proc, pid: u32) -> u32 {
    let before = p.count("upgrade: the new process is ready");
    kill(pid, 12);
    wait_for("the upgrade", T, || {
        p.count("upgrade: the new process is ready") > before
    });
    let line = p
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("upgrade: the new process is ready"))
        .nth(before)
        .unwrap()
        .clone();
    let new: u32 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    p.others.push(new);
    new
}

#[test]
fn three_upgrades_under_load_refuse_and_lose_nothing() {
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    // Every other listener kind goes over too: internal, egress HTTP and SOCKS.
    let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let (internal, egress, socks) = (at(free_port()), at(free_port()), at(free_port()));
    let text = ports
        .policy(
            b.addr,
            &format!(
                "\n[daemon]\ndrain_timeout = \"10s\"\n\n[egress]\nlisten = [\"{egress}\"]\nsocks_listen = [\"{socks}\"]\nsource_ips = [\"127.0.0.1\"]\ndeny = []\n"
            ),
        )
        .replace("[resolver]", &format!("internal_listen = [\"{internal}\"]\n\n[resolver]"));
    std::fs::write(dir.path("spaced.toml"), &text).unwrap();
    let bin_dir = scratch();
    let exe = install(bin_dir.path());
    let mut p = start(&exe, &dir.path("spaced.toml"));
    ports.wait_ready();
    let load = Load::start(
        ports.router,
        "api.example.com",
        4,
        Some((ports.resolver, "web.api.app.localspace.")),
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut pid = p.pid();
    let mut pids = vec![pid];
    for _ in 0..3 {
        let served = load.keepalive.ok.load(Ordering::Relaxed);
        let next = upgrade(&mut p, pid);
        assert_ne!(next, pid);
        // The old process drains and exits; the new one serves meanwhile and after.
        wait_for("the old process to exit", T, || exited(pid));
        wait_for("keep-alive load on the new process", T, || {
            load.keepalive.ok.load(Ordering::Relaxed) > served + 50
        });
        pid = next;
        pids.push(pid);
    }
    std::thread::sleep(Duration::from_millis(300));
    let load = load.finish();
    for (what, c) in [
        ("keep-alive", &load.keepalive),
        ("new connections", &load.fresh),
        ("dns", &load.dns),
    ] {
        assert_eq!(
            c.failed.load(Ordering::Relaxed),
            0,
            "{what}: {}",
            c.summary()
        );
        assert!(c.ok.load(Ordering::Relaxed) > 0, "{what}: {}", c.summary());
    }
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);
    // The last process took every socket over (none bound anew) and serves on each.
    for addr in [
        ports.router,
        internal,
        egress,
        socks,
        ports.admin,
        ports.resolver,
    ] {
        let tcp = format!("transport=\"tcp\" server.addr={addr}");
        assert!(p.count(&tcp) >= 3, "{addr} handed over at each upgrade");
    }
    assert!(p.count(&format!("transport=\"udp\" server.addr={}", ports.resolver)) >= 3);
    let mut s = TcpStream::connect(internal).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let mut e = TcpStream::connect(egress).unwrap();
    e.set_read_timeout(Some(T)).unwrap();
    write!(e, "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", b.addr).unwrap();
    let mut head = [0u8; 12];
    e.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut so = TcpStream::connect(socks).unwrap();
    so.set_read_timeout(Some(T)).unwrap();
    so.write_all(&[5, 1, 0]).unwrap();
    let mut greet = [0u8; 2];
    so.read_exact(&mut greet).unwrap();
    assert_eq!(greet, [5, 0]);
    // An open tunnel would rightly hold the drain below to its end.
    drop((s, e, so));
    // The last process stops as any does.
    kill(pid, 15);
    wait_for("the last process to exit", T, || exited(pid));
    assert_eq!(pids.len(), 4);
}

#[test]
fn an_upgrade_that_cannot_start_leaves_the_old_process_serving() {
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    std::fs::write(dir.path("spaced.toml"), ports.policy(b.addr, "")).unwrap();
    let bin_dir = scratch();
    let exe = install(bin_dir.path());
    let mut p = start(&exe, &dir.path("spaced.toml"));
    ports.wait_ready();
    let pid = p.pid();

    // A "binary" that exits at once.
    let script = bin_dir.path().join(".broken");
    std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    std::fs::rename(&script, &exe).unwrap();
    kill(pid, 12);
    p.wait_line(&["upgrade failed", "exited before it was ready"], T);
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);

    // No binary at all.
    std::fs::remove_file(&exe).unwrap();
    kill(pid, 12);
    p.wait_line(&["upgrade failed", "start "], T);
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the old process runs"
    );

    // A good binary with a policy file that no longer loads: the new process says why
    // and exits; the old one serves on.
    install(bin_dir.path());
    let good = std::fs::read_to_string(dir.path("spaced.toml")).unwrap();
    std::fs::write(dir.path("spaced.toml"), "[space]\nname = 1\n").unwrap();
    kill(pid, 12);
    p.wait_line(&["spaced.toml:2:8: "], T);
    wait_for("the third failed upgrade", T, || {
        p.count("upgrade failed") >= 3
    });
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);
    std::fs::write(dir.path("spaced.toml"), good).unwrap();

    // It still serves traffic, and with both fixed the upgrade goes through.
    let load = Load::start(ports.router, "api.example.com", 1, None);
    let next = upgrade(&mut p, pid);
    wait_for("the old process to exit", T, || exited(pid));
    let load = load.finish();
    assert_eq!(
        load.keepalive.failed.load(Ordering::Relaxed),
        0,
        "{}",
        load.keepalive.summary()
    );
    assert_eq!(
        load.fresh.failed.load(Ordering::Relaxed),
        0,
        "{}",
        load.fresh.summary()
    );
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);
    kill(next, 15);
    wait_for("the new process to exit", T, || exited(next));
}

#[test]
fn under_systemd_the_new_process_reports_its_pid_and_the_old_one_no_stop() {
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    std::fs::write(dir.path("spaced.toml"), ports.policy(b.addr, "")).unwrap();
    let sock = dir.path("notify.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .arg("--no-watch")
        .arg("--config")
        .arg(dir.path("spaced.toml"))
        .env("NOTIFY_SOCKET", &sock);
    let mut p = Proc::spawn(cmd);
    ports.wait_ready();
    let pid = p.pid();
    let next = upgrade(&mut p, pid);
    wait_for("the old process to exit", T, || exited(pid));
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = rx.recv(&mut buf) {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        seen.iter()
            .any(|m| m.starts_with(&format!("MAINPID={next}\nREADY=1\n"))),
        "{seen:?}"
    );
    // The service goes on: the old process must not tell systemd it stops.
    assert!(!seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
    kill(next, 15);
    wait_for("the new process to exit", T, || exited(next));
}
