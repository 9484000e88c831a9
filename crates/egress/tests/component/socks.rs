//! SOCKS5: CONNECT with IPv4, IPv6 and domain addresses, user/password, refusals with the
//! contract's reply codes, and UDP ASSOCIATE leaving from the pinned source.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use std::net::SocketAddr;

use crate::harness::*;
use tokio::net::UdpSocket;

const POOL: [&str; 2] = ["127.0.0.10", "127.0.0.11"];

fn space(extra: &str) -> String {
    config(&format!("{POOL2}\n{extra}"), APPS)
}

#[tokio::test]
async fn connect_ipv4_and_domain_leave_from_the_pinned_source() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space("default_deny = false")).await;
    for dest in [
        socks_addr(who.addr),
        socks_domain("localhost", who.addr.port()),
    ] {
        let (s, code) =
            socks_connect("127.0.0.1", gw.socks(), &dest, Some(("api", "s3cret"))).await;
        assert_eq!(code, 0, "{dest:?}");
        assert_eq!(get_through(s).await, pinned("api", &POOL));
    }
}

#[tokio::test]
async fn connect_ipv6() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        spaced_testkit::skip("no IPv6 loopback");
        return;
    };
    drop(probe);
    let who = Whoami::start("[::1]:0").await;
    let text = config(
        "source_ips = [\"127.0.0.10\", \"::1\"]\ndefault_deny = false",
        APPS,
    );
    let gw = Gateway::start(&text).await;
    let (s, code) = socks_connect(
        "127.0.0.1",
        gw.socks(),
        &socks_addr(who.addr),
        Some(("web", "w3b")),
    )
    .await;
    assert_eq!(code, 0);
    // The only IPv6 source carries IPv6 destinations, whatever the pin says for IPv4.
    assert_eq!(get_through(s).await, "::1");
}

#[tokio::test]
async fn wrong_credentials_fail_authentication() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space("default_deny = false")).await;
    let (_s, code) = socks_connect(
        "127.0.0.1",
        gw.socks(),
        &socks_addr(who.addr),
        Some(("api", "bad")),
    )
    .await;
    assert_eq!(code, 0x101, "auth status 0x01");
    // No credentials while apps use them, from an address that is no dyno: no method.
    let (_s, code) = socks_connect("127.0.0.1", gw.socks(), &socks_addr(who.addr), None).await;
    assert_eq!(code, 0x1ff);
    assert_eq!(who.count(), 0);
}

#[tokio::test]
async fn no_auth_works_when_no_app_uses_tokens() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), "")).await;
    let (s, code) = socks_connect("127.0.0.1", gw.socks(), &socks_addr(who.addr), None).await;
    assert_eq!(code, 0);
    let got = get_through(s).await;
    assert!(POOL.contains(&got.as_str()), "{got}");
}

#[tokio::test]
async fn refusals_use_the_contract_codes() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space("deny = [\"127.0.0.1/32\"]\nmax_per_destination = 1")).await;
    let creds = Some(("api", "s3cret"));
    // Outside the space: closed at accept, before the greeting is read.
    let mut s = connect_from("127.0.0.3", gw.socks()).await;
    assert_closed_without_a_word(&mut s, "outsider").await;
    // Denied destination: 0x02; a name resolving to it too.
    let (_s, code) = socks_connect("127.0.0.1", gw.socks(), &socks_addr(who.addr), creds).await;
    assert_eq!(code, 0x02);
    let (_s, code) = socks_connect(
        "127.0.0.1",
        gw.socks(),
        &socks_domain("localhost", who.addr.port()),
        creds,
    )
    .await;
    assert_eq!(code, 0x02);
    assert_eq!(who.count(), 0);
    // Only no-auth offered while credentials are required: no acceptable method.
    let mut s = connect_from("127.0.0.1", gw.socks()).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    within(s.write_all(&[5, 1, 0])).await.unwrap();
    let mut b = [0u8; 2];
    within(s.read_exact(&mut b)).await.unwrap();
    assert_eq!(b, [5, 0xff]);
}

