//! The log lines: one per tunnel, exactly the contract's format, as the whole message of
//! an event with target `egress`; refusals name the rule that refused.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use crate::harness::*;
use spaced_testkit::capture::Capture;
use tokio::io::AsyncWriteExt;

/// Captures this thread's `egress` events (the test runtime is single-threaded, so every
/// task of the gateway logs here); their message is the whole line.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    Capture::install("egress")
}

/// The first line containing `pat`, once there is one.
async fn wait_for(out: &Capture, pat: &str) -> String {
    let find = || {
        out.lines()
            .into_iter()
            .map(|(_, l)| l)
            .find(|l| l.contains(pat))
    };
    spaced_testkit::eventually(&format!("a log line with {pat:?}"), || find().is_some()).await;
    find().unwrap()
}

#[tokio::test]
async fn every_tunnel_ends_with_one_line_in_the_contract_format() {
    let (out, _guard) = capture();
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), APPS)).await;
    let (s, _) = http_connect(
        "127.0.0.1",
        gw.http(),
        &who.addr.to_string(),
        Some(("api", "s3cret")),
    )
    .await;
    let src = get_through(s).await;
    let line = wait_for(&out, "proto=connect").await;
    let msg = line.trim_start_matches("egress: ");
    let prefix = format!(
        "at=info app=api client=127.0.0.1 egress_ip={src} dest={} proto=connect bytes_out=",
        who.addr
    );
    assert!(msg.starts_with(&prefix), "{msg}");
    let rest = &msg[prefix.len()..];
    let (out_b, rest) = rest.split_once(" bytes_in=").unwrap();
    let (in_b, dur) = rest.split_once(" duration=").unwrap();
    assert_eq!(out_b, "27", "GET / HTTP/1.1 + Host header");
    assert!(in_b.parse::<u64>().unwrap() > 0);
    assert!(
        dur.ends_with("ms") && dur.trim_end_matches("ms").parse::<u64>().is_ok(),
        "{dur}"
    );

    let (mut s, code) = socks_connect(
        "127.0.0.1",
        gw.socks(),
        &socks_addr(who.addr),
        Some(("web", "w3b")),
    )
    .await;
    assert_eq!(code, 0);
    s.shutdown().await.unwrap();
    let line = wait_for(&out, "proto=socks5 ").await;
    assert!(
        line.contains("at=info app=web client=127.0.0.1 egress_ip="),
        "{line}"
    );
}

#[tokio::test]
async fn a_denial_names_its_rule() {
    let (out, _guard) = capture();
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&config(&format!("{POOL2}\ndeny = [\"127.0.0.0/8\"]"), APPS)).await;
    let target = format!("localhost:{}", who.addr.port());
    let (_s, head) = http_connect("127.0.0.2", gw.http(), &target, Some(("api", "s3cret"))).await;
    assert!(head.starts_with("HTTP/1.1 403"));
    let line = wait_for(&out, "refused=denied").await;
    assert!(line.contains("app=api client=127.0.0.2 "), "{line}");
    assert!(
        line.contains(&format!("dest={target} proto=connect")),
        "{line}"
    );
    assert!(
        line.contains("rule=deny:127.0.0.0/8") || line.contains("rule=deny:::1"),
        "{line}"
    );
    // The event's level is the one its text says.
    let levels: Vec<tracing::Level> = out
        .lines()
        .into_iter()
        .filter(|(_, l)| l.contains("refused=denied"))
        .map(|(level, _)| level)
        .collect();
    assert_eq!(levels, [tracing::Level::WARN], "{:?}", out.lines());
}

