//! `tls-storm`: a TLS 1.3 handshake load generator light enough that one client core can
//! saturate one server core (issue 22). `openssl s_time` costs ~760 µs of client CPU per
//! handshake, more than any server spends, so three of them on one core capped every
//! server below its own core; here one `current_thread` runtime keeps CONCURRENCY
//! connections in flight, each doing connect, TLS 1.3 handshake, one `Connection: close`
//! request, read to EOF, close.
//!
//! The library is the generator; `src/main.rs` only parses the command line and prints
//! [`Report::to_json`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::task::JoinSet;
use tokio::time::Instant;

mod conn;
mod cpu;
mod pin;
mod tally;
mod tickets;
mod tls;

pub use tally::Report;
pub use tls::{Group, TlsError, Trust, certs_from_pem, client_config, roots_from_pem};

/// What to run: where, how many connections at once, for how long.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server's address.
    pub connect: SocketAddr,
    /// The name sent in SNI and checked against the certificate.
    pub sni: ServerName<'static>,
    /// The request's `Host` header.
    pub host: String,
    /// The request's path.
    pub path: String,
    /// Connections in flight at once.
    pub concurrency: usize,
    /// Measured time, after the warm-up.
    pub secs: Duration,
    /// Time run but not measured (the first handshakes, before tickets exist).
    pub warmup: Duration,
    /// Bound on each step (connect, handshake, write, read to EOF).
    pub step_timeout: Duration,
    /// Local addresses to connect from, in turn (empty: the kernel picks): more source
    /// addresses, more ephemeral ports, when one address's ports run out.
    pub sources: Vec<IpAddr>,
}

/// Why a run could not start (a failed connection is counted, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Zero connections in flight would measure nothing.
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    /// A zero-length measured window gives no rate.
    #[error("the measured time must be longer than zero")]
    NoTime,
    /// The process CPU clock could not be read.
    #[error("read the process CPU clock")]
    Clock(#[source] std::io::Error),
}

/// What every connection task shares, read-only.
struct Plan {
    connect: SocketAddr,
    sni: ServerName<'static>,
    request: Vec<u8>,
    step_timeout: Duration,
    sources: Vec<IpAddr>,
    connector: tokio_rustls::TlsConnector,
    /// Completions before this are warm-up, not counted.
    measure_from: Instant,
    /// No connection starts at or after this; completions after it are the tail.
    until: Instant,
}

/// Runs the storm and returns what it measured. Call it on a `current_thread` runtime
/// (the generator is meant to use one core; the CPU it reports is the whole process's).
pub async fn run(opts: &Options, config: Arc<rustls::ClientConfig>) -> Result<Report, RunError> {
    if opts.concurrency == 0 {
        return Err(RunError::NoConcurrency);
    }
    if opts.secs.is_zero() {
        return Err(RunError::NoTime);
    }
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let until = measure_from + opts.secs;
    let plan = Arc::new(Plan {
        connect: opts.connect,
        sni: opts.sni.clone(),
        request: format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            opts.path, opts.host
        )
        .into_bytes(),
        step_timeout: opts.step_timeout,
        sources: opts.sources.clone(),
        connector: tokio_rustls::TlsConnector::from(config),
        measure_from,
        until,
    });
    let mut tasks = JoinSet::new();
    for i in 0..opts.concurrency {
        tasks.spawn(conn::worker(Arc::clone(&plan), i));
    }
    // The CPU clock is read at the window's edges, so warm-up and the tail (connections
    // still in flight at the end) are not charged to the counted handshakes.
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = cpu::process_cpu().map_err(RunError::Clock)?;
    tokio::time::sleep_until(until).await;
    let cpu1 = cpu::process_cpu().map_err(RunError::Clock)?;
    let mut total = tally::Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(t) => total.merge(t),
            // A worker cannot panic on input (every step returns a Result); if one did,
            // the run still reports what the others counted.
            Err(e) => total.note_error(Instant::now(), format!("worker task: {e}")),
        }
    }
    Ok(total.report(opts.secs, cpu1.saturating_sub(cpu0)))
}
