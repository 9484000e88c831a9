//! `spaced demo`: the demo policy with its web dynos started in-process (small HTTP servers
//! that answer with their name and the headers the router sent), and the commands that
//! show each feature.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::reload;

/// Starts the sample dynos of every app in `config`, then runs the daemon on it.
///
/// # Errors
/// An invalid demo file, or an address already in use.
pub async fn run(config: PathBuf) -> Result<()> {
    let path = config.clone();
    let loaded = tokio::task::spawn_blocking(move || reload::load(&path))
        .await
        .context("load task")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = loaded.policy;
    for app in &policy.apps {
        for dyno in app.web_dynos() {
            let name = format!("web.{}", dyno.number);
            spawn_dyno(dyno.addr, app.name.clone(), name)
                .await
                .with_context(|| format!("start demo dyno of app {} on {}", app.name, dyno.addr))?;
        }
    }
    print_tour(&policy);
    crate::run(crate::Options::new(config)).await
}

/// One sample dyno: `/health` answers 200, everything else echoes who answered and what
/// headers arrived.
pub async fn spawn_dyno(addr: SocketAddr, app: String, dyno: String) -> Result<SocketAddr> {
    let listener = spaced_net::tcp_listener(addr)?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            let dyno = dyno.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let body = answer(&app, &dyno, peer, &req);
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await
                {
                    debug!(error = %e, "demo dyno connection");
                }
            });
        }
    });
    Ok(local)
}

fn answer(app: &str, dyno: &str, peer: SocketAddr, req: &Request<Incoming>) -> String {
    if req.uri().path() == "/health" {
        return "ok\n".into();
    }
    let mut body = format!(
        "hello from {dyno} of app {app}\nconnection from {peer}\n{} {}\n",
        req.method(),
        req.uri()
    );
    for (name, value) in req.headers() {
        let _ = writeln!(
            body,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    body
}

fn print_tour(policy: &spaced_config::Policy) {
    let first = |v: &[SocketAddr]| v.first().map(ToString::to_string);
    println!(
        "\nspaced demo: space {:?}, {} apps\n",
        policy.space.name,
        policy.apps.len()
    );
    if let Some(http) = first(&policy.router.listen) {
        println!("# route by Host to the demo app's web dynos (spread over 3 dynos):");
        println!("curl -s -H 'Host: demo.localhost' http://{http}/");
        println!("# a wildcard host, and an unknown host (404 S11):");
        println!(
            "curl -s -H 'Host: x.demo.localhost' http://{http}/ ; curl -si -H 'Host: nope' http://{http}/"
        );
        println!("# a blocked source address is closed at L4 before a byte is read:");
        println!("curl -v --interface 127.0.0.66 -H 'Host: demo.localhost' http://{http}/");
        println!("# an internal app is not served on the external listener (404 S11):");
        println!("curl -si -H 'Host: billing.internal' http://{http}/");
    }
    if let Some(internal) = first(&policy.router.internal_listen) {
        println!("# … but it is on the internal listener:");
        println!("curl -s -H 'Host: billing.internal' http://{internal}/");
    }
    if let Some(tls) = first(&policy.router.tls_listen) {
        println!("# TLS with SNI and HTTP/2:");
        println!(
            "curl -sk --http2 --resolve demo.localhost:{p}:{ip} https://demo.localhost:{p}/",
            p = tls.rsplit(':').next().unwrap_or("443"),
            ip = tls.rsplit_once(':').map_or("127.0.0.1", |(ip, _)| ip)
        );
    }
    if let Some(dns) = policy.resolver.listen.first() {
        let (ip, port) = (dns.ip(), dns.port());
        println!("# service discovery:");
        println!(
            "dig @{ip} -p {port} +short web.demo.{d} ; dig @{ip} -p {port} +short 2.web.demo.{d}",
            d = policy.resolver.domain
        );
        println!(
            "dig @{ip} -p {port} SRV _web._tcp.demo.{d} ; dig @{ip} -p {port} billing.internal",
            d = policy.resolver.domain
        );
    }
    if let Some(proxy) = first(&policy.egress.listen) {
        println!(
            "# egress from a stable source IP (the dyno echoes no peer, so watch the egress log line):"
        );
        println!("curl -s -x http://demo:demo-token@{proxy} http://127.0.0.1:15001/");
    }
    if let Some(socks) = first(&policy.egress.socks_listen) {
        println!("curl -s --socks5 demo:demo-token@{socks} http://127.0.0.1:15002/");
    }
    if let Some(admin) = policy.admin.as_ref().map(|a| a.listen) {
        println!("# admin: metrics, the loaded policy, reload, dyno health, NAT state:");
        println!(
            "curl -s http://{admin}/config ; curl -s http://{admin}/metrics | head ; curl -s -XPOST http://{admin}/reload"
        );
        println!("curl -s http://{admin}/dynos ; curl -s http://{admin}/nat");
    }
    println!("\n# edit config/demo.toml (or send SIGHUP) and watch it reload; Ctrl-C to stop.\n");
}
