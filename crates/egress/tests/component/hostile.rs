//! Hostile-input corpus for the gateway (issue 19), through the real listeners: SSRF forms
//! of a destination (every IPv6 form that embeds an IPv4 address, odd IPv4 literals,
//! CONNECT targets), who may connect (outsiders, `space.blocked`) and how many at once.
//! A refusal is asserted as the contract's answer (403, SOCKS 0x02, or a close without a
//! word), and a loopback server counts every connection it gets, so a bypass shows.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use crate::harness::*;
use tokio::io::AsyncWriteExt;

/// IPv6 destinations that lead to a denied IPv4 address (or lie in a denied IPv6 range),
/// with the rule the refusal must name. Refused before any dial: a bypass would be a dial
/// (a 502 after the connect fails), not a 403.
const BUILTIN_DENIED_V6: &[(&str, &str)] = &[
    // NAT64 (RFC 6052) of the cloud metadata address and of loopback.
    ("64:ff9b::a9fe:a9fe", "169.254.0.0/16"),
    ("64:ff9b::169.254.169.254", "169.254.0.0/16"),
    ("64:ff9b::7f00:1", "127.0.0.0/8"),
    // Local-use NAT64 (RFC 8215): not global, denied whole.
    ("64:ff9b:1::a9fe:a9fe", "64:ff9b:1::/48"),
    ("64:ff9b:1:ffff::1", "64:ff9b:1::/48"),
    // 6to4 (RFC 3056): the IPv4 address is bits 16..48.
    ("2002:a9fe:a9fe::", "169.254.0.0/16"),
    ("2002:7f00:1::1", "127.0.0.0/8"),
    ("2002:0:0::1", "0.0.0.0/8"),
    ("2002:6440:1::", "100.64.0.0/10"),
    ("2002:e000:1::", "224.0.0.0/4"),
    // IPv4-compatible (deprecated) and SIIT.
    ("::169.254.169.254", "::/96"),
    ("::127.0.0.1", "::/96"),
    ("::ffff:0:a9fe:a9fe", "::ffff:0:0:0/96"),
    // IPv4-mapped: folded to IPv4 first.
    ("::ffff:169.254.169.254", "169.254.0.0/16"),
    ("::ffff:127.0.0.1", "127.0.0.0/8"),
    ("::ffff:7f00:2", "127.0.0.0/8"),
    // Plain IPv6 ranges of the built-in list.
    ("::1", "::1/128"),
    ("::", "::/128"),
    ("fe80::1", "fe80::/10"),
    ("febf::1", "fe80::/10"),
    ("fec0::1", "fec0::/10"),
    ("100::1", "100::/64"),
    ("ff02::1", "ff00::/8"),
];

fn gateway_text(egress_extra: &str) -> String {
    config(&format!("{POOL2}\n{egress_extra}"), APPS)
}

const CREDS: Option<(&str, &str)> = Some(("api", "s3cret"));

#[tokio::test]
async fn every_embedded_ipv4_form_of_a_denied_address_is_refused_before_a_dial() {
    let gw = Gateway::start(&gateway_text("")).await;
    // The rule each is refused by (the log line's `rule=`) is checked in vet's unit tests.
    for &(v6, _rule) in BUILTIN_DENIED_V6 {
        let target = format!("[{v6}]:443");
        let (_s, head) = http_connect("127.0.0.1", gw.http(), &target, CREDS).await;
        assert!(head.starts_with("HTTP/1.1 403"), "CONNECT {target}: {head}");
        // The same through SOCKS5 (address type 4) and an absolute-form request.
        let ip: std::net::Ipv6Addr = v6.parse().unwrap();
        let dest = socks_addr(std::net::SocketAddr::new(ip.into(), 443));
        let (_s, code) = socks_connect("127.0.0.1", gw.socks(), &dest, CREDS).await;
        assert_eq!(code, 0x02, "SOCKS5 {v6}");
        let mut s = connect_from("127.0.0.1", gw.http()).await;
        let req = format!(
            "GET http://[{v6}]/ HTTP/1.1\r\nHost: [{v6}]\r\nProxy-Authorization: Basic {}\r\n\r\n",
            basic("api", "s3cret")
        );
        within(s.write_all(req.as_bytes())).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 403"), "GET [{v6}]: {head}");
    }
}

/// IPv4 rules of the file are matched against the embedded address too, with the built-in
/// list off: the metadata address through NAT64 or 6to4 is still `169.254.0.0/16`.
#[tokio::test]
async fn explicit_ipv4_deny_rules_match_the_embedded_address() {
    let gw = Gateway::start(&gateway_text(
        "default_deny = false\ndeny = [\"169.254.0.0/16\", \"10.9.0.0/16\"]",
    ))
    .await;
    for target in [
        "[64:ff9b::a9fe:a9fe]:80",
        "[2002:a9fe:a9fe::1]:80",
        "[::ffff:0:a9fe:a9fe]:80",
        "[::169.254.169.254]:80",
        "[64:ff9b::10.9.0.1]:80",
        "[64:ff9b:1::10.9.0.1]:80",
    ] {
        let (_s, head) = http_connect("127.0.0.1", gw.http(), target, CREDS).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
    }
}

