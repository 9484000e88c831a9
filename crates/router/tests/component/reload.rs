//! Reloads and shutdown: a rolling replacement of every dyno under load costs nothing,
//! removed dynos drain, client connections survive reloads, shutdown finishes in-flight
//! requests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_replacement_under_load_drops_nothing() {
    let mut generation = vec![Backend::start("g0a").await, Backend::start("g0b").await];
    let addrs: Vec<_> = generation.iter().map(|b| b.addr).collect();
    let r =
        Arc::new(Router::start(&space("retries = 2", &app("api", &["api.test"], &addrs))).await);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (r, stop, ok, failed) = (
            Arc::clone(&r),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        clients.push(tokio::spawn(async move {
            // One keep-alive connection per client for the whole test: reloads never close it.
            let mut c = Client::connect(r.addr).await;
            let path = if i % 2 == 0 { "/" } else { "/slow/15" };
            while !stop.load(Ordering::Relaxed) {
                let req = http::Request::get(path)
                    .header("host", "api.test")
                    .body(http_body_util::Full::default())
                    .unwrap();
                match c.send(req).await {
                    Ok(got) if got.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    let mut retired = Vec::new();
    // Each generation serves the clients for a while before the next replaces it: wait for
    // answered requests, not for a fixed time.
    let served_some = || {
        let ok = Arc::clone(&ok);
        async move {
            let before = ok.load(Ordering::Relaxed);
            eventually("the clients are served", || {
                ok.load(Ordering::Relaxed) >= before + 8
            })
            .await;
        }
    };
    for round in 1..=3 {
        served_some().await;
        let next = vec![
            Backend::start(&format!("g{round}a")).await,
            Backend::start(&format!("g{round}b")).await,
        ];
        let addrs: Vec<_> = next.iter().map(|b| b.addr).collect();
        r.reload(&space("retries = 2", &app("api", &["api.test"], &addrs)));
        eventually("new dynos get traffic", || {
            next.iter().all(|b| b.count() > 0)
        })
        .await;
        // The old ones are left running (their in-flight requests finish) and get nothing new.
        // Requests routed before the swap may still be on their way on a busy machine: let
        // them land before counting.
        let old = std::mem::replace(&mut generation, next);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let counts: Vec<usize> = old.iter().map(Backend::count).collect();
        // The pause is the test: a window in which a removed dyno must get nothing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let later: Vec<usize> = old.iter().map(Backend::count).collect();
        assert_eq!(
            counts, later,
            "round {round}: a removed dyno got new requests"
        );
        retired.extend(old);
    }
    served_some().await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        within("client", c).await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) > 20);
    // Drained: the pooled connections to removed dynos are closed.
    for b in &retired {
        eventually("old pooled connections closed", || {
            b.open.load(Ordering::SeqCst) == 0
        })
        .await;
    }
    let dynos = r.handle.dynos_json();
    assert_eq!(dynos.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn reload_keeps_idle_client_connections_open() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[a.addr]))).await;
    let mut c = Client::connect(r.addr).await;
    assert_eq!(c.get("api.test", "/").await.text(), "a");
    r.reload(&space(
        "",
        &app("api", &["api.test", "new.test"], &[b.addr]),
    ));
    // Same connection, new policy at once.
    assert_eq!(c.get("api.test", "/").await.text(), "b");
    assert_eq!(c.get("new.test", "/").await.text(), "b");
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_stops_accepting() {
    let a = Backend::start("a").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[a.addr]))).await;
    let addr = r.addr;
    let mut c = Client::connect(addr).await;
    let slow = tokio::spawn(async move { c.get("api.test", "/slow/300").await });
    // In flight once the dyno has it (it records a request before its pause).
    eventually("the slow request reaches the dyno", || a.count() == 1).await;
    r.shutdown.cancel();
    let got = within("in-flight", slow).await.unwrap();
    assert_eq!(got.status, 200);
    // The listener closes once the accept loop sees the cancellation.
    eventually("the listener is closed", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn shutdown_answers_an_idle_keep_alive_connections_next_request_with_close() {
    let a = Backend::start("a").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[a.addr]))).await;
    let mut c = Client::connect(r.addr).await;
    assert_eq!(c.get("api.test", "/").await.status, 200);
    // The connection is idle when the stop begins: it stays open for the next request,
    // which is answered and marked as the last, so the client reconnects elsewhere.
    r.shutdown.cancel();
    // The pause is the test: the stop has reached the idle connection before its next
    // request (nothing to observe from outside but time).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = c.get("api.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
}

#[tokio::test]
async fn pooled_connections_close_after_pool_idle() {
    let a = Backend::start("a").await;
    let keys = "\n[router.timeouts]\npool_idle = \"200ms\"\n";
    let r = Router::start(&space(keys, &app("api", &["api.test"], &[a.addr]))).await;
    let mut c = Client::connect(r.addr).await;
    assert_eq!(c.get("api.test", "/").await.status, 200);
    assert_eq!(c.get("api.test", "/").await.status, 200);
    // Both requests went over one pooled connection.
    assert_eq!(a.connections.load(Ordering::SeqCst), 1);
    eventually("idle pooled connection closed", || {
        a.open.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn pooled_connections_closed_by_the_dyno_are_dropped() {
    let a = Backend::start("a").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[a.addr]))).await;
    let mut c = Client::connect(r.addr).await;
    assert_eq!(c.get("api.test", "/").await.status, 200);
    eventually("pooled", || {
        let mut m = String::new();
        r.handle.render_metrics(&mut m);
        m.contains("spaced_router_pool_idle_connections{app=\"api\",dyno=\"web.1\"")
            && m.contains("\"} 1\n")
    })
    .await;
    // The dyno goes away (closing its connections): the sweep notices and drops the pooled one.
    a.stop();
    eventually("pool emptied", || {
        let mut m = String::new();
        r.handle.render_metrics(&mut m);
        m.lines().any(|l| {
            l.starts_with("spaced_router_pool_idle_connections{app=\"api\"") && l.ends_with(" 0")
        })
    })
    .await;
}