/// `rule=` is a rule as configured, not the merged range of the deny list: the defaults
/// `224.0.0.0/4` and `240.0.0.0/4` (or `::/128` and `::1/128`) are adjacent, and so are
/// two neighbouring addresses an operator lists.
#[tokio::test]
async fn a_denial_names_the_configured_rule_not_a_merged_range() {
    let (out, _guard) = capture();
    let creds = Some(("api", "s3cret"));
    let gw = Gateway::start(&config(POOL2, APPS)).await;
    for (target, rule) in [
        ("224.0.0.1:443", "rule=deny:224.0.0.0/4"),
        ("[::1]:443", "rule=deny:::1/128"),
    ] {
        let (_s, head) = http_connect("127.0.0.2", gw.http(), target, creds).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let line = wait_for(&out, &format!("dest={target} ")).await;
        assert!(line.ends_with(rule), "{line}");
    }
    let deny = "deny = [\"127.0.0.98\", \"127.0.0.99\", \"10.0.0.0/9\", \"10.128.0.0/9\"]";
    let gw = Gateway::start(&config(&format!("{POOL2}\n{deny}"), APPS)).await;
    for (target, rule) in [
        ("127.0.0.99:443", "rule=deny:127.0.0.99/32"),
        ("10.200.0.1:443", "rule=deny:10.128.0.0/9"),
    ] {
        let (_s, head) = http_connect("127.0.0.2", gw.http(), target, creds).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let line = wait_for(&out, &format!("dest={target} ")).await;
        assert!(line.ends_with(rule), "{line}");
    }
}

/// A UDP association that sends to two destinations ends with one line per destination,
/// each with its own bytes (they used to be summed on one line naming the first).
#[tokio::test]
async fn a_udp_association_logs_one_line_per_destination() {
    use tokio::io::AsyncReadExt;
    let (out, _guard) = capture();
    let echo1 = udp_whoami("127.0.0.1:0").await;
    let echo2 = udp_whoami("127.0.0.1:0").await;
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), APPS)).await;
    let mut control = connect_from("127.0.0.1", gw.socks()).await;
    within(control.write_all(&[5, 1, 2, 1, 3, b'a', b'p', b'i', 6]))
        .await
        .unwrap();
    within(control.write_all(b"s3cret")).await.unwrap();
    let mut auth = [0u8; 4];
    within(control.read_exact(&mut auth)).await.unwrap();
    assert_eq!(auth, [5, 2, 1, 0]);
    within(control.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]))
        .await
        .unwrap();
    let mut rep = [0u8; 10];
    within(control.read_exact(&mut rep)).await.unwrap();
    assert_eq!(rep[1], 0, "associate refused");
    let relay = std::net::SocketAddr::from((
        [rep[4], rep[5], rep[6], rep[7]],
        u16::from_be_bytes([rep[8], rep[9]]),
    ));
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let src = pinned("api", &["127.0.0.10", "127.0.0.11"]);
    let mut buf = [0u8; 512];
    for (echo, payload) in [(echo1, &b"one"[..]), (echo2, b"second"), (echo2, b"third")] {
        let mut dgram = vec![0, 0, 0];
        dgram.extend_from_slice(&socks_addr(echo));
        dgram.extend_from_slice(payload);
        client.send_to(&dgram, relay).await.unwrap();
        let (n, _) = within(client.recv_from(&mut buf)).await.unwrap();
        assert_eq!(&buf[10..n], src.as_bytes());
    }
    drop(control);
    let n = src.len();
    for (echo, sent, got) in [(echo1, 3, n), (echo2, 11, 2 * n)] {
        let line = wait_for(&out, &format!("dest={echo} proto=socks5-udp ")).await;
        let want = format!(
            "at=info app=api client=127.0.0.1 egress_ip={src} dest={echo} proto=socks5-udp bytes_out={sent} bytes_in={got} duration="
        );
        assert!(
            line.trim_start_matches("egress: ").starts_with(&want),
            "{line}"
        );
    }
}

#[tokio::test]
async fn a_head_dripped_byte_by_byte_works_and_an_endless_one_is_cut() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), "")).await;
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    let req = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", who.addr);
    for b in req.as_bytes() {
        within(s.write_all(&[*b])).await.unwrap();
    }
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    within(s.write_all(b"CONNECT a:1 HTTP/1.1\r\n"))
        .await
        .unwrap();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let mut answer = String::new();
    for _ in 0..80 {
        if s.write_all(filler.as_bytes()).await.is_err() {
            break;
        }
    }
    answer.push_str(&read_head(&mut s).await);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}
