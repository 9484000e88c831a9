//! The process (OPERATIONS.md "The process"): the descriptor limit, sd_notify, socket
//! activation and the SIGTERM sequence, each on the real binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::harness::process::{Load, Proc, kill, tool};
use crate::harness::{ConfigDir, bin, free_port, http, wait_for};
use spaced_testkit::dyno::Backend;

const T: Duration = Duration::from_secs(20);

/// A router, resolver and admin API on fixed loopback ports, one app with `backend`.
pub(crate) struct Ports {
    pub(crate) router: SocketAddr,
    pub(crate) resolver: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Ports {
    pub(crate) fn new() -> Self {
        let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
        Self {
            router: at(free_port()),
            resolver: at(free_port()),
            admin: at(free_port()),
        }
    }

    pub(crate) fn policy(&self, backend: SocketAddr, extra: &str) -> String {
        format!(
            r#"
[space]
name = "proc"
internal = ["127.0.0.0/8"]
trusted = ["127.0.0.0/8"]

[router]
listen = ["{}"]

[resolver]
listen = ["{}"]

[admin]
listen = "{}"
{extra}

[[app]]
name = "api"
hosts = ["api.example.com"]
[[app.dyno]]
addr = "{backend}"
"#,
            self.router, self.resolver, self.admin
        )
    }

    pub(crate) fn wait_ready(&self) {
        wait_for("spaced /readyz", T, || {
            matches!(http(self.admin, "GET", "/readyz"), Ok((200, _)))
        });
    }
}

/// A backend on its own runtime (the tests themselves block).
pub(crate) fn backend() -> (tokio::runtime::Runtime, Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let b = rt.block_on(Backend::start("one"));
    (rt, b)
}

fn run_args(config: &std::path::Path) -> Vec<String> {
    vec![
        "run".into(),
        "--no-watch".into(),
        "--config".into(),
        config.display().to_string(),
    ]
}

/// "Max open files  SOFT  HARD  files" of `pid`.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut v = line["Max open files".len()..].split_whitespace();
    (v.next().unwrap().into(), v.next().unwrap().into())
}

#[test]
fn nofile_soft_limit_is_raised_to_the_hard_one_and_a_short_one_is_warned() {
    let Some(prlimit) = tool("prlimit", "util-linux") else {
        return;
    };
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    // max_connections 1000: 2000 + 2048 (resolver) + 256 + 3 listeners = 4307 needed.
    let text = ports
        .policy(b.addr, "")
        .replace("[resolver]", "max_connections = 1000\n\n[resolver]");
    std::fs::write(dir.path("spaced.toml"), &text).unwrap();
    let mut cmd = Command::new(&prlimit);
    cmd.arg("--nofile=256:4096")
        .arg(bin())
        .args(run_args(&dir.path("spaced.toml")));
    let p = Proc::spawn(cmd);
    ports.wait_ready();
    assert_eq!(nofile_of(p.pid()), ("4096".into(), "4096".into()));
    p.wait_line(
        &["open file limit (RLIMIT_NOFILE) 4096 is below the 4307"],
        T,
    );
    drop(p);

    // `spaced check` says the same on stderr and still exits 0; with room, nothing.
    let out = Command::new(&prlimit)
        .arg("--nofile=256:4096")
        .arg(bin())
        .arg("check")
        .arg(dir.path("spaced.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: open file limit (RLIMIT_NOFILE) 4096 is below the 4307"),
        "{stderr}"
    );
    let out = Command::new(&prlimit)
        .arg("--nofile=256:8192")
        .arg(bin())
        .arg("check")
        .arg(dir.path("spaced.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Datagrams from `rx` until one satisfies `want`; returns it.
fn next_notify(rx: &UnixDatagram, want: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        assert!(start.elapsed() < T, "no matching sd_notify message");
        let Ok(n) = rx.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if want(&msg) {
            return msg;
        }
    }
}

#[test]
fn sd_notify_reports_ready_reloads_watchdog_and_stopping() {
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    let text = ports.policy(b.addr, "");
    std::fs::write(dir.path("spaced.toml"), &text).unwrap();
    let sock = dir.path("notify.sock");
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(run_args(&dir.path("spaced.toml")))
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "300000");
    let mut p = Proc::spawn(cmd);

    let ready = next_notify(&rx, |m| m.contains("READY=1"));
    assert!(ready.contains("STATUS=serving version 1"), "{ready}");
    // Ready means ready: every listener answers now.
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 200);
    TcpStream::connect(ports.router).unwrap();
    next_notify(&rx, |m| m == "WATCHDOG=1");
    next_notify(&rx, |m| m == "WATCHDOG=1");

    // A reload that applies: RELOADING=1 with the monotonic clock, then READY=1.
    std::fs::write(
        dir.path("spaced.toml"),
        text.replace("\"proc\"", "\"proc2\""),
    )
    .unwrap();
    kill(p.pid(), 1);
    let reloading = next_notify(&rx, |m| m.contains("RELOADING=1"));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap();
    assert!(usec.parse::<u64>().unwrap() > 0, "{reloading}");
    let done = next_notify(&rx, |m| m.contains("READY=1"));
    assert!(done.contains("STATUS=serving version 2"), "{done}");

    // A file that is rejected: the status names the error and the version still serving.
    std::fs::write(dir.path("spaced.toml"), "[space\n").unwrap();
    kill(p.pid(), 1);
    next_notify(&rx, |m| m.contains("RELOADING=1"));
    let rejected = next_notify(&rx, |m| m.contains("READY=1"));
    assert!(
        rejected.contains("STATUS=serving version 2; reload rejected: ")
            && rejected.contains("spaced.toml:1:"),
        "{rejected}"
    );

    kill(p.pid(), 15);
    next_notify(&rx, |m| m.contains("STOPPING=1"));
    assert_eq!(p.wait_exit(T), Some(0));
}

