//! Transparent mode, with a real iptables `REDIRECT` rule made (and removed) by the test.
//!
//! The rule matches only this test's own connection: its client source address and port,
//! and a destination address/port owned by the test's whoami server. The gateway's own
//! outbound connection comes from another source port, so it is not redirected again.
//! Skipped, with the reason printed, when not root or when iptables is unavailable.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use std::net::SocketAddr;
use std::process::Command;

use crate::harness::*;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;

/// An iptables rule that is deleted when dropped.
struct Rule {
    tool: &'static str,
    args: Vec<String>,
}

impl Rule {
    fn add(tool: &'static str, args: Vec<String>) -> Result<Self, String> {
        let out = Command::new(tool)
            .args(["-w", "5", "-t", "nat", "-A", "OUTPUT"])
            .args(&args)
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { tool, args })
    }
}

impl Drop for Rule {
    fn drop(&mut self) {
        let _ = Command::new(self.tool)
            .args(["-w", "5", "-t", "nat", "-D", "OUTPUT"])
            .args(&self.args)
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A client socket bound to `from` (port chosen now, so the rule can name it).
fn bound_client(from: SocketAddr) -> (Socket, SocketAddr) {
    let s = Socket::new(Domain::for_address(from), Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&from.into()).unwrap();
    let local = s.local_addr().unwrap().as_socket().unwrap();
    (s, local)
}

async fn through_redirect(
    tool: &'static str,
    client: SocketAddr,
    dest: SocketAddr,
    listener_port: u16,
) -> Result<String, String> {
    let (sock, local) = bound_client(client);
    let args: Vec<String> = [
        "-p",
        "tcp",
        "-s",
        &local.ip().to_string(),
        "--sport",
        &local.port().to_string(),
        "-d",
        &dest.ip().to_string(),
        "--dport",
        &dest.port().to_string(),
        "-j",
        "REDIRECT",
        "--to-ports",
        &listener_port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _rule = Rule::add(tool, args)?;
    sock.set_nonblocking(true).unwrap();
    let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(sock));
    let mut s = within(sock.connect(dest))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    within(s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap();
    let resp = read_all(&mut s).await;
    Ok(resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(resp))
}

#[tokio::test]
async fn redirected_ipv4_connections_leave_from_the_pinned_source() {
    if !is_root() {
        spaced_testkit::skip("not root (iptables needs it)");
        return;
    }
    let who = Whoami::start("127.0.0.77:0").await;
    let text = r#"
[space]
name = "test"
internal = ["127.0.0.5/32"]
[egress]
transparent_listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.10", "127.0.0.11"]
default_deny = false
[[app]]
name = "api"
[[app.dyno]]
process = "worker"
addr = "127.0.0.5:5000"
"#;
    let gw = Gateway::start(text).await;
    let port = gw.handle.transparent_listen[0].port();
    match through_redirect("iptables", "127.0.0.5:0".parse().unwrap(), who.addr, port).await {
        Ok(body) => assert_eq!(body, pinned("api", &["127.0.0.10", "127.0.0.11"])),
        Err(e) if e.starts_with("iptables") => spaced_testkit::skip(&e),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn redirected_ipv6_connections_are_relayed() {
    if !is_root() {
        spaced_testkit::skip("not root (ip6tables needs it)");
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        spaced_testkit::skip("no IPv6 loopback");
        return;
    }
    let who = Whoami::start("[::1]:0").await;
    let text = r#"
[space]
name = "test"
internal = ["::1/128"]
[egress]
transparent_listen = ["[::1]:0"]
source_ips = ["127.0.0.10", "::1"]
default_deny = false
"#;
    let gw = Gateway::start(text).await;
    let port = gw.handle.transparent_listen[0].port();
    match through_redirect("ip6tables", "[::1]:0".parse().unwrap(), who.addr, port).await {
        Ok(body) => assert_eq!(body, "::1"),
        Err(e) if e.starts_with("ip6tables") => spaced_testkit::skip(&e),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn direct_and_outside_connections_are_closed_without_a_dial() {
    let who = Whoami::start("127.0.0.1:0").await;
    let text = r#"
[space]
name = "test"
internal = ["127.0.0.1/32"]
[egress]
transparent_listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.10"]
default_deny = false
"#;
    let gw = Gateway::start(text).await;
    let addr = gw.handle.transparent_listen[0];
    for from in ["127.0.0.1", "127.0.0.3"] {
        let mut s = connect_from(from, addr).await;
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
        // Closed with unread data: EOF or a reset, never an answer.
        let mut buf = [0u8; 64];
        let n = within(tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "{from}");
    }
    assert_eq!(who.count(), 0);
}
