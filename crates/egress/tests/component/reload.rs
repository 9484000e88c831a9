//! Reloads: new connections follow the new pool and policy; removing a source IP moves
//! only the apps pinned to it; open tunnels keep running.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use crate::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn apps(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[app]]\nname = \"app-{i}\"\negress_token = \"t{i}\"\n"))
        .collect()
}

fn space(pool: &[&str], deny: &str, n: usize) -> String {
    let pool: Vec<String> = pool.iter().map(|p| format!("\"{p}\"")).collect();
    config(
        &format!("source_ips = [{}]\n{deny}", pool.join(", ")),
        &apps(n),
    )
}

async fn source_of(gw: &Gateway, who: &Whoami, i: usize) -> String {
    let (s, head) = http_connect(
        "127.0.0.1",
        gw.http(),
        &who.addr.to_string(),
        Some((&format!("app-{i}"), &format!("t{i}"))),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "app-{i}: {head}");
    get_through(s).await
}

/// An open CONNECT tunnel of app-0 to `who`.
async fn app0_tunnel(gw: &Gateway, who: &Whoami) -> tokio::net::TcpStream {
    let (s, head) = http_connect(
        "127.0.0.1",
        gw.http(),
        &who.addr.to_string(),
        Some(("app-0", "t0")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

#[tokio::test]
async fn removing_a_source_moves_only_its_apps_and_keeps_open_tunnels() {
    const N: usize = 12;
    let three = ["127.0.0.10", "127.0.0.11", "127.0.0.12"];
    let two = ["127.0.0.10", "127.0.0.11"];
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space(&three, "default_deny = false", N)).await;
    let mut before = Vec::new();
    for i in 0..N {
        let got = source_of(&gw, &who, i).await;
        assert_eq!(got, pinned(&format!("app-{i}"), &three));
        before.push(got);
    }
    assert!(
        before.iter().any(|s| s == "127.0.0.12"),
        "no app on the IP to remove"
    );
    assert!(before.iter().any(|s| s != "127.0.0.12"));

    // A tunnel opened before the reload...
    let mut held = app0_tunnel(&gw, &who).await;

    gw.reload(&space(&two, "default_deny = false", N));
    for (i, was) in before.iter().enumerate() {
        let now = source_of(&gw, &who, i).await;
        if was == "127.0.0.12" {
            assert_eq!(
                now,
                pinned(&format!("app-{i}"), &two),
                "app-{i} moved elsewhere"
            );
        } else {
            assert_eq!(&now, was, "app-{i} moved though its IP stayed");
        }
    }

    // ...keeps running after it.
    within(held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap();
    let mut resp = Vec::new();
    within(held.read_to_end(&mut resp)).await.unwrap();
    assert!(String::from_utf8_lossy(&resp).ends_with(before[0].as_str()));
}

#[tokio::test]
async fn a_new_deny_rule_applies_to_new_connections() {
    let who = Whoami::start("127.0.0.1:0").await;
    let pool = ["127.0.0.10", "127.0.0.11"];
    let gw = Gateway::start(&space(&pool, "default_deny = false", 1)).await;
    assert_eq!(source_of(&gw, &who, 0).await, pinned("app-0", &pool));
    gw.reload(&space(&pool, "deny = [\"127.0.0.1/32\"]", 1));
    let seen = who.count();
    let (_s, head) = http_connect(
        "127.0.0.1",
        gw.http(),
        &who.addr.to_string(),
        Some(("app-0", "t0")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(who.count(), seen);
}

#[tokio::test]
async fn an_unusable_source_passes_to_the_next_in_rendezvous_order() {
    // 192.0.2.1 (TEST-NET-1) is on no interface: the kernel refuses to route from it to
    // loopback before any packet leaves, and the app goes to its second choice.
    let pool = ["192.0.2.1", "127.0.0.10"];
    let who = Whoami::start("127.0.0.1:0").await;
    let n = 8;
    let gw = Gateway::start(&space(&pool, "default_deny = false", n)).await;
    let i = (0..n)
        .find(|i| pinned(&format!("app-{i}"), &pool) == "192.0.2.1")
        .expect("an app pinned to the unusable address");
    assert_eq!(source_of(&gw, &who, i).await, "127.0.0.10");
    let nat = gw.handle.nat_json();
    let bad = nat["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ip"] == "192.0.2.1")
        .unwrap();
    assert_eq!(bad["unusable"], 1);
    assert_eq!(bad["connections"], 0);
}

/// A source a reload removed is reported (`in_pool: false`) while tunnels from it stay
/// open, then leaves `/nat` and `/metrics`: rotating the pool does not grow them for ever.
#[tokio::test]
async fn a_removed_source_is_reported_until_its_tunnels_end() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space(&["127.0.0.10"], "default_deny = false", 1)).await;
    let mut held = app0_tunnel(&gw, &who).await;
    gw.reload(&space(&["127.0.0.11"], "default_deny = false", 1));
    let reported = |gw: &Gateway| {
        let nat = gw.handle.nat_json();
        let sources = nat["sources"].as_array().unwrap().clone();
        sources
            .iter()
            .map(|s| {
                (
                    s["ip"].as_str().unwrap().to_owned(),
                    s["in_pool"].as_bool().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reported(&gw),
        [
            ("127.0.0.11".to_owned(), true),
            ("127.0.0.10".to_owned(), false)
        ]
    );
    // The tunnel ends (the destination answers and closes).
    within(held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap();
    let mut resp = Vec::new();
    within(held.read_to_end(&mut resp)).await.unwrap();
    drop(held);
    for _ in 0..250 {
        if reported(&gw).len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(reported(&gw), [("127.0.0.11".to_owned(), true)]);
    let mut m = String::new();
    gw.handle.render_metrics(&mut m);
    assert!(!m.contains("127.0.0.10"), "{m}");
}