#[test]
fn socket_activation_serves_on_the_sockets_it_is_given() {
    let Some(ssa) = tool("systemd-socket-activate", "systemd") else {
        return;
    };
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    let egress = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let text = ports.policy(
        b.addr,
        &format!("\n[egress]\nlisten = [\"{egress}\"]\nsource_ips = [\"127.0.0.1\"]\ndefault_deny = false\n"),
    );
    std::fs::write(dir.path("spaced.toml"), &text).unwrap();
    // The resolver's UDP socket from one activator, which passes it on to a second that
    // adds the TCP ones: five sockets of both kinds in one LISTEN_FDS.
    let mut cmd = Command::new(&ssa);
    cmd.args(["--datagram", "-l", &ports.resolver.to_string(), "--"])
        .arg(&ssa)
        .args(["-l", &ports.router.to_string()])
        .args(["-l", &ports.admin.to_string()])
        .args(["-l", &ports.resolver.to_string()])
        .args(["-l", &egress.to_string()])
        .arg("--")
        .arg(bin())
        .args(run_args(&dir.path("spaced.toml")));
    let p = Proc::spawn(cmd);
    p.wait_line(&["Listening on", &ports.resolver.to_string()], T);

    // The first query reaches the socket before spaced runs (and starts it); it is
    // answered once spaced reads the socket it was handed.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(T)).unwrap();
    let mut q = Message::query();
    q.add_query(Query::query(
        Name::from_ascii("web.api.app.localspace.").unwrap(),
        RecordType::A,
    ));
    udp.send_to(&q.to_vec().unwrap(), ports.resolver).unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert!(!Message::from_vec(&buf[..n]).unwrap().answers.is_empty());

    ports.wait_ready();
    for (transport, addr) in [
        ("udp", ports.resolver),
        ("tcp", ports.resolver),
        ("tcp", ports.router),
        ("tcp", ports.admin),
        ("tcp", egress),
    ] {
        p.wait_line(
            &[
                "inherited listening socket",
                &format!("transport=\"{transport}\""),
                &format!("server.addr={addr}"),
            ],
            T,
        );
    }
    // Log lines leave through the log writer thread: counted once each has been seen.
    assert_eq!(p.count("inherited listening socket"), 5);
    // Served on them: the router, the resolver over TCP, the egress gateway.
    let mut s = TcpStream::connect(ports.router).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let mut t = TcpStream::connect(ports.resolver).unwrap();
    t.set_read_timeout(Some(T)).unwrap();
    let wire = q.to_vec().unwrap();
    t.write_all(&(wire.len() as u16).to_be_bytes()).unwrap();
    t.write_all(&wire).unwrap();
    let mut len = [0u8; 2];
    t.read_exact(&mut len).unwrap();
    let mut e = TcpStream::connect(egress).unwrap();
    e.set_read_timeout(Some(T)).unwrap();
    let target = b.addr;
    write!(e, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    e.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(ready_log_names_no_bind_error(&p));
}

fn ready_log_names_no_bind_error(p: &Proc) -> bool {
    p.count("already in use") == 0 && p.count("spaced ready") == 1
}

#[test]
fn sigterm_keeps_accepting_for_shutdown_delay_with_readyz_503_then_drains() {
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    let text = ports.policy(
        b.addr,
        "\n[daemon]\nshutdown_delay = \"6s\"\ndrain_timeout = \"5s\"\n",
    );
    std::fs::write(dir.path("spaced.toml"), &text).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(run_args(&dir.path("spaced.toml")));
    let mut p = Proc::spawn(cmd);
    ports.wait_ready();
    let load = Load::start(ports.router, "api.example.com", 2, None);
    wait_for("the load is served", T, || {
        load.keepalive.ok.load(Ordering::Relaxed) > 0 && load.fresh.ok.load(Ordering::Relaxed) > 0
    });
    let signalled = Instant::now();
    kill(p.pid(), 15);
    wait_for("/readyz 503", Duration::from_secs(2), || {
        matches!(http(ports.admin, "GET", "/readyz"), Ok((503, _)))
    });
    let fresh_before = load.fresh.ok.load(Ordering::Relaxed);
    // Inside the delay: everything still succeeds, on new connections too. The load stops
    // well before the delay ends, however slow the machine was to get here.
    // The loop is the test: a window of load inside the delay.
    let seen = Instant::now();
    while seen.elapsed() < Duration::from_secs(1) && signalled.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let load = load.finish();
    assert!(
        load.fresh.ok.load(Ordering::Relaxed) > fresh_before,
        "new connections were served during shutdown_delay"
    );
    load.fresh.assert_none_failed("fresh");
    load.keepalive.assert_none_failed("keepalive");
    assert_eq!(http(ports.admin, "GET", "/readyz").unwrap().0, 503);
    // Then the listeners close and the process exits 0.
    assert_eq!(p.wait_exit(T), Some(0));
    assert!(signalled.elapsed() >= Duration::from_secs(6));
    assert!(TcpStream::connect(ports.router).is_err());
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let (_rt, b) = backend();
    let dir = ConfigDir::new();
    let ports = Ports::new();
    let text = ports.policy(b.addr, "\n[daemon]\nshutdown_delay = \"60s\"\n");
    std::fs::write(dir.path("spaced.toml"), &text).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(run_args(&dir.path("spaced.toml")));
    let mut p = Proc::spawn(cmd);
    ports.wait_ready();
    kill(p.pid(), 15);
    p.wait_line(&["listeners keep accepting for 60s"], T);
    kill(p.pid(), 2);
    assert_eq!(p.wait_exit(T), Some(0));
}
