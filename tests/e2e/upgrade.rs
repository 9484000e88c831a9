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
    // Every other listener kind goes over too: internal, TLS, egress HTTP, SOCKS and
    // transparent.
    let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let (internal, tls, egress, socks, transparent) = (
        at(free_port()),
        at(free_port()),
        at(free_port()),
        at(free_port()),
        at(free_port()),
    );
    let c = spaced_testkit::pki::self_signed(&["api.example.com"]);
    std::fs::write(dir.path("cert.pem"), &c.cert_pem).unwrap();
    std::fs::write(dir.path("key.pem"), &c.key_pem).unwrap();
    let text = ports
        .policy(
            b.addr,
            &format!(
                "\n[daemon]\ndrain_timeout = \"10s\"\n\n[egress]\nlisten = [\"{egress}\"]\nsocks_listen = [\"{socks}\"]\ntransparent_listen = [\"{transparent}\"]\nsource_ips = [\"127.0.0.1\"]\ndefault_deny = false\n\n[[tls]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n"
            ),
        )
        .replace(
            "[resolver]",
            &format!("internal_listen = [\"{internal}\"]\ntls_listen = [\"{tls}\"]\n\n[resolver]"),
        );
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
    let ok_of = |c: &crate::harness::process::Counts| c.ok.load(Ordering::Relaxed);
    wait_for("the load is served", T, || {
        ok_of(&load.keepalive) > 0 && ok_of(&load.fresh) > 0 && ok_of(&load.dns) > 0
    });
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
    // The last process serves every kind of load before it stops.
    let (fresh, dns) = (ok_of(&load.fresh), ok_of(&load.dns));
    wait_for("new connections and DNS on the last process", T, || {
        ok_of(&load.fresh) > fresh && ok_of(&load.dns) > dns
    });
    let load = load.finish();
    for (what, c) in [
        ("keep-alive", &load.keepalive),
        ("new connections", &load.fresh),
        ("dns", &load.dns),
    ] {
        c.assert_none_failed(what);
        assert!(c.ok.load(Ordering::Relaxed) > 0, "{what}: {}", c.summary());
    }
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);
    // The last process took every socket over (none bound anew) and serves on each.
    for addr in [
        ports.router,
        internal,
        tls,
        egress,
        socks,
        transparent,
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
    // TLS: a ClientHello gets a ServerHello (a handshake record) from the last process.
    let mut t = TcpStream::connect(tls).unwrap();
    t.set_read_timeout(Some(T)).unwrap();
    t.write_all(&client_hello("api.example.com")).unwrap();
    let mut rec = [0u8; 1];
    t.read_exact(&mut rec).unwrap();
    assert_eq!(rec[0], 22, "a TLS handshake record");
    drop(t);
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
    load.keepalive.assert_none_failed("keepalive");
    load.fresh.assert_none_failed("fresh");
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

/// A minimal TLS 1.2 ClientHello for `sni` (enough for a server to answer it).
fn client_hello(sni: &str) -> Vec<u8> {
    let host = sni.as_bytes();
    let mut ext = Vec::new();
    // server_name
    let name_list_len = 3 + host.len();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((name_list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(name_list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(host.len() as u16).to_be_bytes());
    ext.extend_from_slice(host);
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0, 10, 0, 6, 0, 4, 0, 0x1d, 0, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0, 11, 0, 2, 1, 0]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend_from_slice(&[0, 13, 0, 8, 0, 6, 4, 3, 8, 4, 4, 1]);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    // ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256
    body.extend_from_slice(&[0, 4, 0xc0, 0x2b, 0xc0, 0x2f]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}
