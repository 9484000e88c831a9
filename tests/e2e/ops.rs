//! Running spaced as infrastructure (issues 18 and 19, the admin part): the probe
//! listener, the process and build metrics, the bounds and Host check of the admin
//! listener, secrets read from files, and what a newcomer meets on the command line.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spaced::{Daemon, Options};
use tokio::time::timeout;

use crate::harness::backend::Backend;
use crate::harness::{ConfigDir, bin, wait_for};

const T: Duration = Duration::from_secs(10);

/// One request with `Connection: close` and the given `Host` line (or none): the answer.
fn ask(addr: SocketAddr, request_line: &str, host: Option<&str>) -> String {
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

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn start(dir: &ConfigDir, text: &str, watch: bool) -> Daemon {
    dir.write_atomic("spaced.toml", text);
    let mut opts = Options::new(dir.path("spaced.toml"));
    opts.watch = watch;
    opts.grace = Duration::from_secs(2);
    timeout(T, Daemon::start(opts)).await.unwrap().unwrap()
}

fn admin_policy(extra: &str) -> String {
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
    // An unchanged file reloaded is a successful load too: the time moves, the version not.
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

/// Whether the server closed `s` (EOF or reset), waiting up to `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn timeouts(client_header: &str, keepalive: &str) -> String {
    format!(
        "\n[router.timeouts]\nclient_header = \"{client_header}\"\nkeepalive = \"{keepalive}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_beyond_the_cap_are_closed_at_once() {
    let dir = ConfigDir::new();
    // Long enough that only the cap can close anything during the test.
    let text = admin_policy("probe_listen = [\"127.0.0.1:0\"]\n") + &timeouts("60s", "60s");
    let daemon = start(&dir, &text, false).await;
    let admin = daemon.addrs().admin.unwrap();
    let probe = daemon.addrs().probe[0];
    let cap = spaced::admin::MAX_CONNECTIONS;
    tokio::task::spawn_blocking(move || {
        let mut conns: Vec<TcpStream> = (0..250)
            .map(|_| TcpStream::connect(admin).unwrap())
            .collect();
        let mut open = Vec::new();
        let mut closed = 0;
        for mut s in conns.drain(..) {
            if closed_within(&mut s, Duration::from_millis(300)) {
                closed += 1;
            } else {
                open.push(s);
            }
        }
        assert_eq!(closed, 250 - cap, "closed at once");
        assert_eq!(open.len(), cap);
        // The probe listener has its own cap: a full admin listener does not blind kubelet.
        assert_eq!(status(&ask(probe, "GET /readyz HTTP/1.1", None)), 200);
        let metrics = ask(probe, "GET /metrics HTTP/1.1", None);
        let over = format!(
            "spaced_admin_connections_cut_total{{listener=\"admin\",reason=\"over_limit\"}} {}\n",
            250 - cap
        );
        assert!(metrics.contains(&over), "{over} in:\n{metrics}");
        // A slot freed is a slot for the next client.
        drop(open.pop());
        wait_for("a freed admin slot", T, || {
            TcpStream::connect(admin)
                .map(|mut s| {
                    write!(
                        s,
                        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let mut text = String::new();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let _ = s.read_to_string(&mut text);
                    text.starts_with("HTTP/1.1 200")
                })
                .unwrap_or(false)
        });
    })
    .await
    .unwrap();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_dripping_and_idle_connections_are_cut() {
    let dir = ConfigDir::new();
    let text = admin_policy("probe_listen = [\"127.0.0.1:0\"]\n") + &timeouts("1s", "2s");
    let daemon = start(&dir, &text, false).await;
    let admin = daemon.addrs().admin.unwrap();
    let probe = daemon.addrs().probe[0];
    tokio::task::spawn_blocking(move || {
        for addr in [admin, probe] {
            // Silent: never a byte. Cut by client_header, counted from accept (those
            // beyond the cap at once).
            let mut silent: Vec<TcpStream> = (0..250)
                .map(|_| TcpStream::connect(addr).unwrap())
                .collect();
            let started = Instant::now();
            for s in &mut silent {
                let left = Duration::from_secs(20).saturating_sub(started.elapsed());
                assert!(
                    closed_within(s, left.max(Duration::from_millis(1))),
                    "{addr}: silent connection held"
                );
            }
            // Dripping: a byte of a head every 200 ms, which would never end by itself.
            let mut drip = TcpStream::connect(addr).unwrap();
            drip.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            drip.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                .unwrap();
            let started = Instant::now();
            let mut cut = false;
            let mut buf = [0u8; 256];
            while started.elapsed() < Duration::from_secs(20) {
                if drip.write_all(b"X").is_err() {
                    cut = true;
                    break;
                }
                match drip.read(&mut buf) {
                    Ok(0) => {
                        cut = true;
                        break;
                    }
                    Ok(n) => panic!("{addr}: answered a head never finished: {:?}", &buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {
                        cut = true;
                        break;
                    }
                }
            }
            assert!(cut, "{addr}: a dripping head was held for 20 s");
            // Idle after an answer: cut by keepalive.
            let mut idle = TcpStream::connect(addr).unwrap();
            idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let n = idle.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{addr}");
            assert!(
                closed_within(&mut idle, Duration::from_secs(20)),
                "{addr}: idle connection held"
            );
        }
    })
    .await
    .unwrap();
    daemon.stop().await;
}

/// `user:password` as HTTP Basic credentials.
fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// GET through the egress forward proxy as app `api` with `token`: the status.
fn via_egress(egress: SocketAddr, backend: SocketAddr, token: &str) -> u16 {
    let mut s = TcpStream::connect(egress).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET http://{backend}/via-egress HTTP/1.1\r\nHost: {backend}\r\nProxy-Authorization: Basic {}\r\nConnection: close\r\n\r\n",
        basic("api", token)
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    status(&String::from_utf8_lossy(&buf))
}

/// Kubernetes' Secret volume update: the data goes to a new timestamped directory, a
/// `..data_tmp` symlink to it is renamed over `..data`, the old directory is removed.
fn kubernetes_swap(secrets: &std::path::Path, generation: u32, token: &str) {
    let data = secrets.join(format!("..2026_12_07_{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("api.token"), format!("{token}\n")).unwrap();
    let tmp = secrets.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
    let old = std::fs::read_link(secrets.join("..data")).ok();
    std::fs::rename(&tmp, secrets.join("..data")).unwrap();
    if let Some(old) = old {
        std::fs::remove_dir_all(secrets.join(old)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_replaces_the_old_token() {
    let backend = Backend::start("dest").await;
    let dir = ConfigDir::new();
    let secrets = dir.path("secrets");
    std::fs::create_dir(&secrets).unwrap();
    kubernetes_swap(&secrets, 1, "old-token");
    std::os::unix::fs::symlink("..data/api.token", secrets.join("api.token")).unwrap();
    let text = r#"
[space]
name = "ops"
internal = ["127.0.0.0/8"]

[egress]
listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.1"]
deny = []

[admin]
listen = "127.0.0.1:0"

[[app]]
name = "api"
egress_token_file = "secrets/api.token"
"#;
    let daemon = start(&dir, text, true).await;
    let egress = daemon.addrs().bound.egress[0];
    let to = backend.addr;
    let ask_with = move |token: &'static str| {
        tokio::task::spawn_blocking(move || via_egress(egress, to, token))
    };
    assert_eq!(ask_with("old-token").await.unwrap(), 200);
    assert_eq!(ask_with("new-token").await.unwrap(), 407);

    kubernetes_swap(&secrets, 2, "new-token");
    let waited = Instant::now();
    while ask_with("old-token").await.unwrap() != 407 {
        assert!(
            waited.elapsed() < T,
            "the old token still works after the swap"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ask_with("new-token").await.unwrap(), 200);
    assert_eq!(daemon.store().meta().version, 2);

    // An emptied secret is rejected without a word of what it held; the token in force
    // keeps working.
    kubernetes_swap(&secrets, 3, "");
    let waited = Instant::now();
    while daemon.store().meta().last_error.is_none() {
        assert!(
            waited.elapsed() < T,
            "the empty token file was not rejected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = daemon.store().meta().last_error.clone().unwrap();
    assert!(error.contains("the file is empty"), "{error}");
    assert!(
        error.contains(":16:21: "),
        "located at the key's value: {error}"
    );
    assert_eq!(ask_with("new-token").await.unwrap(), 200);
    daemon.stop().await;
}

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
