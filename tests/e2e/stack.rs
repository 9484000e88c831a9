//! One policy file driving every component of an in-process daemon: router, resolver,
//! egress and admin together, and a rolling replacement of every dyno by file edits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use spaced::{Daemon, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::harness::{ConfigDir, http};
use spaced_testkit::dyno::Backend;

const T: Duration = Duration::from_secs(10);

fn dynos(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("[[app.dyno]]\naddr = \"{}\"\n", b.addr))
        .collect()
}

fn stack_policy(backends: &[Backend]) -> String {
    format!(
        r#"
[space]
name = "stack"
internal = ["127.0.0.0/8"]
trusted = ["127.0.0.0/8"]

[router]
listen = ["127.0.0.1:0"]
internal_listen = ["127.0.0.1:0"]

[resolver]
listen = ["127.0.0.1:0"]

[egress]
listen = ["127.0.0.1:0"]
socks_listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.10"]
default_deny = false

[admin]
listen = "127.0.0.1:0"

[[app]]
name = "api"
hosts = ["api.example.com"]
{}
"#,
        dynos(backends)
    )
}

async fn start(dir: &ConfigDir, text: &str) -> Daemon {
    dir.write_atomic("spaced.toml", text);
    let mut opts = Options::new(dir.path("spaced.toml"));
    opts.watch = false;
    opts.grace = Some(Duration::from_secs(5));
    timeout(T, Daemon::start(opts)).await.unwrap().unwrap()
}

