//! Names outside the zone go upstream; names inside never do.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::support::*;
use crate::upstream::{self, Mode};

#[tokio::test]
async fn forwards_with_the_client_id() {
    let up = upstream::start(Mode::Answer).await;
    let r = start(&policy_text(&format!(
        "upstreams = [\"{}\"]\n{}",
        up.addr,
        dynos_text(1)
    )))
    .await;
    for id in [7u16, 0xfffe] {
        let mut q = query("www.Example.com.", RecordType::A, None);
        q.metadata.id = id;
        let m = udp(r.addr, "127.0.0.1", &q).await;
        assert_eq!(m.id, id, "the client's id comes back");
        assert_eq!(ips(&m), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        let m = tcp(r.addr, "127.0.0.1", &q).await;
        assert_eq!(m.id, id);
        assert_eq!(m.response_code, ResponseCode::NoError);
    }
    // Names inside the domain never leave, existing or not.
    for name in ["web.big.app.localspace.", "nope.app.localspace."] {
        udp(r.addr, "127.0.0.1", &query(name, RecordType::A, None)).await;
    }
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|s| s.name == "www.Example.com."),
        "{seen:?}"
    );
    // Upstream sees fresh random ids, not the client's (a 2^-64 chance of a false failure).
    assert!(seen.iter().any(|s| s.id != 7 && s.id != 0xfffe), "{seen:?}");
    let mut text = String::new();
    r.handle.render_metrics(&mut text);
    assert!(
        text.contains("spaced_dns_forwarded_total{result=\"ok\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("spaced_dns_upstream_latency_seconds_count 4"),
        "{text}"
    );
}

#[tokio::test]
async fn truncated_upstream_answers_are_retried_over_tcp() {
    let up = upstream::start(Mode::Truncate).await;
    let r = start(&policy_text(&format!("upstreams = [\"{}\"]", up.addr))).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("big.example.org.", RecordType::A, None),
    )
    .await;
    assert!(!m.truncation);
    assert_eq!(ips(&m).len(), 3, "the TCP answer is relayed");
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.tcp).collect::<Vec<_>>(),
        vec![false, true]
    );
}

#[tokio::test]
async fn a_failed_tcp_retry_relays_the_truncated_answer() {
    let up = upstream::start(Mode::TruncateTcpDown).await;
    let r = start(&policy_text(&format!("upstreams = [\"{}\"]", up.addr))).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("big.example.org.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.truncation, "the client learns to ask over TCP");
}

#[tokio::test]
async fn dead_upstreams_give_servfail() {
    // One that never answers (the test options give it 500 ms), one with nothing listening.
    let silent = upstream::start(Mode::Silent).await;
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    for up in [silent.addr, closed] {
        let r = start(&policy_text(&format!("upstreams = [\"{up}\"]"))).await;
        let mut q = query("example.net.", RecordType::A, Some(1232));
        q.metadata.id = 4242;
        let m = udp(r.addr, "127.0.0.1", &q).await;
        assert_eq!(
            (m.id, m.response_code),
            (4242, ResponseCode::ServFail),
            "{up}"
        );
        let m = tcp(r.addr, "127.0.0.1", &q).await;
        assert_eq!(m.response_code, ResponseCode::ServFail, "{up}");
    }
}

#[tokio::test]
async fn no_upstreams_means_refused() {
    let r = start(&policy_text("")).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::Refused);
}

/// Pipelined over TCP behind a forward that hangs (RFC 7766 §6.2.1.1): the zone's own
/// answers come at once, the forward's SERVFAIL after its timeout, each with its id.
#[tokio::test]
async fn a_slow_forward_does_not_hold_up_tcp_answers_behind_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let silent = upstream::start(Mode::Silent).await;
    let r = start(&policy_text(&format!(
        "upstreams = [\"{}\"]\n{}",
        silent.addr,
        dynos_text(1)
    )))
    .await;
    let mut s = tcp_from(r.addr, "127.0.0.1").await;
    let mut all = Vec::new();
    for (id, name) in [
        (1u16, "example.net."),
        (2, "web.big.app.localspace."),
        (3, "web.big.app.localspace."),
    ] {
        let mut q = query(name, RecordType::A, None);
        q.metadata.id = id;
        let bytes = q.to_vec().unwrap();
        all.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        all.extend_from_slice(&bytes);
    }
    within("pipelined write", s.write_all(&all)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let mut len = [0u8; 2];
        within("len", s.read_exact(&mut len)).await.unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        within("body", s.read_exact(&mut buf)).await.unwrap();
        let m = hickory_proto::op::Message::from_vec(&buf).unwrap();
        got.push((m.id, m.response_code));
    }
    assert_eq!(
        got,
        [
            (2, ResponseCode::NoError),
            (3, ResponseCode::NoError),
            (1, ResponseCode::ServFail)
        ]
    );
}
