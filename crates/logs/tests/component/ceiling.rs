//! The drain throughput ceiling (issue 20): how many lines a second one syslog TCP drain
//! and one HTTPS logplex drain carry to a local receiver, measured as the rate at which a
//! drain with a full queue empties it (the rate above which a longer burst drops lines).
//! The receiver starts serving only once every line is queued, so the producer never
//! shares the CPU with the drain while it is timed; it runs on its own thread and runtime,
//! so the drain's task does not share a scheduler with it.
//!
//! `cargo test --release -p spaced-logs --test component ceiling -- --ignored --nocapture`; under
//! `perf record -g` the same run shows where a drain's time goes. Ignored by default: a
//! rate on a busy machine is a measurement, not a check.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spaced_logs::{Kind, Level, Source};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const LINES: usize = 300_000;

/// Binds a listener on a thread of its own (a current-thread runtime) and returns its
/// address and the sender that starts `serve` on it (until then connections wait in the
/// backlog).
fn receiver<F, Fut>(serve: F) -> (SocketAddr, std::sync::mpsc::Sender<()>)
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let (go, went) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            if went.recv().is_ok() {
                serve(l).await;
            }
        });
    });
    (rx.recv().unwrap(), go)
}

/// A syslog receiver that reads and discards.
fn tcp_sink() -> (SocketAddr, std::sync::mpsc::Sender<()>) {
    receiver(|l| async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = vec![0u8; 1 << 16];
                while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
            });
        }
    })
}

/// An HTTPS logplex receiver (a throwaway certificate for `localhost`, written to `ca`) that
/// reads each POST whole and answers 200.
fn https_sink(ca: &std::path::Path) -> (SocketAddr, std::sync::mpsc::Sender<()>) {
    let leaf = spaced_testkit::pki::self_signed(&["localhost"]);
    std::fs::write(ca, &leaf.cert_pem).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.cert_der.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_der.into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    receiver(move |l| async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(s) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await?;
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    })
}

/// Queues `LINES` router lines (the queue holds them all) while the receiver waits, then
/// starts it and times the drain emptying the queue.
async fn ceiling(name: &str, drain: String, go: std::sync::mpsc::Sender<()>) {
    let hub = hub_with(&policy(&drain, "", LINES));
    let sent = || metric(&hub, "spaced_drain_lines_total", &["result=\"sent\""]);
    let texts: Vec<String> = (0..LINES)
        .map(|i| format!("at=info method=GET path=\"/orders/{i}\" host=api.example.com request_id=4f1c2a7e-{i:08} fwd=\"203.0.113.9\" dyno=web.1 connect=1ms service=12ms status=200 bytes=5120 protocol=http1.1 tls=false tls_version=unknown"))
        .collect();
    let t = Instant::now();
    for text in &texts {
        hub.emit(Level::Info, Source::Router, Kind::Logfmt, "api", text);
    }
    let queued = t.elapsed();
    let before = sent();
    let start = Instant::now();
    go.send(()).unwrap();
    let until = start + Duration::from_secs(600);
    while sent() < LINES as u64 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    assert_eq!(sent(), LINES as u64, "{name}: not every line was sent");
    let dropped = metric(&hub, "spaced_log_lines_dropped_total", &[]);
    assert_eq!(dropped, 0, "{name}: the queue held every line");
    let rate = (LINES as u64 - before) as f64 / took.as_secs_f64();
    eprintln!(
        "{name}: {LINES} lines queued in {queued:?} ({:.0} ns/line), {before} sent meanwhile; \
         the rest in {took:?} once the receiver started: {rate:.0} lines/s",
        queued.as_nanos() as f64 / LINES as f64,
    );
    hub.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a measurement, not a check"]
async fn syslog_tcp_drain_ceiling() {
    let (addr, go) = tcp_sink();
    ceiling(
        "syslog tcp",
        format!("[[drain]]\nurl = \"syslog://{addr}\""),
        go,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a measurement, not a check"]
async fn https_logplex_drain_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (addr, go) = https_sink(&ca);
    let drain = format!(
        "[[drain]]\nurl = \"https://localhost:{}/logs\"\nca = \"{}\"",
        addr.port(),
        ca.display()
    );
    ceiling("https logplex", drain, go).await;
}