/// GET through the router on a fresh connection: (status, body).
async fn get(router: SocketAddr, host: &str) -> (u16, String) {
    let tcp = TcpStream::connect(router).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One request on a fresh connection: its status, or why there was none.
async fn fresh_get(router: SocketAddr, host: &str) -> Result<u16, String> {
    let tcp = TcpStream::connect(router)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_policy_drives_router_resolver_egress_and_admin() {
    let backends = vec![Backend::start("one").await, Backend::start("two").await];
    let dir = ConfigDir::new();
    let daemon = start(&dir, &stack_policy(&backends)).await;
    let bound = daemon.addrs().bound.clone();
    let admin = daemon.addrs().admin.unwrap();

    // Router: spread over both dynos, Heroku headers on the way.
    let mut names = std::collections::HashSet::new();
    for _ in 0..20 {
        let (status, body) = timeout(T, get(bound.router[0], "api.example.com"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        names.insert(body);
    }
    assert_eq!(names.len(), 2, "both dynos got traffic: {names:?}");
    let seen = backends[0].requests();
    let first = seen.first().unwrap();
    assert_eq!(first.headers["x-forwarded-for"], "127.0.0.1");
    assert!(first.headers.contains_key("x-request-id"));

    // Resolver: the web dynos of app api, from the same policy.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut q = Message::query();
    q.add_query(Query::query(
        Name::from_ascii("web.api.app.localspace.").unwrap(),
        RecordType::A,
    ));
    udp.send_to(&q.to_vec().unwrap(), bound.resolver[0])
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(T, udp.recv_from(&mut buf)).await.unwrap().unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    let ips: Vec<IpAddr> = answer
        .answers
        .iter()
        .filter_map(|r| r.data.ip_addr())
        .collect();
    assert_eq!(
        ips,
        vec![IpAddr::from([127, 0, 0, 1])],
        "dynos sharing an IP give one record"
    );

    // Egress: CONNECT leaves from the space's source IP.
    let mut tunnel = TcpStream::connect(bound.egress[0]).await.unwrap();
    let target = backends[1].addr;
    tunnel
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = timeout(T, tunnel.read(&mut head)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    tunnel
        .write_all(b"GET /via-egress HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    timeout(T, tunnel.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let via = backends[1]
        .requests()
        .into_iter()
        .find(|s| s.path == "/via-egress")
        .unwrap();
    assert_eq!(via.peer.ip(), IpAddr::from([127, 0, 0, 10]));
    // A tunnel still open would (rightly) hold the drain below until the grace period.
    drop(tunnel);

    // Admin: every component's metrics and state in one place.
    let (status, metrics) =
        tokio::task::spawn_blocking(move || http(admin, "GET", "/metrics").unwrap())
            .await
            .unwrap();
    assert_eq!(status, 200);
    for family in [
        "spaced_config_version",
        "spaced_router_",
        "spaced_dns_",
        "spaced_egress_",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics");
    }
    let (status, dynos) =
        tokio::task::spawn_blocking(move || http(admin, "GET", "/dynos").unwrap())
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert!(dynos.contains(&backends[0].addr.to_string()), "{dynos}");
    let (status, nat) = tokio::task::spawn_blocking(move || http(admin, "GET", "/nat").unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let nat: serde_json::Value = serde_json::from_str(&nat).unwrap();
    assert_eq!(nat["state"], "enabled");
    assert!(nat.to_string().contains("127.0.0.10"), "{nat}");
    assert!(timeout(T, daemon.stop()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_replacement_of_every_dyno_by_file_edits_fails_no_request() {
    let dir = ConfigDir::new();
    let mut generations = Vec::new();
    for g in 0..4 {
        generations.push(vec![
            Backend::start(&format!("g{g}a")).await,
            Backend::start(&format!("g{g}b")).await,
        ]);
    }
    let daemon = Arc::new(start(&dir, &stack_policy(&generations[0])).await);
    let router = daemon.addrs().bound.router[0];

    // A client sending requests without pause on one keep-alive connection, plus one
    // opening a fresh connection for every request (a reload must not break the accept
    // path either), counting failures.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let fresh_ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let tcp = TcpStream::connect(router).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get("/")
                    .header("host", "api.example.com")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                match send.send_request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = resp.into_body().collect().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => {
                        eprintln!("failed request: {}", resp.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed request: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        })
    };
    let fresh = {
        let (stop, ok, failed) = (stop.clone(), fresh_ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match fresh_get(router, "api.example.com").await {
                    Ok(200) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(status) => {
                        eprintln!("failed fresh request: {status}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed fresh request: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // Each generation serves both clients for a while before the next replaces it: wait
    // for requests to be answered under it rather than for a fixed time.
    let served_some = || {
        let (ok, fresh_ok) = (ok.clone(), fresh_ok.clone());
        async move {
            let (k, f) = (ok.load(Ordering::Relaxed), fresh_ok.load(Ordering::Relaxed));
            spaced_testkit::eventually("both clients are served under this generation", || {
                ok.load(Ordering::Relaxed) >= k + 20 && fresh_ok.load(Ordering::Relaxed) >= f + 5
            })
            .await;
        }
    };
    for generation in &generations[1..] {
        served_some().await;
        dir.write_atomic("spaced.toml", &stack_policy(generation));
        let applied = daemon.reload().await.unwrap();
        assert!(matches!(applied, spaced_config::Applied::Swapped(_)));
    }
    served_some().await;
    stop.store(true, Ordering::Relaxed);
    timeout(T, client).await.unwrap().unwrap();
    timeout(T, fresh).await.unwrap().unwrap();

    assert_eq!(failed.load(Ordering::Relaxed), 0, "zero failed requests");
    assert!(ok.load(Ordering::Relaxed) > 50, "the client kept going");
    assert!(
        fresh_ok.load(Ordering::Relaxed) > 10,
        "the fresh-connection client kept going"
    );
    let last = &generations[3];
    assert!(
        last.iter().all(|b| !b.requests().is_empty()),
        "the new dynos get traffic"
    );
    let before = generations[0]
        .iter()
        .map(|b| b.requests().len())
        .sum::<usize>();
    let (status, _) = get(router, "api.example.com").await;
    assert_eq!(status, 200);
    let after = generations[0]
        .iter()
        .map(|b| b.requests().len())
        .sum::<usize>();
    assert_eq!(before, after, "removed dynos get no new request");
}
