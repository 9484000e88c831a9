//! How many lines one drain carries (issue 20's ceiling), for a profile rather than a
//! timing: `cargo test --release -p spaced-logs --test component throughput -- --ignored --nocapture`
//! under `valgrind --tool=callgrind` gives instructions per line of each drain's task.
//! Ignored by default: it proves nothing a busy machine could not spoil.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const LINES: usize = 200_000;

async fn sink_tcp() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = vec![0u8; 1 << 16];
                while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
            });
        }
    });
    a
}

async fn sink_http() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await?;
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    a
}

async fn run(url: String) {
    let hub = hub_with(&policy(&format!("[[drain]]\nurl = \"{url}\""), "", LINES));
    let t = Instant::now();
    for i in 0..LINES {
        line(&hub, "api", i);
    }
    let emitted = t.elapsed();
    let sent = || metric(&hub, "spaced_drain_lines_total", &["result=\"sent\""]);
    assert!(eventually(600, || sent() == LINES as u64).await);
    let all = t.elapsed();
    eprintln!(
        "{url}: {LINES} lines emitted in {emitted:?} ({:.0} ns/line on the hot path), delivered in {all:?} ({:.0} lines/s)",
        emitted.as_nanos() as f64 / LINES as f64,
        LINES as f64 / all.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn one_syslog_tcp_drain() {
    run(format!("syslog://{}", sink_tcp().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn one_logplex_http_drain() {
    run(format!("http://{}/", sink_http().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn one_otlp_http_drain() {
    run(format!("otlp+http://{}", sink_http().await)).await;
}
