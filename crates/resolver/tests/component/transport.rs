//! UDP and TCP behaviour: one port for both, truncation, framing, malformed input, timeouts,
//! shutdown — plus `dig`, a client nobody here wrote.

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::AsyncReadExt;

use crate::support::*;

#[tokio::test]
async fn sixty_dynos_truncated_over_udp_whole_over_tcp() {
    let r = start(&policy_text(&dynos_text(60))).await;
    let q = query("web.big.app.localspace.", RecordType::A, None);
    let m = udp(r.addr, "127.0.0.1", &q).await;
    assert!(m.truncation, "60 A records exceed 512 bytes");
    assert!(m.answers.is_empty());
    let m = tcp(r.addr, "127.0.0.1", &q).await;
    assert!(!m.truncation);
    assert_eq!(m.answers.len(), 60);
    // The client's EDNS0 size is honoured, and 1232 is advertised back.
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("web.big.app.localspace.", RecordType::A, Some(4096)),
    )
    .await;
    assert!(!m.truncation);
    assert_eq!(m.answers.len(), 60);
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let mut text = String::new();
    r.handle.render_metrics(&mut text);
    assert!(text.contains("spaced_dns_truncated_total 1"), "{text}");
}

#[tokio::test]
async fn tcp_answers_several_queries_per_connection() {
    let r = start(&policy_text(&dynos_text(3))).await;
    let mut s = tcp_from(r.addr, "127.0.0.1").await;
    for (i, name) in [
        "web.big.app.localspace.",
        "1.web.big.app.localspace.",
        "nope.app.localspace.",
    ]
    .iter()
    .enumerate()
    {
        let mut q = query(name, RecordType::A, None);
        q.metadata.id = 100 + i as u16;
        let m = tcp_exchange(&mut s, &q).await;
        assert_eq!(m.id, 100 + i as u16);
    }
}

