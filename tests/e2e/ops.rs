//! Running spaced as infrastructure (issues 18 and 19, the admin part): the probe
//! listener, the process and build metrics and the Host check of the admin listener here;
//! the listeners' bounds, secrets read from files and what a newcomer meets in `ops/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spaced::{Daemon, Options};
use tokio::time::timeout;

use crate::harness::ConfigDir;

mod bounds;
mod newcomer;
mod secrets;

const T: Duration = Duration::from_secs(10);

/// One request with `Connection: close` and the given `Host` line (or none): the answer.
pub(super) fn ask(addr: SocketAddr, request_line: &str, host: Option<&str>) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    write!(
        s,
        "{request_line}\r\n{host}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

pub(super) fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub(super) async fn start(dir: &ConfigDir, text: &str, watch: bool) -> Daemon {
    dir.write_atomic("spaced.toml", text);
    let mut opts = Options::new(dir.path("spaced.toml"));
    opts.watch = watch;
    opts.grace = Some(Duration::from_secs(2));
    timeout(T, Daemon::start(opts)).await.unwrap().unwrap()
}

pub(super) fn admin_policy(extra: &str) -> String {
    format!("[space]\nname = \"ops\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_listener_serves_only_health_readiness_and_metrics() {
    let dir = ConfigDir::new();
    let text = admin_policy("probe_listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]\n");
    let daemon = start(&dir, &text, false).await;
    let probes = daemon.addrs().probe.clone();
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[1].ip().to_string(), "127.0.0.2");
    tokio::task::spawn_blocking(move || {
        for probe in probes {
            // kubelet sends the pod IP as Host, Prometheus whatever it discovered: no check.
            let host = Some("10.9.8.7:8080");
            let ok = |line: &str| ask(probe, line, host);
            assert_eq!(status(&ok("GET /healthz HTTP/1.1")), 200);
            assert_eq!(status(&ok("GET /readyz HTTP/1.1")), 200);
            assert_eq!(status(&ok("HEAD /readyz HTTP/1.1")), 200);
            let metrics = ok("GET /metrics HTTP/1.1");
            assert_eq!(status(&metrics), 200, "{metrics}");
            assert!(metrics.contains("spaced_build_info{"), "{metrics}");
            for line in [
                "GET /config HTTP/1.1",
                "POST /reload HTTP/1.1",
                "GET /reload HTTP/1.1",
                "GET /dynos HTTP/1.1",
                "GET /nat HTTP/1.1",
                "GET / HTTP/1.1",
                "GET /healthz/x HTTP/1.1",
            ] {
                assert_eq!(status(&ok(line)), 404, "{line}");
            }
            for line in [
                "POST /healthz HTTP/1.1",
                "DELETE /metrics HTTP/1.1",
                "PUT /readyz HTTP/1.1",
            ] {
                let answer = ok(line);
                assert_eq!(status(&answer), 405, "{line}: {answer}");
                assert!(answer.contains("allow: GET, HEAD\r\n"), "{answer}");
            }
        }
    })
    .await
    .unwrap();
    assert!(daemon.stop().await);
}

/// The value of an unlabelled sample in Prometheus text.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_build_the_process_and_the_last_good_load() {
    let dir = ConfigDir::new();
    let daemon = start(&dir, &admin_policy(""), false).await;
    let admin = daemon.addrs().admin.unwrap();
    let host = admin.to_string();
    let scrape = {
        let host = host.clone();
        move || ask(admin, "GET /metrics HTTP/1.1", Some(&host))
    };
    let first = tokio::task::spawn_blocking(scrape.clone()).await.unwrap();
    let build = format!(
        "spaced_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        env!("SPACED_COMMIT")
    );
    assert!(first.contains(&build), "{build} in:\n{first}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(sample(&first, "process_open_fds") >= 3.0);
    assert!(sample(&first, "process_max_fds") >= sample(&first, "process_open_fds"));
    assert!(sample(&first, "process_resident_memory_bytes") > 1e6);
    assert!(sample(&first, "process_virtual_memory_bytes") > 1e6);
    assert!(sample(&first, "process_cpu_seconds_total") >= 0.0);
    let started = sample(&first, "process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );
    let loaded = sample(&first, "spaced_config_last_reload_seconds");
    assert!((loaded - now).abs() < 60.0, "{loaded} vs {now}");
    // An unchanged file reloaded is a successful load too: the time moves, the version not
    // (the pause is the test: the metric has a resolution of one second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    daemon.reload().await.unwrap();
    let second = tokio::task::spawn_blocking(scrape).await.unwrap();
    assert!(sample(&second, "spaced_config_last_reload_seconds") > loaded);
    assert_eq!(sample(&second, "spaced_config_version"), 1.0);
    assert!(daemon.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_answers_only_a_host_that_names_it() {
    let dir = ConfigDir::new();
    let daemon = start(&dir, &admin_policy(""), false).await;
    let admin = daemon.addrs().admin.unwrap();
    let version_before = daemon.store().meta().version;
    let answers = tokio::task::spawn_blocking(move || {
        let port = admin.port();
        let mut out = Vec::new();
        for host in [
            format!("127.0.0.1:{port}"),
            "127.0.0.1".into(),
            "localhost".into(),
            format!("LOCALHOST:{port}"),
            // A tunnel (ssh -L, kubectl port-forward) changes the port, not the name.
            "localhost:18000".into(),
        ] {
            out.push((
                host.clone(),
                ask(admin, "GET /config HTTP/1.1", Some(&host)),
            ));
        }
        // A page that rebinds its own name to 127.0.0.1 sends that name.
        for host in [
            format!("rebind.example:{port}"),
            "rebind.example".into(),
            "127.0.0.2".into(),
            "x.localhost".into(),
        ] {
            for line in ["GET /config HTTP/1.1", "POST /reload HTTP/1.1"] {
                out.push((host.clone(), ask(admin, line, Some(&host))));
            }
        }
        // The authority of an absolute-form target is the one that counts.
        out.push((
            "absolute".into(),
            ask(
                admin,
                "GET http://rebind.example/config HTTP/1.1",
                Some("127.0.0.1"),
            ),
        ));
        out.push((
            "two".into(),
            ask(
                admin,
                "GET /config HTTP/1.1\r\nHost: localhost",
                Some("rebind.example"),
            ),
        ));
        out.push(("none, 1.1".into(), ask(admin, "GET /config HTTP/1.1", None)));
        out.push(("none, 1.0".into(), ask(admin, "GET /config HTTP/1.0", None)));
        out
    })
    .await
    .unwrap();
    for (host, answer) in &answers[..5] {
        assert_eq!(status(answer), 200, "{host}: {answer}");
    }
    for (host, answer) in &answers[5..14] {
        assert_eq!(status(answer), 421, "{host}: {answer}");
    }
    assert_eq!(status(&answers[14].1), 400, "two Hosts: {}", answers[14].1);
    assert_eq!(status(&answers[15].1), 400, "{}", answers[15].1);
    assert_eq!(status(&answers[16].1), 200, "{}", answers[16].1);
    assert_eq!(
        daemon.store().reload_counts(),
        (0, 0),
        "no refused reload ran"
    );
    assert_eq!(daemon.store().meta().version, version_before);
    assert!(daemon.stop().await);
}
