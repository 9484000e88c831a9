//! The admin listener's HTTP surface: HEAD on every GET endpoint, 405 with `Allow`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use spaced::{Daemon, Options};
use tokio::time::timeout;

use crate::harness::ConfigDir;

const T: Duration = Duration::from_secs(10);

/// One request with `Connection: close`; the whole answer as text.
fn exchange(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// A daemon with nothing but the admin listener (kept alive by the returned values).
async fn admin_only() -> (ConfigDir, Daemon, SocketAddr) {
    let dir = ConfigDir::new();
    dir.write_atomic(
        "spaced.toml",
        "[space]\nname = \"admin\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut opts = Options::new(dir.path("spaced.toml"));
    opts.watch = false;
    let daemon = timeout(T, Daemon::start(opts)).await.unwrap().unwrap();
    let admin = daemon.addrs().admin.unwrap();
    (dir, daemon, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_get_without_a_body_and_405_names_the_allowed_methods() {
    let (_dir, daemon, admin) = admin_only().await;
    let answers = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for path in [
            "/healthz", "/readyz", "/metrics", "/config", "/dynos", "/nat",
        ] {
            out.push((path, exchange(admin, "HEAD", path)));
        }
        out.push(("DELETE /config", exchange(admin, "DELETE", "/config")));
        out.push(("GET /reload", exchange(admin, "GET", "/reload")));
        out
    })
    .await
    .unwrap();
    for (what, text) in &answers[..6] {
        assert!(text.starts_with("HTTP/1.1 200 "), "HEAD {what}: {text}");
        assert!(
            text.ends_with("\r\n\r\n"),
            "HEAD {what} has no body: {text}"
        );
    }
    let (_, delete) = &answers[6];
    assert!(delete.starts_with("HTTP/1.1 405 "), "{delete}");
    assert!(delete.contains("\r\nallow: GET, HEAD\r\n"), "{delete}");
    let (_, get_reload) = &answers[7];
    assert!(get_reload.starts_with("HTTP/1.1 405 "), "{get_reload}");
    assert!(get_reload.contains("\r\nallow: POST\r\n"), "{get_reload}");
    assert!(timeout(T, daemon.stop()).await.unwrap());
}

/// `/config` and `/nat` list their keys in the spec's order (BEHAVIOR.md "Admin listener"),
/// for readers that compare text rather than parse JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_keys_come_in_the_spec_order() {
    let (_dir, _daemon, admin) = admin_only().await;
    let (config, nat) = tokio::task::spawn_blocking(move || {
        (
            exchange(admin, "GET", "/config"),
            exchange(admin, "GET", "/nat"),
        )
    })
    .await
    .unwrap();
    let body = |text: &str| text.split_once("\r\n\r\n").unwrap().1.to_owned();
    let keys = |json: &str, names: &[&str]| {
        let at: Vec<usize> = names
            .iter()
            .map(|k| json.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
    };
    keys(
        &body(&config),
        &[
            "version",
            "sha256",
            "loaded_at",
            "last_error",
            "apps",
            "dynos",
        ],
    );
    keys(&body(&nat), &["state", "sources"]);
}

/// While a stop drains in-flight work, the admin listener stays up and `/readyz` answers
/// 503, so a load balancer or orchestrator sees the drain; it closes after the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_a_stop_drains() {
    // A dyno that accepts and never answers keeps one request in flight.
    let dyno = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = ConfigDir::new();
    dir.write_atomic(
        "spaced.toml",
        &format!(
            "[space]\nname = \"drain\"\n\n[router]\nlisten = [\"127.0.0.1:0\"]\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n[[app]]\nname = \"api\"\nhosts = [\"api.test\"]\n\n\
             [[app.dyno]]\nprocess = \"web\"\naddr = \"{}\"\n",
            dyno.local_addr().unwrap()
        ),
    );
    let mut opts = Options::new(dir.path("spaced.toml"));
    opts.watch = false;
    opts.grace = Duration::from_secs(2);
    let daemon = timeout(T, Daemon::start(opts)).await.unwrap().unwrap();
    let (admin, router) = (
        daemon.addrs().admin.unwrap(),
        daemon.addrs().bound.router[0],
    );
    let mut client = TcpStream::connect(router).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n")
        .unwrap();
    let (_held, _) = dyno.accept().unwrap();
    let stop = tokio::spawn(daemon.stop());
    let during = tokio::task::spawn_blocking(move || {
        let mut last = String::new();
        for _ in 0..50 {
            last = exchange(admin, "GET", "/readyz");
            if last.starts_with("HTTP/1.1 503 ") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    })
    .await
    .unwrap();
    assert!(during.starts_with("HTTP/1.1 503 "), "{during}");
    // The request never ends: the drain runs out its grace, then the admin listener closes.
    assert!(!timeout(T, stop).await.unwrap().unwrap());
    assert!(TcpStream::connect_timeout(&admin, Duration::from_secs(2)).is_err());
    drop(client);
}
