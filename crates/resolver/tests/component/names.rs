//! The names the zone answers, over the wire.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::support::*;

const APPS: &str = r#"
[router]
internal_listen = ["127.0.0.1:8080"]

[[app]]
name = "api"
hosts = ["api.corp.example"]
routing = "internal"
[[app.dyno]]
addr = "10.0.1.5:5000"
[[app.dyno]]
addr = "10.0.1.6:5001"
[[app.dyno]]
addr = "10.0.1.6:5002"
[[app.dyno]]
process = "worker"
addr = "[fd00::9]:6000"
"#;

fn set(v: &[&str]) -> HashSet<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn process_names_answer_every_ip_once_and_rotate() {
    let r = start(&policy_text(APPS)).await;
    let mut orders = HashSet::new();
    // One TCP connection: its answers rotate in turn (UDP loops each keep their own turn).
    let mut conn = tcp_from(r.addr, "127.0.0.1").await;
    for i in 0..8 {
        let q = query("web.api.app.localspace.", RecordType::A, None);
        let m = if i % 2 == 0 {
            tcp_exchange(&mut conn, &q).await
        } else {
            udp(r.addr, "127.0.0.1", &q).await
        };
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        assert_eq!(
            ips(&m).into_iter().collect::<HashSet<_>>(),
            set(&["10.0.1.5", "10.0.1.6"])
        );
        assert_eq!(m.answers.len(), 2);
        assert!(m.answers.iter().all(|a| a.ttl == 5), "default ttl 5 s");
        if i % 2 == 0 {
            orders.insert(ips(&m));
        }
    }
    assert_eq!(orders.len(), 2, "the order rotates between answers");
    let m = tcp(
        r.addr,
        "127.0.0.2",
        &query("1.worker.api.app.localspace.", RecordType::AAAA, None),
    )
    .await;
    assert_eq!(ips(&m), vec!["fd00::9".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn srv_carries_targets_and_their_addresses() {
    let r = start(&policy_text(APPS)).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("_web._tcp.api.app.localspace.", RecordType::SRV, None),
    )
    .await;
    let mut srv: Vec<_> = m
        .answers
        .iter()
        .map(|a| match &a.data {
            RData::SRV(s) => (s.priority, s.weight, s.port, s.target.to_ascii()),
            other => panic!("{other:?}"),
        })
        .collect();
    srv.sort();
    assert_eq!(
        srv,
        vec![
            (0, 1, 5000, "1.web.api.app.localspace.".to_string()),
            (0, 1, 5001, "2.web.api.app.localspace.".to_string()),
            (0, 1, 5002, "3.web.api.app.localspace.".to_string()),
        ]
    );
    let extra: HashSet<(String, IpAddr)> = m
        .additionals
        .iter()
        .filter_map(|a| match &a.data {
            RData::A(x) => Some((a.name.to_ascii(), IpAddr::V4(x.0))),
            _ => None,
        })
        .collect();
    assert!(extra.contains(&(
        "2.web.api.app.localspace.".into(),
        "10.0.1.6".parse().unwrap()
    )));
    assert_eq!(extra.len(), 3);
    // Each target resolves on its own, too.
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("3.web.api.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(ips(&m), vec!["10.0.1.6".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn case_is_kept_in_the_answer() {
    let r = start(&policy_text(APPS)).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("WEB.Api.App.LOCALSPACE.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.answers.len(), 2);
    assert!(
        m.answers
            .iter()
            .all(|a| a.name.to_ascii() == "WEB.Api.App.LOCALSPACE.")
    );
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("Nope.App.LocalSpace.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.authorities[0].name.to_ascii(), "App.LocalSpace.");
}

#[tokio::test]
async fn nodata_and_nxdomain_with_the_soa() {
    let r = start(&policy_text(APPS)).await;
    let soa_min = |m: &hickory_proto::op::Message| {
        m.authorities.iter().find_map(|a| match &a.data {
            RData::SOA(s) => Some((a.ttl, s.minimum)),
            _ => None,
        })
    };
    for (name, ty) in [
        ("api.app.localspace.", RecordType::A),
        ("web.api.app.localspace.", RecordType::AAAA),
        ("_tcp.api.app.localspace.", RecordType::SRV),
    ] {
        let m = udp(r.addr, "127.0.0.1", &query(name, ty, None)).await;
        assert_eq!(m.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        assert_eq!(soa_min(&m), Some((5, 5)), "{name}");
    }
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("db.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
    assert_eq!(soa_min(&m), Some((5, 5)));
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("app.localspace.", RecordType::SOA, None),
    )
    .await;
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("app.localspace.", RecordType::NS, None),
    )
    .await;
    assert_eq!(m.answers[0].record_type(), RecordType::NS);
}

#[tokio::test]
async fn internal_app_hosts_answer_the_internal_listener() {
    let r = start(&policy_text(APPS)).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("API.corp.example.", RecordType::A, None),
    )
    .await;
    assert_eq!(ips(&m), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn dynos_held_down_are_left_out_unless_all_are() {
    let r = start(&policy_text(APPS)).await;
    let q = query("web.api.app.localspace.", RecordType::A, None);
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    r.board.set_down(a("10.0.1.5:5000"), true);
    for _ in 0..4 {
        let m = udp(r.addr, "127.0.0.1", &q).await;
        assert_eq!(ips(&m), vec!["10.0.1.6".parse::<IpAddr>().unwrap()]);
    }
    // One of the two dynos behind 10.0.1.6 down: the address still serves the other.
    r.board.set_down(a("10.0.1.6:5001"), true);
    let m = udp(r.addr, "127.0.0.1", &q).await;
    assert_eq!(ips(&m), vec!["10.0.1.6".parse::<IpAddr>().unwrap()]);
    r.board.set_down(a("10.0.1.6:5002"), true);
    let m = udp(r.addr, "127.0.0.1", &q).await;
    assert_eq!(m.answers.len(), 2, "all down: all answered");
    r.board.set_down(a("10.0.1.5:5000"), false);
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("_web._tcp.api.app.localspace.", RecordType::SRV, None),
    )
    .await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.additionals.len(), 1);
}

/// The load bench's SUT script maps the peers' `hN.<zone>` records onto spaced's own names;
/// check with the real script that they answer as the peers do.
#[tokio::test]
async fn load_bench_config_answers_the_harness_names() {
    let dir = std::env::temp_dir().join(format!("spaced-sut-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let records = dir.join("records.txt");
    std::fs::write(
        &records,
        "h1.app.localspace 127.1.0.1\nh2.app.localspace 127.1.0.2\n",
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../benches/load/sut_dns.sh");
    let status = within(
        "sut_dns.sh",
        tokio::process::Command::new("bash")
            .arg(script)
            .args([
                dir.to_str().unwrap(),
                "5303",
                records.to_str().unwrap(),
                "app.localspace",
            ])
            .env("SPACED_BIN", "/bin/true")
            .status(),
    )
    .await
    .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(dir.join("spaced-dns.toml")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let r = start(&text.replace("127.0.0.1:5303", "127.0.0.1:0")).await;
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("h1.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(ips(&m), vec!["127.1.0.1".parse::<IpAddr>().unwrap()]);
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("nx1-abcdef.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn wildcard_internal_listener_answers_the_address_asked() {
    let text = policy_text(&APPS.replace("127.0.0.1:8080", "0.0.0.0:8080"));
    let r = start(&text).await;
    let m = udp(
        r.addr,
        "127.0.0.2",
        &query("api.corp.example.", RecordType::A, None),
    )
    .await;
    assert_eq!(ips(&m), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    let m = tcp(
        r.addr,
        "127.0.0.2",
        &query("api.corp.example.", RecordType::A, None),
    )
    .await;
    assert_eq!(ips(&m), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
}