#[tokio::test]
async fn idle_tcp_connections_are_closed() {
    let r = start(&policy_text("")).await; // tcp_idle is 500 ms in tests
    let mut s = tcp_from(r.addr, "127.0.0.1").await;
    let mut buf = [0u8; 1];
    let n = within("idle close", s.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
}

#[tokio::test]
async fn malformed_queries_formerr_or_dropped() {
    let r = start(&policy_text("")).await;
    let mut bytes = query("web.big.app.localspace.", RecordType::A, None)
        .to_vec()
        .unwrap();
    bytes[0..2].copy_from_slice(&[0xbe, 0xef]);
    bytes.truncate(17);
    let raw = udp_raw(r.addr, "127.0.0.1", &bytes, T)
        .await
        .expect("a FORMERR");
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!((m.id, m.response_code), (0xbeef, ResponseCode::FormErr));
    let none = udp_raw(r.addr, "127.0.0.1", &[1, 2, 3], Duration::from_millis(300)).await;
    assert!(none.is_none(), "no header: dropped");
    // Still serving after both.
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("app.localspace.", RecordType::SOA, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn stops_on_shutdown() {
    let r = start(&policy_text("")).await;
    let addr = r.addr;
    r.shutdown.cancel();
    // A UDP loop blocked in its receive (up to 200 ms) still answers what that receive
    // returns (an upgraded process may share the socket); after it, nothing is answered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let q = query("app.localspace.", RecordType::SOA, None)
        .to_vec()
        .unwrap();
    assert!(
        udp_raw(addr, "127.0.0.1", &q, Duration::from_millis(300))
            .await
            .is_none()
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn binds_every_listen_address_one_port_each() {
    let text = policy_text("").replace(r#"["127.0.0.1:0"]"#, r#"["127.0.0.1:0", "127.0.0.2:0"]"#);
    let r = start(&text).await;
    assert_eq!(r.handle.listen.len(), 2);
    for &addr in &r.handle.listen {
        let q = query("app.localspace.", RecordType::NS, None);
        assert_eq!(udp(addr, "127.0.0.1", &q).await.answers.len(), 1);
        assert_eq!(tcp(addr, "127.0.0.1", &q).await.answers.len(), 1);
    }
}

/// `dig` (bind9-dnsutils) as an independent client; skipped when not installed.
#[tokio::test]
async fn dig_agrees() {
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        spaced_testkit::skip("dig is not on PATH (apt-get install bind9-dnsutils)");
        return;
    }
    let r = start(&policy_text(&dynos_text(60))).await;
    let dig = |args: Vec<String>| async move {
        let out = within(
            "dig",
            tokio::process::Command::new("dig")
                .args(["+time=2", "+tries=1", "-b", "127.0.0.1"])
                .args(args)
                .output(),
        )
        .await
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let at = format!("@{}", r.addr.ip());
    let port = r.addr.port().to_string();
    let out = dig(vec![
        at.clone(),
        "-p".into(),
        port.clone(),
        "1.web.big.app.localspace".into(),
        "A".into(),
        "+short".into(),
    ])
    .await;
    assert_eq!(out.trim(), "10.1.0.1");
    let out = dig(vec![
        at.clone(),
        "-p".into(),
        port.clone(),
        "nope.app.localspace".into(),
        "A".into(),
    ])
    .await;
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("SOA"), "{out}");
    // dig retries a truncated UDP answer over TCP by itself: the whole set comes back.
    let out = dig(vec![
        at.clone(),
        "-p".into(),
        port.clone(),
        "web.big.app.localspace".into(),
        "A".into(),
        "+short".into(),
        "+noedns".into(),
    ])
    .await;
    assert_eq!(out.lines().count(), 60, "{out}");
    let out = dig(vec![
        at,
        "-p".into(),
        port,
        "_web._tcp.big.app.localspace".into(),
        "SRV".into(),
    ])
    .await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("ADDITIONAL SECTION"), "{out}");
}

#[tokio::test]
async fn tcp_connections_beyond_the_cap_are_closed() {
    let r = start_with(
        &policy_text(""),
        spaced_resolver::Options {
            max_tcp: 1,
            ..spaced_resolver::Options::default()
        },
    )
    .await;
    let q = query("app.localspace.", RecordType::SOA, None);
    let mut first = tcp_from(r.addr, "127.0.0.1").await;
    assert_eq!(tcp_exchange(&mut first, &q).await.answers.len(), 1);
    let mut second = tcp_from(r.addr, "127.0.0.1").await;
    let mut buf = [0u8; 1];
    let n = within("closed at accept", second.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(first);
}

#[tokio::test]
async fn serves_ipv6_loopback() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        spaced_testkit::skip("no IPv6 loopback here");
        return;
    }
    let text = policy_text(&format!("{}\n", dynos_text(1)))
        .replace("127.0.0.1:0", "[::1]:0")
        .replace(
            r#"internal = ["127.0.0.1/32", "127.0.0.2/32"]"#,
            r#"internal = ["::1/128"]"#,
        );
    let r = start(&text).await;
    let q = query("web.big.app.localspace.", RecordType::A, None);
    assert_eq!(udp(r.addr, "::1", &q).await.answers.len(), 1);
    assert_eq!(tcp(r.addr, "::1", &q).await.answers.len(), 1);
}

#[tokio::test]
async fn tcp_pipelined_queries_are_answered_in_order() {
    use tokio::io::AsyncWriteExt;
    let r = start(&policy_text(&dynos_text(2))).await;
    let mut s = tcp_from(r.addr, "127.0.0.1").await;
    let mut all = Vec::new();
    for id in 1..=3u16 {
        let mut q = query("web.big.app.localspace.", RecordType::A, None);
        q.metadata.id = id;
        let bytes = q.to_vec().unwrap();
        all.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        all.extend_from_slice(&bytes);
    }
    within("pipelined write", s.write_all(&all)).await.unwrap();
    for id in 1..=3u16 {
        let mut len = [0u8; 2];
        within("len", s.read_exact(&mut len)).await.unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        within("body", s.read_exact(&mut buf)).await.unwrap();
        let m = Message::from_vec(&buf).unwrap();
        assert_eq!((m.id, m.answers.len()), (id, 2));
    }
}