#[tokio::test]
async fn max_per_destination_answers_0x05() {
    let who = Whoami::start("127.0.0.2:0").await;
    let gw = Gateway::start(&space("default_deny = false\nmax_per_destination = 1")).await;
    let creds = Some(("api", "s3cret"));
    let (_held, code) = socks_connect("127.0.0.1", gw.socks(), &socks_addr(who.addr), creds).await;
    assert_eq!(code, 0);
    let (_s, code) = socks_connect("127.0.0.1", gw.socks(), &socks_addr(who.addr), creds).await;
    assert_eq!(code, 0x05);
}

#[tokio::test]
async fn bind_is_not_supported() {
    let gw = Gateway::start(&space("default_deny = false")).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect_from("127.0.0.1", gw.socks()).await;
    within(s.write_all(&[5, 1, 2, 1, 3, b'a', b'p', b'i', 6]))
        .await
        .unwrap();
    within(s.write_all(b"s3cret")).await.unwrap();
    let mut b = [0u8; 4];
    within(s.read_exact(&mut b)).await.unwrap();
    assert_eq!(b, [5, 2, 1, 0]);
    within(s.write_all(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]))
        .await
        .unwrap();
    let mut rep = [0u8; 10];
    within(s.read_exact(&mut rep)).await.unwrap();
    assert_eq!(rep[1], 0x07);
}

#[tokio::test]
async fn udp_associate_relays_from_the_pinned_source() {
    let echo = udp_whoami("127.0.0.1:0").await;
    let gw = Gateway::start(&space("default_deny = false")).await;
    let (control, code) = socks_udp_associate(gw.socks(), ("web", "w3b")).await;
    let (_control, relay) = (control, code.expect("associate refused"));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut dgram = vec![0, 0, 0];
    dgram.extend_from_slice(&socks_addr(echo));
    dgram.extend_from_slice(b"who?");
    let mut buf = [0u8; 512];
    // UDP may drop: retry a few times.
    let mut got = None;
    for _ in 0..5 {
        client.send_to(&dgram, relay).await.unwrap();
        if let Ok(Ok((n, _))) = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            client.recv_from(&mut buf),
        )
        .await
        {
            got = Some(buf[..n].to_vec());
            break;
        }
    }
    let got = got.expect("no answer through the UDP relay");
    // Header: RSV RSV FRAG ATYP=1 ADDR(4) PORT(2), then the payload.
    assert_eq!(&got[..4], &[0, 0, 0, 1]);
    let from = SocketAddr::from((
        [got[4], got[5], got[6], got[7]],
        u16::from_be_bytes([got[8], got[9]]),
    ));
    assert_eq!(from, echo);
    assert_eq!(String::from_utf8_lossy(&got[10..]), pinned("web", &POOL));
}

#[tokio::test]
async fn udp_to_a_denied_destination_is_dropped() {
    let echo = udp_whoami("127.0.0.1:0").await;
    let gw = Gateway::start(&space("deny = [\"127.0.0.1/32\"]")).await;
    let (_control, relay) = socks_udp_associate(gw.socks(), ("web", "w3b")).await;
    let relay = relay.expect("associate refused");
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut dgram = vec![0, 0, 0];
    dgram.extend_from_slice(&socks_addr(echo));
    dgram.extend_from_slice(b"who?");
    client.send_to(&dgram, relay).await.unwrap();
    let mut buf = [0u8; 512];
    let r = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        client.recv_from(&mut buf),
    )
    .await;
    assert!(r.is_err(), "a denied destination answered");
}

/// Sends `who?` to `echo` through `relay` from `client` (a few tries: UDP may drop); the
/// answer's payload, or `None` when nothing came back.
async fn udp_ask(client: &UdpSocket, relay: SocketAddr, echo: SocketAddr) -> Option<String> {
    let mut dgram = vec![0, 0, 0];
    dgram.extend_from_slice(&socks_addr(echo));
    dgram.extend_from_slice(b"who?");
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        client.send_to(&dgram, relay).await.unwrap();
        let wait = std::time::Duration::from_millis(300);
        if let Ok(Ok((n, _))) = tokio::time::timeout(wait, client.recv_from(&mut buf)).await {
            return Some(String::from_utf8_lossy(&buf[10..n]).into_owned());
        }
    }
    None
}

