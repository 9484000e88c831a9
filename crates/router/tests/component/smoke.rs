//! A throughput smoke check, ignored by default (it is a tiny load run): N requests over
//! 16 keep-alive connections through the router to 3 in-process dynos, printing the whole
//! process's CPU time per request (router + dynos + client: an upper bound for the router).
//! `cargo test --release -p spaced-router --test component smoke -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use crate::harness::*;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a small load run; run by hand"]
async fn smoke_throughput() {
    let bs = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    let addrs: Vec<_> = bs.iter().map(|b| b.addr).collect();
    let r = Router::start(&space("", &app("api", &["api.test"], &addrs))).await;
    let n_conns = 16;
    let per_conn = 3000;
    // Baseline: the same load straight to one dyno (client + dyno cost only).
    let direct = run(bs[0].addr, n_conns, per_conn).await;
    let proxied = run(r.addr, n_conns, per_conn).await;
    println!(
        "direct {direct:.1} us/req, proxied {proxied:.1} us/req: router about {:.1} us CPU per request",
        proxied - direct
    );
}

/// CPU µs per request (whole process) for `per_conn` requests on each of `n_conns`.
async fn run(addr: std::net::SocketAddr, n_conns: usize, per_conn: usize) -> f64 {
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n_conns {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for _ in 0..per_conn {
                assert_eq!(c.get("api.test", "/").await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = (n_conns * per_conn) as f64;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{addr}: {n} requests in {wall:.2}s: {:.0} req/s, {:.1} us CPU per request (whole process)",
        n / wall,
        cpu * 1e6 / n
    );
    cpu * 1e6 / n
}