/// Odd spellings of loopback (what `inet_aton` accepts, or a resolver could return) never
/// reach the loopback server: refused by policy or as a bad target, never dialled.
#[tokio::test]
async fn odd_literals_of_loopback_never_reach_it() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&gateway_text("")).await;
    let port = who.addr.port();
    let hosts = [
        "127.1",
        "127.0.1",
        "0x7f.0.0.1",
        "0x7f000001",
        "2130706433",
        "017700000001",
        "0177.0.0.1",
        "127.000.000.001",
        "0",
        "0.0.0.0",
        "localhost",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[0::ffff:127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::]",
        "[::127.0.0.1]",
        "[fe80::1%lo]",
        "[::1%25lo]",
    ];
    for host in hosts {
        for target in [format!("{host}:{port}"), format!("{host}:+{port}")] {
            let (_s, head) = http_connect("127.0.0.1", gw.http(), &target, CREDS).await;
            assert!(
                !head.starts_with("HTTP/1.1 200"),
                "CONNECT {target}: {head}"
            );
        }
        // The same host in an absolute-form request and as a SOCKS5 domain name.
        let mut s = connect_from("127.0.0.1", gw.http()).await;
        let req = format!(
            "GET http://{host}:{port}/ HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: Basic {}\r\n\r\n",
            basic("api", "s3cret")
        );
        within(s.write_all(req.as_bytes())).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(!head.starts_with("HTTP/1.1 200"), "GET {host}: {head}");
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let (_s, code) =
            socks_connect("127.0.0.1", gw.socks(), &socks_domain(name, port), CREDS).await;
        assert_ne!(code, 0, "SOCKS5 domain {name}");
    }
    // CONNECT targets that are no host:port at all.
    for target in [
        "",
        ":443",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:80:80",
        "user@127.0.0.1:80",
        "http://127.0.0.1:80",
        "[::1:80",
        "::1:80",
        "127.0.0.1:80/x",
        "127.0.0.1 :80",
        "%31%32%37.0.0.1:80",
    ] {
        let (_s, head) = http_connect("127.0.0.1", gw.http(), target, CREDS).await;
        assert!(
            !head.starts_with("HTTP/1.1 200"),
            "CONNECT {target:?}: {head}"
        );
    }
    assert_eq!(who.count(), 0, "a spelling of loopback was dialled");
}

/// Issue 19: `space.blocked` wins over `internal` on every egress listener, checked at
/// accept before a byte is read; a neighbour inside the space is served.
#[tokio::test]
async fn blocked_clients_are_closed_at_accept_even_from_inside() {
    let who = Whoami::start("127.0.0.1:0").await;
    let text = format!(
        r#"
[space]
name = "test"
internal = ["127.0.0.0/8"]
blocked = ["127.0.0.2", "::ffff:127.0.0.4"]

[egress]
listen = ["127.0.0.1:0"]
socks_listen = ["127.0.0.1:0"]
{POOL2}
default_deny = false
{APPS}
"#
    );
    let gw = Gateway::start(&text).await;
    for from in ["127.0.0.2", "127.0.0.4"] {
        for listener in [gw.http(), gw.socks()] {
            let mut s = connect_from(from, listener).await;
            assert_closed_without_a_word(&mut s, from).await;
        }
    }
    let (s, head) = http_connect("127.0.0.3", gw.http(), &who.addr.to_string(), CREDS).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        get_through(s).await,
        pinned("api", &["127.0.0.10", "127.0.0.11"])
    );
    assert_eq!(who.count(), 1);
    assert_metric(&gw, "spaced_egress_refused_total{reason=\"outside\"} 4");
}

/// Opens a CONNECT tunnel to `who` through the HTTP listener, retrying while the gateway
/// has not yet seen an earlier connection's close (its slot is freed when the gateway's
/// read returns): the answer 200 is the event that says the tunnel holds a slot.
async fn open_tunnel(gw: &Gateway, who: &Whoami) -> tokio::net::TcpStream {
    within(async {
        loop {
            let mut s = connect_from("127.0.0.1", gw.http()).await;
            let req = format!(
                "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: Basic {1}\r\n\r\n",
                who.addr,
                basic("api", "s3cret")
            );
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut v = [0u8; 12];
                if let Ok(12) = tokio::io::AsyncReadExt::read_exact(&mut s, &mut v).await
                    && v.starts_with(b"HTTP/1.1 200")
                {
                    return s;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Issue 19: connections beyond `egress.max_connections` (over every egress listener) are
/// closed at accept; a slot freed by a closed connection is taken by the next one, and a
/// reload changes the cap for the next accept.
#[tokio::test]
async fn connections_beyond_max_connections_are_closed_at_accept() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&gateway_text("default_deny = false\nmax_connections = 2")).await;
    // Two tunnels hold both slots; a third connection, on either listener, is closed.
    let a = open_tunnel(&gw, &who).await;
    let _b = open_tunnel(&gw, &who).await;
    let mut c = connect_from("127.0.0.1", gw.socks()).await;
    assert_closed_without_a_word(&mut c, "third connection (SOCKS5)").await;
    let mut d = connect_from("127.0.0.1", gw.http()).await;
    assert_closed_without_a_word(&mut d, "third connection (HTTP)").await;
    assert_metric(&gw, "spaced_egress_refused_total{reason=\"over_limit\"} 2");
    // A closed tunnel frees its slot for the next connection.
    drop(a);
    let _a2 = open_tunnel(&gw, &who).await;
    // A reload to a cap of 3 admits one more, then refuses again.
    gw.reload(&gateway_text("default_deny = false\nmax_connections = 3"));
    let _e = open_tunnel(&gw, &who).await;
    let mut f = connect_from("127.0.0.1", gw.http()).await;
    assert_closed_without_a_word(&mut f, "over the reloaded cap").await;
}