#[tokio::test]
async fn udp_flows_count_against_max_per_destination() {
    let echo = udp_whoami("127.0.0.1:0").await;
    let gw = Gateway::start(&space("default_deny = false\nmax_per_destination = 1")).await;
    let src: std::net::IpAddr = pinned("web", &POOL).parse().unwrap();
    let (first_ctl, relay1) = socks_udp_associate(gw.socks(), ("web", "w3b")).await;
    let client1 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let got = udp_ask(&client1, relay1.unwrap(), echo).await;
    assert_eq!(got.as_deref(), Some(src.to_string().as_str()));
    assert_eq!(gw.handle.connections_to(src, echo), 1);
    // A second association of the same app to the same destination: the slot is taken.
    let (_second_ctl, relay2) = socks_udp_associate(gw.socks(), ("web", "w3b")).await;
    let relay2 = relay2.unwrap();
    let client2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(udp_ask(&client2, relay2, echo).await, None);
    // A TCP tunnel to the same address and port is refused too (one count for both; the
    // metric below tells this refusal from a refused connect).
    let (_s, code) = socks_connect(
        "127.0.0.1",
        gw.socks(),
        &socks_addr(echo),
        Some(("web", "w3b")),
    )
    .await;
    assert_eq!(code, 5, "max_per_destination answers 0x05");
    assert_metric(
        &gw,
        &format!("spaced_egress_connections_total{{source_ip=\"{src}\",result=\"limit\"}} 2"),
    );
    // The first association ends with its control connection: its slot is freed.
    drop(first_ctl);
    let mut freed = false;
    for _ in 0..50 {
        if gw.handle.connections_to(src, echo) == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "the association's slot was never released");
    let got = udp_ask(&client2, relay2, echo).await;
    assert_eq!(got.as_deref(), Some(src.to_string().as_str()));
    assert_eq!(gw.handle.connections_to(src, echo), 1);
}

/// UDP ASSOCIATE with user/password; returns the control stream and the relay address.
async fn socks_udp_associate(
    proxy: SocketAddr,
    creds: (&str, &str),
) -> (tokio::net::TcpStream, Option<SocketAddr>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect_from("127.0.0.1", proxy).await;
    let (u, p) = creds;
    let mut m = vec![5, 1, 2, 1, u.len() as u8];
    m.extend_from_slice(u.as_bytes());
    m.push(p.len() as u8);
    m.extend_from_slice(p.as_bytes());
    within(s.write_all(&m)).await.unwrap();
    let mut b = [0u8; 4];
    within(s.read_exact(&mut b)).await.unwrap();
    assert_eq!(b, [5, 2, 1, 0]);
    within(s.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]))
        .await
        .unwrap();
    let mut rep = [0u8; 10];
    within(s.read_exact(&mut rep)).await.unwrap();
    if rep[1] != 0 || rep[3] != 1 {
        return (s, None);
    }
    let relay = SocketAddr::from((
        [rep[4], rep[5], rep[6], rep[7]],
        u16::from_be_bytes([rep[8], rep[9]]),
    ));
    (s, Some(relay))
}

#[tokio::test]
async fn method_choice_when_both_are_offered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let apps = format!(
        "{APPS}\n[[app]]\nname = \"jdbc\"\n[[app.dyno]]\nprocess = \"worker\"\naddr = \"127.0.0.2:5000\"\n"
    );
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), &apps)).await;
    // A dyno address needs no credentials: no-auth, even when user/password is offered.
    let mut s = connect_from("127.0.0.2", gw.socks()).await;
    within(s.write_all(&[5, 2, 0, 2])).await.unwrap();
    let mut b = [0u8; 2];
    within(s.read_exact(&mut b)).await.unwrap();
    assert_eq!(b, [5, 0]);
    // Anyone else in a space with tokens is asked for them.
    let mut s = connect_from("127.0.0.1", gw.socks()).await;
    within(s.write_all(&[5, 2, 0, 2])).await.unwrap();
    within(s.read_exact(&mut b)).await.unwrap();
    assert_eq!(b, [5, 2]);
}
