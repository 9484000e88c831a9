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
    print!("{}", tour(&policy));
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

/// The commands that show each feature of `policy`, as `spaced demo` prints them.
pub fn tour(policy: &spaced_config::Policy) -> String {
    let mut out = String::new();
    let _ = write_tour(policy, &mut out);
    out
}

fn write_tour(policy: &spaced_config::Policy, out: &mut String) -> std::fmt::Result {
    let first = |v: &[SocketAddr]| v.first().map(ToString::to_string);
    writeln!(
        out,
        "\nspaced demo: space {:?}, {} apps\n",
        policy.space.name,
        policy.apps.len()
    )?;
    if let Some(http) = first(&policy.router.listen) {
        writeln!(
            out,
            "# route by Host to the demo app's web dynos (spread over 3 dynos):"
        )?;
        writeln!(out, "curl -s -H 'Host: demo.localhost' http://{http}/")?;
        writeln!(out, "# a wildcard host, and an unknown host (404 S11):")?;
        writeln!(
            out,
            "curl -s -H 'Host: x.demo.localhost' http://{http}/ ; curl -si -H 'Host: nope' http://{http}/"
        )?;
        writeln!(
            out,
            "# a blocked source address is closed at L4 before a byte is read:"
        )?;
        writeln!(
            out,
            "curl -v --interface 127.0.0.66 -H 'Host: demo.localhost' http://{http}/"
        )?;
        writeln!(
            out,
            "# an internal app is not served on the external listener (404 S11):"
        )?;
        writeln!(out, "curl -si -H 'Host: billing.internal' http://{http}/")?;
    }
    if let Some(internal) = first(&policy.router.internal_listen) {
        writeln!(out, "# … but it is on the internal listener:")?;
        writeln!(
            out,
            "curl -s -H 'Host: billing.internal' http://{internal}/"
        )?;
    }
    if let Some(tls) = first(&policy.router.tls_listen) {
        writeln!(out, "# TLS with SNI and HTTP/2:")?;
        writeln!(
            out,
            "curl -sk --http2 --resolve demo.localhost:{p}:{ip} https://demo.localhost:{p}/",
            p = tls.rsplit(':').next().unwrap_or("443"),
            ip = tls.rsplit_once(':').map_or("127.0.0.1", |(ip, _)| ip)
        )?;
    }
    if let Some(dns) = policy.resolver.listen.first() {
        let (ip, port) = (dns.ip(), dns.port());
        writeln!(out, "# service discovery:")?;
        writeln!(
            out,
            "dig @{ip} -p {port} +short web.demo.{d} ; dig @{ip} -p {port} +short 2.web.demo.{d}",
            d = policy.resolver.domain
        )?;
        writeln!(
            out,
            "dig @{ip} -p {port} SRV _web._tcp.demo.{d} ; dig @{ip} -p {port} billing.internal",
            d = policy.resolver.domain
        )?;
    }
    write_egress(policy, out)?;
    if let Some(admin) = policy.admin.as_ref().map(|a| a.listen) {
        writeln!(
            out,
            "# admin: metrics, the loaded policy, reload, dyno health, NAT state:"
        )?;
        writeln!(
            out,
            "curl -s http://{admin}/config ; curl -s http://{admin}/metrics | head ; curl -s -XPOST http://{admin}/reload"
        )?;
        writeln!(
            out,
            "curl -s http://{admin}/dynos ; curl -s http://{admin}/nat"
        )?;
    }
    writeln!(
        out,
        "\n# edit config/demo.toml (or send SIGHUP) and watch it reload; Ctrl-C to stop.\n"
    )
}

/// The egress commands: through the proxy to one of the app's own dynos, whose answer
/// names the address the connection came from, the app's pinned source IP.
fn write_egress(policy: &spaced_config::Policy, out: &mut String) -> std::fmt::Result {
    let Some((app, token)) = policy
        .apps
        .iter()
        .find_map(|a| a.egress_token.as_deref().map(|t| (a, t)))
    else {
        return Ok(());
    };
    let Some(dest) = app.web_dynos().next().map(|d| d.addr) else {
        return Ok(());
    };
    let key = spaced_egress::pin::PinKey::App(&app.name);
    let Some(pinned) = spaced_egress::pin::choose(key, &policy.egress.source_ips) else {
        return Ok(());
    };
    let name = &app.name;
    if let Some(proxy) = policy.egress.listen.first() {
        writeln!(
            out,
            "# egress from app {name}'s pinned source IP: the dyno answers \"connection from {pinned}:…\""
        )?;
        writeln!(
            out,
            "curl -s -x http://{name}:{token}@{proxy} http://{dest}/"
        )?;
    }
    if let Some(socks) = policy.egress.socks_listen.first() {
        writeln!(
            out,
            "curl -s --socks5 {name}:{token}@{socks} http://{dest}/"
        )?;
    }
    Ok(())
}
