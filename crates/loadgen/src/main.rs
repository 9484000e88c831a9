//! `tls-storm`: TLS 1.3 handshakes against one server, as fast as one core allows, for
//! `benches/load/tls_handshake.py` (`GEN=storm`). Prints one JSON line on stdout.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rustls::pki_types::ServerName;
use spaced_loadgen::{
    Group, Options, TlsError, Trust, certs_from_pem, client_config, roots_from_pem, run,
};

/// TLS 1.3 handshake load generator: CONCURRENCY connections in flight on one thread,
/// each connect, handshake, `GET PATH` with `Connection: close`, read to EOF, close.
#[derive(Debug, Parser)]
#[command(name = "tls-storm", version)]
struct Args {
    /// Server address, IP:PORT.
    #[arg(long)]
    connect: SocketAddr,
    /// SNI name, also checked against the server's certificate.
    #[arg(long)]
    sni: String,
    /// PEM file of the CA (or self-signed certificate) to trust.
    #[arg(long)]
    ca: PathBuf,
    /// Host header (default: the SNI name).
    #[arg(long)]
    host: Option<String>,
    /// Request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Connections in flight at once.
    #[arg(short, long, default_value_t = 32)]
    concurrency: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Trust the server's certificate by its exact bytes (the --ca file's certificates)
    /// instead of a chain to a root: one signature check less per handshake; the
    /// handshake's own signature is still checked.
    #[arg(long)]
    pin: bool,
    /// Resume sessions (TLS 1.3 tickets as PSK); counted as `resumed`.
    #[arg(long)]
    resume: bool,
    /// Timeout for each step of a connection, seconds.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Source addresses to connect from, in turn (comma-separated, e.g. 127.0.0.2,127.0.0.3).
    #[arg(long, value_delimiter = ',')]
    source: Vec<IpAddr>,
    /// Key-exchange groups offered, in order (the first gets the key share).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "x25519")]
    groups: Vec<Group>,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tls-storm: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    let args = Args::parse();
    let seconds = |what: &str, s: f64| {
        Duration::try_from_secs_f64(s).map_err(|e| format!("--{what} {s}: {e}"))
    };
    let sni =
        ServerName::try_from(args.sni.clone()).map_err(|e| format!("--sni {:?}: {e}", args.sni))?;
    let pem = std::fs::read(&args.ca).map_err(|e| format!("--ca {}: {e}", args.ca.display()))?;
    let ca_error = |e: TlsError| format!("--ca {}: {}", args.ca.display(), chain(&e));
    let trust = if args.pin {
        Trust::Pinned(certs_from_pem(&pem).map_err(ca_error)?)
    } else {
        Trust::Roots(roots_from_pem(&pem).map_err(ca_error)?)
    };
    let config = client_config(trust, &args.groups, args.resume).map_err(|e| chain(&e))?;
    let opts = Options {
        connect: args.connect,
        sni,
        host: args.host.unwrap_or(args.sni),
        path: args.path,
        concurrency: args.concurrency,
        secs: seconds("secs", args.secs)?,
        warmup: seconds("warmup", args.warmup)?,
        step_timeout: seconds("timeout", args.timeout)?,
        sources: args.source,
    };
    // One thread on purpose: the generator's cost per handshake is what it reports, and
    // one process is one core (run two processes for two).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let report = rt.block_on(run(&opts, config)).map_err(|e| chain(&e))?;
    if let Some(first) = &report.first_error {
        eprintln!("tls-storm: first error: {first}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", report.to_json()).map_err(|e| format!("stdout: {e}"))?;
    Ok(if report.ok == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        s.push_str(": ");
        s.push_str(&c.to_string());
        next = c.source();
    }
    s
}
