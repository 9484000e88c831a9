//! Logs leave the box without slowing traffic (OPERATIONS.md "Logs and drains"): the real
//! binary, its stdout a pipe the test controls.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{ConfigDir, bin, free_port, http, wait_for};

/// A dyno answering every request `200 ok` and closing.
fn dyno() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    addr
}

fn get(router: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(router).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Kills the daemon when the test ends, failed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Killed {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

fn start(logging: &str) -> (Killed, SocketAddr, SocketAddr, ConfigDir) {
    let dir = ConfigDir::new();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let router: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let conf = format!(
        "[space]\nname = \"e2e\"\ninternal = [\"127.0.0.0/8\"]\n\n[router]\nlisten = [\"{router}\"]\n\n\
         [admin]\nlisten = \"{admin}\"\n\n[logging]\n{logging}\n\n\
         [[app]]\nname = \"api\"\nhosts = [\"api.test\"]\n\n[[app.dyno]]\naddr = \"{}\"\n",
        dyno()
    );
    dir.write_atomic("spaced.toml", &conf);
    let child = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(dir.path("spaced.toml"))
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_for("spaced /readyz", Duration::from_secs(30), || {
        matches!(http(admin, "GET", "/readyz"), Ok((200, _)))
    });
    (child, router, admin, dir)
}

fn metric(admin: SocketAddr, prefix: &str) -> u64 {
    let (_, body) = http(admin, "GET", "/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_stdout_reader_that_stops_reading_does_not_stall_requests() {
    let (mut child, router, admin, _dir) = start("buffer = 50");
    // Nobody reads stdout: the pipe (64 KiB) fills, then the queue, then lines drop.
    let stdout = child.stdout.take().unwrap();
    for i in 0..1500 {
        assert_eq!(get(router, &format!("/r/{i}")), 200, "request {i}");
    }
    let dropped = "spaced_log_lines_dropped_total{sink=\"stdout\",reason=\"overflow\"}";
    assert!(metric(admin, dropped) > 0, "lines were dropped and counted");
    // Hold the pipe shut a while longer: requests still complete.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(router, "/late"), 200);
    // Reading again: the lines that were kept come out, timestamped, whole.
    let mut r = BufReader::new(stdout);
    let mut line = String::new();
    let mut seen_late = false;
    for _ in 0..5000 {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        assert!(
            line.as_bytes()[..4].iter().all(u8::is_ascii_digit),
            "{line}"
        );
        assert_eq!(&line[10..11], "T", "{line}");
        if line.contains("path=\"/late\"") {
            seen_late = true;
            break;
        }
    }
    assert!(seen_late, "the newest line arrives once the reader reads");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn json_lines_carry_the_fields_as_numbers() {
    let (mut child, router, _admin, _dir) = start("format = \"json\"");
    assert_eq!(get(router, "/j?x=1"), 200);
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let v = loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stdout ended");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["source"] == "router" {
            break v;
        }
        assert_eq!(v["source"], "spaced", "{v}");
        assert!(v["msg"].is_string(), "{v}");
    };
    assert_eq!(v["app"], "api");
    assert_eq!(v["level"], "info");
    assert_eq!(v["path"], "/j?x=1");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 2);
    assert!(v["connect"].is_u64() && v["service"].is_u64(), "{v}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_bad_drain_url_is_a_located_error_and_credentials_stay_hidden() {
    let dir = ConfigDir::new();
    dir.write_atomic(
        "bad.toml",
        "[space]\nname = \"e2e\"\n\n[[drain]]\nurl = \"ftp://u:hunter2@logs.example.com\"\n\n\
         [[drain]]\nurl = \"syslog://\"\n\n[[drain]]\nurl = \"syslog+tls://h:99999\"\n",
    );
    let out = Command::new(bin())
        .arg("check")
        .arg(dir.path("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "bad.toml:5:7: bad drain url \"ftp://u:***@logs.example.com\": unknown scheme"
        ),
        "{text}"
    );
    assert!(
        text.contains("bad.toml:8:7: bad drain url \"syslog://\": no host"),
        "{text}"
    );
    assert!(
        text.contains("bad.toml:11:7: bad drain url \"syslog+tls://h:99999\": bad port"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn drains_get_their_scope_show_in_drains_and_never_show_a_password() {
    let space_rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let app_rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&space_rx, &app_rx] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let logging = format!(
        "stdout = false\n\n[[drain]]\nurl = \"syslog+udp://u:hunter2@{}\"",
        space_rx.local_addr().unwrap()
    );
    let (mut child, router, admin, dir) = start(&logging);
    // The app's own drain, added by a reload.
    let conf = std::fs::read_to_string(dir.path("spaced.toml"))
        .unwrap()
        .replace(
            "hosts = [\"api.test\"]\n",
            &format!(
                "hosts = [\"api.test\"]\ndrains = [\"syslog+udp://{}\"]\n",
                app_rx.local_addr().unwrap()
            ),
        );
    dir.write_atomic("spaced.toml", &conf);
    assert_eq!(http(admin, "POST", "/reload").unwrap().0, 200);
    wait_for("the app drain", Duration::from_secs(10), || {
        http(admin, "GET", "/drains")
            .unwrap()
            .1
            .matches("\"url\"")
            .count()
            == 2
    });
    assert_eq!(get(router, "/d/1"), 200);
    let mut buf = [0u8; 65536];
    let n = app_rx.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("<190>1 "), "{msg}");
    assert!(
        msg.contains(" e2e api router - - at=info method=GET path=\"/d/1\" "),
        "{msg}"
    );
    // The space drain gets the router line too (and daemon lines).
    let mut found = false;
    for _ in 0..50 {
        let n = space_rx.recv(&mut buf).unwrap();
        if String::from_utf8_lossy(&buf[..n]).contains("path=\"/d/1\"") {
            found = true;
            break;
        }
    }
    assert!(found);
    // The datagram left before its count: wait for the count.
    let drains_now = || -> serde_json::Value {
        serde_json::from_str(&http(admin, "GET", "/drains").unwrap().1).unwrap()
    };
    let scope = |v: &serde_json::Value, s: &str| -> serde_json::Value {
        v.as_array()
            .unwrap()
            .iter()
            .find(|d| d["scope"] == s)
            .unwrap()
            .clone()
    };
    wait_for("the app drain's count", Duration::from_secs(10), || {
        scope(&drains_now(), "app:api")["sent"] == 1
    });
    let (_, drains) = http(admin, "GET", "/drains").unwrap();
    let v: serde_json::Value = serde_json::from_str(&drains).unwrap();
    let space = scope(&v, "space");
    assert!(
        space["url"]
            .as_str()
            .unwrap()
            .starts_with("syslog+udp://u:***@127.0.0.1:"),
        "{v}"
    );
    assert!(space["sent"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(scope(&v, "app:api")["sent"], 1, "{v}");
    let (_, metrics) = http(admin, "GET", "/metrics").unwrap();
    assert!(
        metrics.contains("spaced_drain_lines_total{drain=\"syslog+udp://u:***@"),
        "{metrics}"
    );
    // A bad reload: its error in /config, the password hidden.
    dir.write_atomic(
        "spaced.toml",
        &conf.replace("syslog+udp://u:hunter2@", "ftp://u:hunter2@"),
    );
    assert_eq!(http(admin, "POST", "/reload").unwrap().0, 422);
    let (_, config) = http(admin, "GET", "/config").unwrap();
    assert!(
        config.contains("bad drain url") && config.contains("u:***@"),
        "{config}"
    );
    for body in [&drains, &metrics, &config] {
        assert!(!body.contains("hunter2"));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The journal stamps lines itself: with `JOURNAL_STREAM` naming stdout (its `dev:inode`),
/// lines carry no timestamp; naming another file, they do.
#[test]
fn no_timestamp_when_stdout_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    let dir = ConfigDir::new();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    dir.write_atomic(
        "spaced.toml",
        &format!("[space]\nname = \"e2e\"\n\n[admin]\nlisten = \"{admin}\"\n"),
    );
    for journal in [true, false] {
        let out_path = dir.path(&format!("out-{journal}.log"));
        let out = std::fs::File::create(&out_path).unwrap();
        let m = out.metadata().unwrap();
        let ino = if journal { m.ino() } else { m.ino() + 1 };
        let child = Command::new(bin())
            .arg("run")
            .arg("--config")
            .arg(dir.path("spaced.toml"))
            .env("RUST_LOG", "info")
            .env("JOURNAL_STREAM", format!("{}:{ino}", m.dev()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut child = Killed(child);
        wait_for("spaced ready line", Duration::from_secs(30), || {
            std::fs::read_to_string(&out_path)
                .unwrap_or_default()
                .contains("spaced ready")
        });
        let text = std::fs::read_to_string(&out_path).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(first.starts_with("20"), !journal, "{first}");
        assert!(first.contains("INFO "), "{first}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
