//! A burst of UDP queries from several sources, IPv4, IPv4-mapped and IPv6, inside and
//! outside the space, mixed with malformed datagrams: the server takes them in batches
//! (`recvmmsg`) and answers them together (`sendmmsg`), and every answer must still be the
//! one its query alone would get, sent to its own source.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use spaced_resolver::Options;

use crate::support::*;

/// What a query of the burst must get back.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    /// NOERROR with this one address.
    One(String),
    NxDomain,
    /// TC set, no answers (60 records over 512 bytes).
    Truncated,
    /// NOERROR with all 60 records (EDNS0 4096).
    All,
    Refused,
}

#[tokio::test]
async fn a_burst_from_several_sources_is_answered_query_by_query() {
    let have_v6 = UdpSocket::bind("[::1]:0").is_ok();
    let (listen, internal) = if have_v6 {
        (
            "[::]:0",
            r#"internal = ["127.0.0.1/32", "127.0.0.2/32", "::1/128"]"#,
        )
    } else {
        (
            "127.0.0.1:0",
            r#"internal = ["127.0.0.1/32", "127.0.0.2/32"]"#,
        )
    };
    let text = policy_text(&dynos_text(60))
        .replace("127.0.0.1:0", listen)
        .replace(r#"internal = ["127.0.0.1/32", "127.0.0.2/32"]"#, internal);
    // One socket: every flow lands on the same loop, so the burst queues up behind it.
    let options = Options {
        udp_tasks: 1,
        ..Options::default()
    };
    let r = start_with(&text, options).await;
    let port = r.addr.port();
    let v4_server = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sources = vec![
        ("127.0.0.1", true),
        ("127.0.0.2", true),
        ("127.0.0.3", false),
    ];
    if have_v6 {
        sources.push(("::1", true));
    }
    let clients: Vec<(UdpSocket, SocketAddr, bool)> = sources
        .iter()
        .map(|&(src, inside)| {
            let s = UdpSocket::bind((src, 0)).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            let to = if src == "::1" {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
            } else {
                v4_server
            };
            (s, to, inside)
        })
        .collect();

    // Build every datagram first, then send them back to back: the server wakes on the
    // first and finds the others queued.
    let mut burst = Vec::new();
    let mut wants: Vec<HashMap<u16, (String, Want)>> = vec![HashMap::new(); clients.len()];
    let mut garbage = 0;
    for i in 0..96u16 {
        let c = usize::from(i) % clients.len();
        let inside = clients[c].2;
        let (name, edns, want) = match i % 4 {
            0 => {
                let n = usize::from(i) % 60;
                let name = format!("{}.web.big.app.localspace.", n + 1);
                (name, None, Want::One(format!("10.1.0.{}", n + 1)))
            }
            1 => (format!("nx{i}.big.app.localspace."), None, Want::NxDomain),
            2 => ("web.big.app.localspace.".to_string(), None, Want::Truncated),
            _ => ("web.big.app.localspace.".to_string(), Some(4096), Want::All),
        };
        let want = if inside { want } else { Want::Refused };
        let mut q = query(&name, RecordType::A, edns);
        q.metadata.id = 1000 + i;
        wants[c].insert(q.metadata.id, (name, want));
        burst.push((c, q.to_vec().unwrap()));
        if i % 16 == 5 {
            // Too short for a header: dropped, and nothing else with it.
            burst.push((c, vec![1, 2, 3]));
            garbage += 1;
        }
    }
    for (c, bytes) in &burst {
        let (sock, to, _) = &clients[*c];
        sock.send_to(bytes, to).unwrap();
    }

    let checks = tokio::task::spawn_blocking(move || {
        for ((sock, to, _), wanted) in clients.into_iter().zip(wants) {
            // Nothing more: the garbage got no answer, no answer went to another source.
            expect_answers(&sock, to, wanted);
        }
    });
    within("burst answered", checks).await.unwrap();

    let mut text = String::new();
    r.handle.render_metrics(&mut text);
    assert!(
        text.contains(&format!("spaced_dns_dropped_total {garbage}")),
        "{text}"
    );
}

/// Many queries from ONE client socket with answers of the same size (names of the same
/// length) back to back: the answers leave in GSO groups (`UDP_SEGMENT`), and the client,
/// which has no `UDP_GRO`, must still receive each as its own datagram that decodes alone.
#[tokio::test]
async fn equal_sized_answers_to_one_client_arrive_one_per_datagram() {
    let options = Options {
        udp_tasks: 1,
        ..Options::default()
    };
    let r = start_with(&policy_text(&dynos_text(60)), options).await;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&sock)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    sock.set_read_timeout(Some(T)).unwrap();
    let server = r.addr;
    let mut wanted = HashMap::new();
    for i in 0..150u16 {
        // Mostly two-digit names (equal answers), broken up by one-digit ones and NXDOMAIN.
        let (name, want) = match i % 25 {
            7 => (format!("{}.web.big.app.localspace.", i % 9 + 1), None),
            19 => (format!("nx{i}.big.app.localspace."), Some(Want::NxDomain)),
            _ => (format!("{}.web.big.app.localspace.", i % 50 + 10), None),
        };
        let want = want.unwrap_or_else(|| {
            let n = name.split('.').next().unwrap().to_string();
            Want::One(format!("10.1.0.{n}"))
        });
        let mut q = query(&name, RecordType::A, None);
        q.metadata.id = 2000 + i;
        sock.send_to(&q.to_vec().unwrap(), server).unwrap();
        wanted.insert(q.metadata.id, (name, want));
    }
    let checks = tokio::task::spawn_blocking(move || expect_answers(&sock, server, wanted));
    within("burst answered", checks).await.unwrap();
}

/// Receives on `sock` until every query of `wanted` (by id) is answered from `server`, each
/// answer one datagram that decodes alone and is what its query wants; then checks that
/// nothing more arrives.
fn expect_answers(sock: &UdpSocket, server: SocketAddr, mut wanted: HashMap<u16, (String, Want)>) {
    let mut buf = vec![0u8; 65535];
    while !wanted.is_empty() {
        let (n, from) = sock.recv_from(&mut buf).expect("every query is answered");
        assert_eq!(from, server);
        let m = Message::from_vec(&buf[..n]).expect("one answer per datagram");
        let (name, want) = wanted
            .remove(&m.metadata.id)
            .unwrap_or_else(|| panic!("unexpected or repeated id {}", m.metadata.id));
        check(&m, &name, &want);
    }
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "an extra datagram arrived"
    );
}

fn check(m: &Message, name: &str, want: &Want) {
    assert_eq!(m.queries.len(), 1, "{name}");
    assert_eq!(m.queries[0].name().to_ascii(), name);
    let what = format!("{name} {want:?}");
    match want {
        Want::One(ip) => {
            assert_eq!(m.response_code, ResponseCode::NoError, "{what}");
            assert_eq!(
                ips(m),
                vec![ip.parse::<std::net::IpAddr>().unwrap()],
                "{what}"
            );
        }
        Want::NxDomain => assert_eq!(m.response_code, ResponseCode::NXDomain, "{what}"),
        Want::Truncated => {
            assert!(m.truncation, "{what}");
            assert!(m.answers.is_empty(), "{what}");
        }
        Want::All => {
            assert!(!m.truncation, "{what}");
            assert_eq!(m.answers.len(), 60, "{what}");
        }
        Want::Refused => {
            assert_eq!(m.response_code, ResponseCode::Refused, "{what}");
            assert!(m.answers.is_empty(), "{what}");
        }
    }
}
