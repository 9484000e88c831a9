//! Active health checks take a dyno out and bring it back, and publish to the DynoBoard.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::*;

const HEALTH: &str = "balance = \"round-robin\"\n\n[router.health]\ninterval = \"50ms\"\ntimeout = \"200ms\"\npath = \"/health\"\nunhealthy_after = 2\nhealthy_after = 2\n";

#[tokio::test]
async fn http_check_takes_a_dyno_out_and_back() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let r = Router::start(&space(
        HEALTH,
        &app("api", &["api.test"], &[a.addr, b.addr]),
    ))
    .await;
    a.health.store(503, Ordering::SeqCst);
    eventually("a marked down", || dyno_entry(&r, a.addr)["up"] == false).await;
    assert!(r.board.is_down(a.addr));
    assert!(!r.board.is_down(b.addr));
    let before = a.count();
    let mut c = Client::connect(r.addr).await;
    for _ in 0..10 {
        assert_eq!(c.get("api.test", "/").await.text(), "b");
    }
    assert_eq!(a.count(), before);

    a.health.store(302, Ordering::SeqCst);
    eventually("a back up", || dyno_entry(&r, a.addr)["up"] == true).await;
    assert!(!r.board.is_down(a.addr));
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(c.get("api.test", "/").await.text());
    }
    assert!(names.contains(&"a".to_string()), "{names:?}");
}

/// BEHAVIOR.md "Precise answers": a quarantined dyno counts as down for zone decisions,
/// so a connect failure puts it on the board the resolver reads, and the quarantine's end
/// takes it off (no active checks here: passive only).
#[tokio::test]
async fn a_quarantined_dyno_is_down_on_the_board_until_the_quarantine_ends() {
    let a = Backend::start("a").await;
    let dead = dead_addr().await;
    let keys = "balance = \"round-robin\"\n";
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[a.addr, dead]))).await;
    assert!(!r.board.is_down(dead));
    for _ in 0..3 {
        assert_eq!(get(r.addr, "api.test", "/").await.status, 200);
    }
    assert_eq!(dyno_entry(&r, dead)["quarantined"], true);
    assert!(
        r.board.is_down(dead),
        "a quarantined dyno must be down for the zone"
    );
    assert!(!r.board.is_down(a.addr));
    let t0 = std::time::Instant::now();
    while r.board.is_down(dead) {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "quarantine never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dyno_entry(&r, dead)["quarantined"], false);
}

#[tokio::test]
async fn tcp_check_and_fail_open_when_all_down() {
    let a = Backend::start("a").await;
    let dead = dead_addr().await;
    let keys = "\n[router.health]\ninterval = \"50ms\"\ntimeout = \"200ms\"\nunhealthy_after = 1\nhealthy_after = 1\n";
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[a.addr, dead]))).await;
    eventually("dead marked down", || dyno_entry(&r, dead)["up"] == false).await;
    assert_eq!(dyno_entry(&r, a.addr)["up"], true);
    assert!(r.board.is_down(dead));
    // Now the only live one is marked down by a check on its health path being wrong:
    // simulate by stopping it, then every dyno is down and the router fails open (tries
    // them, failing with a dyno code rather than refusing to try).
    a.stop();
    eventually("a marked down", || dyno_entry(&r, a.addr)["up"] == false).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("H21"), "{}", got.text());
}

#[tokio::test]
async fn app_health_path_overrides_and_reload_stops_checks() {
    let a = Backend::start("a").await;
    let keys = "\n[router.health]\ninterval = \"50ms\"\ntimeout = \"200ms\"\npath = \"/nope\"\nunhealthy_after = 1\nhealthy_after = 1\n";
    let text = space(
        keys,
        &format!(
            "{}health_path = \"/health\"\n",
            app("api", &["api.test"], &[])
        ),
    ) + &format!("\n[[app.dyno]]\naddr = \"{}\"\n", a.addr);
    let r = Router::start(&text).await;
    a.health.store(500, Ordering::SeqCst);
    eventually("down via the app's path", || {
        dyno_entry(&r, a.addr)["up"] == false
    })
    .await;
    // Checks removed by a reload: nothing holds the dyno down any more.
    r.reload(&space("", &app("api", &["api.test"], &[a.addr])));
    eventually("up once checks are off", || {
        dyno_entry(&r, a.addr)["up"] == true
    })
    .await;
    assert!(!r.board.is_down(a.addr));
}
