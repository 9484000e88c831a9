//! Who may ask: `space.internal` only, IPv4-mapped sources folded first.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::AsyncReadExt;

use crate::support::*;
use crate::upstream::{self, Mode};

#[tokio::test]
async fn outside_the_space_is_refused_and_nothing_forwarded() {
    let up = upstream::start(Mode::Answer).await;
    let r = start(&policy_text(&format!(
        "upstreams = [\"{}\"]\n{}",
        up.addr,
        dynos_text(2)
    )))
    .await;
    for name in ["web.big.app.localspace.", "example.com."] {
        let q = query(name, RecordType::A, None);
        let m = udp(r.addr, "127.0.0.3", &q).await;
        assert_eq!(m.response_code, ResponseCode::Refused, "{name} over udp");
        assert!(m.answers.is_empty());
        let mut conn = tcp_from(r.addr, "127.0.0.3").await;
        let m = tcp_exchange(&mut conn, &q).await;
        assert_eq!(m.response_code, ResponseCode::Refused, "{name} over tcp");
        // One answer, then the connection ends: outsiders cannot hold TCP slots.
        let mut buf = [0u8; 1];
        let n = within("outsider closed", conn.read(&mut buf))
            .await
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    assert!(
        up.seen.lock().unwrap().is_empty(),
        "nothing forwarded for outsiders"
    );
    let m = udp(
        r.addr,
        "127.0.0.2",
        &query("web.big.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    let mut text = String::new();
    r.handle.render_metrics(&mut text);
    assert!(text.contains("spaced_dns_refused_acl_total 4"), "{text}");
    assert!(
        text.contains("spaced_dns_queries_total{type=\"A\",rcode=\"REFUSED\"} 4"),
        "{text}"
    );
}

#[tokio::test]
async fn mapped_ipv4_sources_are_folded() {
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
    let text = policy_text(&dynos_text(1)).replace("127.0.0.1:0", "[::]:0");
    let r = start(&text).await;
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], r.addr.port()));
    let q = query("web.big.app.localspace.", RecordType::A, None);
    let m = udp(server, "127.0.0.1", &q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    let m = udp(server, "127.0.0.3", &q).await;
    assert_eq!(m.response_code, ResponseCode::Refused);
    let m = tcp(server, "127.0.0.2", &q).await;
    assert_eq!(m.response_code, ResponseCode::NoError);
}
