//! Syslog drains against Debian's rsyslog (and rsyslog-gnutls for TLS), started by the test
//! with its own config on a loopback port, writing what it parsed to a file the test
//! reads: every line arrives once, in order, as RFC 5424.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

struct Rsyslog {
    child: Child,
    out: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslogd() -> Option<&'static str> {
    let found = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        spaced_testkit::skip("rsyslogd not found (apt-get install rsyslog rsyslog-gnutls)");
    }
    found
}

/// `kind`: "tcp", "udp" or "tls" (with `tls` = (ca, cert, key) paths).
fn start(
    bin: &str,
    kind: &str,
    tls: Option<(String, String, String)>,
    dir: tempfile::TempDir,
) -> Rsyslog {
    let port = spaced_testkit::ports::free();
    let out = dir.path().join("out.log");
    let mut conf = format!(
        "global(workDirectory=\"{d}\")\n\
         template(name=\"t\" type=\"string\" string=\"%pri% %hostname% %app-name% %procid% %msg%\\n\")\n",
        d = dir.path().display()
    );
    match (kind, &tls) {
        ("udp", _) => conf.push_str(&format!(
            "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\")\n"
        )),
        ("tls", Some((ca, cert, key))) => conf.push_str(&format!(
            "global(defaultNetstreamDriverCAFile=\"{ca}\" defaultNetstreamDriverCertFile=\"{cert}\" defaultNetstreamDriverKeyFile=\"{key}\")\n\
             module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n"
        )),
        _ => conf.push_str(&format!(
            "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n"
        )),
    }
    conf.push_str(&format!(
        "*.* action(type=\"omfile\" file=\"{}\" template=\"t\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n",
        out.display()
    ));
    let cf = dir.path().join("rsyslog.conf");
    std::fs::write(&cf, conf).unwrap();
    let child = Command::new(bin)
        .args(["-n", "-f"])
        .arg(&cf)
        .arg("-i")
        .arg(dir.path().join("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let r = Rsyslog {
        child,
        out,
        port,
        _dir: dir,
    };
    if kind != "udp" {
        // Ready once it accepts.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        std::thread::sleep(Duration::from_secs(1));
    }
    r
}

async fn every_line_once_in_order(kind: &str, scheme: &str) {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut ca_line = String::new();
    let tls = if kind == "tls" {
        let leaf = spaced_testkit::pki::self_signed(&["localhost"]);
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("ca.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(p("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(p("key.pem"), &leaf.key_pem).unwrap();
        ca_line = format!("ca = \"{}\"\n", p("ca.pem"));
        Some((p("ca.pem"), p("cert.pem"), p("key.pem")))
    } else {
        None
    };
    let rs = start(bin, kind, tls, dir);
    let host = if kind == "tls" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let p = policy(
        &format!(
            "[[drain]]\nurl = \"{scheme}://{host}:{}\"\n{ca_line}",
            rs.port
        ),
        "",
        10_000,
    );
    let hub = hub_with(&p);
    let n = 300;
    for i in 0..n {
        line(&hub, if i % 3 == 0 { "api" } else { "" }, i);
        if kind == "udp" && i % 50 == 0 {
            // Datagrams to a busy receiver on a loaded machine: pace them a little.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let sent = || metric(&hub, "spaced_drain_lines_total", &["result=\"sent\""]);
    assert!(
        eventually(60, || sent() == n as u64).await,
        "sent {}",
        sent()
    );
    let read = || std::fs::read_to_string(&rs.out).unwrap_or_default();
    assert!(
        eventually(60, || read().lines().count() >= n).await,
        "{}",
        read()
    );
    // The pause is the test: a line written twice would show up in it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n, "every line once");
    for (i, l) in lines.iter().enumerate() {
        let app = if i % 3 == 0 { "api" } else { "spaced" };
        let want = format!("190 demo {app} router at=info method=GET path=\"/n/{i}\" ");
        assert!(l.starts_with(&want), "line {i}: {l}\nwanted {want}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tcp_to_rsyslog() {
    every_line_once_in_order("tcp", "syslog").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tls_to_rsyslog_gtls() {
    every_line_once_in_order("tls", "syslog+tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_udp_to_rsyslog() {
    every_line_once_in_order("udp", "syslog+udp").await;
}
