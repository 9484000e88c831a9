//! etcd going away never stops traffic; an instance started meanwhile serves its cache;
//! etcd back, a change made then applies everywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spaced_testkit::etcd::Etcd;

use super::{Instance, converge, get, policy, put};
use crate::harness::http;
use spaced_testkit::dyno::Backend;

const PREFIX: &str = "/spaced/outage";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_under_load_then_back() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let dyno = Backend::start("d").await;
    put(&etcd, PREFIX, "policy", &policy(1, "")).await;
    put(
        &etcd,
        PREFIX,
        "dynos/app-0/web/1",
        &format!(r#"{{"addr": "{}"}}"#, dyno.addr),
    )
    .await;
    let mut fleet: Vec<Instance> = (1..=2)
        .map(|n| Instance::start(&etcd, PREFIX, &format!("edge-{n}")))
        .collect();
    converge("the dyno", &fleet, |i| {
        matches!(get(i.router, "app-0.test"), Ok((200, _)))
    })
    .await;
    let before = fleet[0].config();
    // Each instance's revision is the store's when it read: the other's registration
    // writes count too, so they differ between instances.
    let before_restart = fleet[1].config();

    // Load on the first instance through the whole outage.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed, router) =
            (stop.clone(), ok.clone(), failed.clone(), fleet[0].router);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match get(router, "app-0.test") {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    etcd.members[0].kill();
    // The watch notices within its keepalive (2 s + 2 s); readiness stays up meanwhile.
    let start = Instant::now();
    while !fleet
        .iter()
        .all(|i| i.metrics().contains("spaced_fleet_connected 0"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still connected?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("fleet: etcd loss noticed after {:?}", start.elapsed());
    for i in &fleet {
        assert!(matches!(http(i.admin, "GET", "/readyz"), Ok((200, _))));
    }
    // /fleet says etcd is unreachable rather than hanging.
    let (status, body) = http(fleet[0].admin, "GET", "/fleet").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("etcd unreachable"), "{body}");

    // Restarted while etcd is down: it serves the cached policy and dynos.
    fleet[1].restart();
    assert!(matches!(get(fleet[1].router, "app-0.test"), Ok((200, b)) if b == "d"));
    assert_eq!(fleet[1].config()["revision"], before_restart["revision"]);

    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("fleet: during the outage {ok} requests served, {failed} failed");
    assert_eq!(failed, 0);
    assert!(ok > 0);
    let after = fleet[0].config();
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["revision"], before["revision"]);

    // etcd back: a change made now applies everywhere.
    etcd.members[0].restart();
    etcd.wait_ready(Duration::from_secs(30)).await;
    put(&etcd, PREFIX, "policy", &policy(2, "")).await;
    let start = Instant::now();
    while !fleet.iter().all(|i| i.config()["apps"] == 2) {
        // Reconnection waits out its backoff (at most 2 s, jittered) first.
        assert!(start.elapsed() < Duration::from_secs(15), "not caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "fleet: a change after etcd came back served after {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    while !fleet
        .iter()
        .all(|i| i.metrics().contains("spaced_fleet_connected 1"))
    {
        assert!(start.elapsed() < Duration::from_secs(15), "not reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
