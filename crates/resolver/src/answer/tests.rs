use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;

const POLICY: &str = r#"
[space]
name = "t"
internal = ["127.0.0.1/32", "127.0.0.2/32"]

[router]
internal_listen = ["10.0.0.2:80", "[fd00::2]:80"]

[resolver]
listen = ["127.0.0.1:0"]
upstreams = ["127.0.0.1:9"]

[[app]]
name = "api"
hosts = ["api.internal.example", "*.svc.example"]
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

pub(crate) fn zone_of(text: &str) -> Zone {
    let source = spaced_config::Source {
        name: "test.toml",
        dir: Path::new("."),
        read: &|p| std::fs::read(p),
    };
    let policy = spaced_config::parse(text.as_bytes(), &source).expect("test policy parses");
    Zone::compile(&policy, 7).0
}

pub(crate) fn query(name: &str, ty: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn ask_with<'a>(
    zone: &Zone,
    q: &'a [u8],
    f: impl FnOnce(&mut Request<'a>),
) -> (Outcome, Option<Message>) {
    let mut req = Request {
        query: q,
        client_in_space: true,
        transport: Transport::Udp,
        local: None,
        down: None,
        rotate: 0,
    };
    f(&mut req);
    let mut out = Vec::new();
    let o = answer(zone, &req, &mut out);
    let m = (!out.is_empty()).then(|| Message::from_vec(&out).expect("our answer decodes"));
    (o, m)
}

fn ask(zone: &Zone, name: &str, ty: RecordType) -> Message {
    ask_with(zone, &query(name, ty, None), |_| {}).1.unwrap()
}

fn ips(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn soa_minimum(m: &Message) -> Option<u32> {
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.minimum),
        _ => None,
    })
}

#[test]
fn process_name_answers_each_ip_once() {
    let z = zone_of(POLICY);
    let m = ask(&z, "web.api.app.localspace.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.authoritative);
    assert_eq!(m.id, 0x1234);
    assert_eq!(m.message_type, MessageType::Response);
    let got: HashSet<_> = ips(&m).into_iter().collect();
    let want: HashSet<IpAddr> = ["10.0.1.5", "10.0.1.6"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(m.answers.len(), 2, "dynos sharing an IP give one record");
    assert!(m.answers.iter().all(|r| r.ttl == 5));
}

#[test]
fn order_rotates() {
    let z = zone_of(POLICY);
    let q = query("web.api.app.localspace.", RecordType::A, None);
    let a = ips(&ask_with(&z, &q, |r| r.rotate = 0).1.unwrap());
    let b = ips(&ask_with(&z, &q, |r| r.rotate = 1).1.unwrap());
    assert_ne!(a, b);
    assert_eq!(
        a.iter().collect::<HashSet<_>>(),
        b.iter().collect::<HashSet<_>>()
    );
}

#[test]
fn case_is_preserved_and_ignored() {
    let z = zone_of(POLICY);
    let m = ask(&z, "WeB.API.app.LocalSpace.", RecordType::A);
    assert_eq!(m.answers.len(), 2);
    for r in &m.answers {
        assert_eq!(r.name.to_ascii(), "WeB.API.app.LocalSpace.");
    }
    assert_eq!(m.queries[0].name().to_ascii(), "WeB.API.app.LocalSpace.");
}

#[test]
fn numbered_dyno() {
    let z = zone_of(POLICY);
    let m = ask(&z, "2.web.api.app.localspace.", RecordType::A);
    assert_eq!(ips(&m), vec!["10.0.1.6".parse::<IpAddr>().unwrap()]);
    let m = ask(&z, "1.worker.api.app.localspace.", RecordType::AAAA);
    assert_eq!(ips(&m), vec!["fd00::9".parse::<IpAddr>().unwrap()]);
    let m = ask(&z, "9.web.api.app.localspace.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NXDomain);
}

#[test]
fn srv_with_additional_addresses() {
    let z = zone_of(POLICY);
    let m = ask(&z, "_web._tcp.API.app.localspace.", RecordType::SRV);
    assert_eq!(m.response_code, ResponseCode::NoError);
    let mut srv: Vec<(u16, String)> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => {
                assert_eq!((s.priority, s.weight), (0, 1));
                (s.port, s.target.to_ascii())
            }
            other => panic!("not SRV: {other:?}"),
        })
        .collect();
    srv.sort();
    assert_eq!(
        srv,
        vec![
            (5000, "1.web.API.app.localspace.".to_string()),
            (5001, "2.web.API.app.localspace.".to_string()),
            (5002, "3.web.API.app.localspace.".to_string()),
        ]
    );
    let mut add: Vec<(String, IpAddr)> = m
        .additionals
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((r.name.to_ascii(), IpAddr::V4(a.0))),
            _ => None,
        })
        .collect();
    add.sort();
    assert_eq!(add.len(), 3);
    assert_eq!(
        add[0],
        (
            "1.web.API.app.localspace.".into(),
            "10.0.1.5".parse().unwrap()
        )
    );
    assert_eq!(
        add[2],
        (
            "3.web.API.app.localspace.".into(),
            "10.0.1.6".parse().unwrap()
        )
    );
}

#[test]
fn nodata_versus_nxdomain() {
    let z = zone_of(POLICY);
    for (name, ty) in [
        ("api.app.localspace.", RecordType::A),
        ("_tcp.api.app.localspace.", RecordType::A),
        ("web.api.app.localspace.", RecordType::AAAA),
        ("web.api.app.localspace.", RecordType::TXT),
        ("app.localspace.", RecordType::A),
    ] {
        let m = ask(&z, name, ty);
        assert_eq!(m.response_code, ResponseCode::NoError, "{name} {ty}");
        assert!(m.answers.is_empty(), "{name} {ty}");
        assert_eq!(soa_minimum(&m), Some(5), "{name} {ty}: SOA in authority");
    }
    for name in [
        "nope.app.localspace.",
        "x.web.api.app.localspace.",
        "other.app.localspace.",
    ] {
        let m = ask(&z, name, RecordType::A);
        assert_eq!(m.response_code, ResponseCode::NXDomain, "{name}");
        assert_eq!(soa_minimum(&m), Some(5), "{name}");
        assert_eq!(m.authorities[0].name.to_ascii(), "app.localspace.");
    }
}

#[test]
fn apex_soa_and_ns() {
    let z = zone_of(POLICY);
    let m = ask(&z, "App.LocalSpace.", RecordType::SOA);
    match &m.answers[0].data {
        RData::SOA(s) => {
            assert_eq!(s.serial, 7);
            assert_eq!(s.minimum, 5);
        }
        other => panic!("{other:?}"),
    }
    let m = ask(&z, "app.localspace.", RecordType::NS);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::NS);
    let m = ask(&z, "app.localspace.", RecordType::ANY);
    assert_eq!(m.answers.len(), 2);
}

#[test]
fn internal_hosts_answer_router_internal_listen() {
    let z = zone_of(POLICY);
    let m = ask(&z, "api.internal.example.", RecordType::A);
    assert_eq!(ips(&m), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    let m = ask(&z, "API.internal.example.", RecordType::AAAA);
    assert_eq!(ips(&m), vec!["fd00::2".parse::<IpAddr>().unwrap()]);
    // Wildcard hosts cover one or more labels, not the suffix itself.
    let m = ask(&z, "a.b.svc.example.", RecordType::A);
    assert_eq!(ips(&m), vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    let (o, _) = ask_with(&z, &query("svc.example.", RecordType::A, None), |_| {});
    assert!(matches!(o, Outcome::Forward(_)));
    // Outside the domain: NODATA carries no SOA (we hold no zone above the name).
    let m = ask(&z, "api.internal.example.", RecordType::TXT);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
}

#[test]
fn unspecified_internal_listen_answers_the_local_address() {
    let z = zone_of(&POLICY.replace(r#"["10.0.0.2:80", "[fd00::2]:80"]"#, r#"["0.0.0.0:80"]"#));
    let q = query("api.internal.example.", RecordType::A, None);
    let (_, m) = ask_with(&z, &q, |r| r.local = Some("10.9.9.9".parse().unwrap()));
    assert_eq!(
        ips(&m.unwrap()),
        vec!["10.9.9.9".parse::<IpAddr>().unwrap()]
    );
    let (_, m) = ask_with(&z, &q, |_| {});
    let m = m.unwrap();
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert!(
        m.answers.is_empty(),
        "no usable address without the local one"
    );
}

#[test]
fn outside_the_space_is_refused() {
    let z = zone_of(POLICY);
    for name in ["web.api.app.localspace.", "example.com."] {
        let (o, m) = ask_with(&z, &query(name, RecordType::A, None), |r| {
            r.client_in_space = false
        });
        let m = m.unwrap();
        assert_eq!(m.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
        assert!(matches!(
            o,
            Outcome::Reply(Reply {
                refused_acl: true,
                ..
            })
        ));
    }
}

#[test]
fn other_names_forward_or_refuse() {
    let z = zone_of(POLICY);
    let q = query("Example.COM.", RecordType::A, Some(4096));
    let (o, m) = ask_with(&z, &q, |_| {});
    assert!(m.is_none());
    match o {
        Outcome::Forward(f) => {
            assert_eq!(f.id, 0x1234);
            assert_eq!(f.udp_limit, 1232);
            assert!(f.edns);
        }
        other => panic!("{other:?}"),
    }
    let z = zone_of(&POLICY.replace(r#"upstreams = ["127.0.0.1:9"]"#, ""));
    let (_, m) = ask_with(&z, &q, |_| {});
    assert_eq!(m.unwrap().response_code, ResponseCode::Refused);
}

#[test]
fn down_dynos_left_out_unless_all_are() {
    let z = zone_of(POLICY);
    let q = query("web.api.app.localspace.", RecordType::A, None);
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    // One of the two dynos on 10.0.1.6 down: the IP stays.
    let down: HashSet<_> = [a("10.0.1.6:5001")].into();
    let m = ask_with(&z, &q, |r| r.down = Some(&down)).1.unwrap();
    assert_eq!(m.answers.len(), 2);
    let down: HashSet<_> = [a("10.0.1.6:5001"), a("10.0.1.6:5002")].into();
    for rotate in 0..4 {
        let m = ask_with(&z, &q, |r| {
            r.down = Some(&down);
            r.rotate = rotate;
        })
        .1
        .unwrap();
        assert_eq!(ips(&m), vec!["10.0.1.5".parse::<IpAddr>().unwrap()]);
    }
    let down: HashSet<_> = [a("10.0.1.5:5000"), a("10.0.1.6:5001"), a("10.0.1.6:5002")].into();
    let m = ask_with(&z, &q, |r| r.down = Some(&down)).1.unwrap();
    assert_eq!(m.answers.len(), 2, "all down: all answered");
    // SRV follows the same rule, additional records too.
    let q = query("_web._tcp.api.app.localspace.", RecordType::SRV, None);
    let down: HashSet<_> = [a("10.0.1.5:5000")].into();
    let m = ask_with(&z, &q, |r| r.down = Some(&down)).1.unwrap();
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.additionals.len(), 2);
}

fn big_zone(n: usize) -> Zone {
    let mut text = String::from(
        "[space]\nname = \"t\"\ninternal = [\"127.0.0.1/32\"]\n[resolver]\nlisten = [\"127.0.0.1:0\"]\n[[app]]\nname = \"big\"\n",
    );
    for i in 0..n {
        text += &format!(
            "[[app.dyno]]\naddr = \"10.1.{}.{}:80\"\n",
            i / 250,
            i % 250 + 1
        );
    }
    zone_of(&text)
}

#[test]
fn udp_truncates_tcp_does_not() {
    let z = big_zone(60);
    let q = query("web.big.app.localspace.", RecordType::A, None);
    let (o, m) = ask_with(&z, &q, |_| {});
    let m = m.unwrap();
    assert!(m.truncation);
    assert!(m.answers.is_empty());
    assert!(matches!(
        o,
        Outcome::Reply(Reply {
            truncated: true,
            ..
        })
    ));
    let (_, m) = ask_with(&z, &q, |r| r.transport = Transport::Tcp);
    let m = m.unwrap();
    assert!(!m.truncation);
    assert_eq!(m.answers.len(), 60);
    // EDNS0 1232 holds 60 A records; 512 advertised is the classic limit.
    let (_, m) = ask_with(
        &z,
        &query("web.big.app.localspace.", RecordType::A, Some(1232)),
        |_| {},
    );
    let m = m.unwrap();
    assert!(!m.truncation);
    assert_eq!(m.answers.len(), 60);
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let (_, m) = ask_with(
        &z,
        &query("web.big.app.localspace.", RecordType::A, Some(100)),
        |_| {},
    );
    assert!(m.unwrap().truncation, "sizes under 512 count as 512");
    // SRV: the answers fit in 1232 but not the additional records: those go, no TC.
    let z = big_zone(40);
    let q = query("_web._tcp.big.app.localspace.", RecordType::SRV, Some(1232));
    let m = ask_with(&z, &q, |_| {}).1.unwrap();
    assert!(!m.truncation);
    assert_eq!(m.answers.len(), 40);
    assert!(m.additionals.is_empty());
}

#[test]
fn malformed_and_odd_queries() {
    let z = zone_of(POLICY);
    let mut out = Vec::new();
    fn req(q: &[u8]) -> Request<'_> {
        Request {
            query: q,
            client_in_space: true,
            transport: Transport::Udp,
            local: None,
            down: None,
            rotate: 0,
        }
    }
    // No header: dropped.
    assert_eq!(answer(&z, &req(&[1, 2, 3]), &mut out), Outcome::Drop);
    assert!(out.is_empty());
    // A response: dropped.
    let mut q = query("web.api.app.localspace.", RecordType::A, None);
    q[2] |= 0x80;
    assert_eq!(answer(&z, &req(&q), &mut out), Outcome::Drop);
    // A header and garbage: FORMERR with the id.
    let mut q = query("web.api.app.localspace.", RecordType::A, None);
    q.truncate(20);
    answer(&z, &req(&q), &mut out);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!((m.id, m.response_code), (0x1234, ResponseCode::FormErr));
    // Two questions: FORMERR.
    let mut q = query("web.api.app.localspace.", RecordType::A, None);
    q[5] = 2;
    answer(&z, &req(&q), &mut out);
    assert_eq!(
        Message::from_vec(&out).unwrap().response_code,
        ResponseCode::FormErr
    );
    // Another opcode: NOTIMP.
    let mut q = query("web.api.app.localspace.", RecordType::A, None);
    q[2] |= 0x10; // opcode 2 (STATUS)
    answer(&z, &req(&q), &mut out);
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.response_code, ResponseCode::NotImp);
    assert_eq!(m.op_code, OpCode::Status);
    // Zone transfers and other classes: REFUSED.
    let m = ask(&z, "app.localspace.", RecordType::AXFR);
    assert_eq!(m.response_code, ResponseCode::Refused);
    let mut m = Message::query();
    let mut qq = Query::query(
        Name::from_ascii("web.api.app.localspace.").unwrap(),
        RecordType::A,
    );
    qq.set_query_class(DNSClass::CH);
    m.add_query(qq);
    let q = m.to_vec().unwrap();
    answer(&z, &req(&q), &mut out);
    assert_eq!(
        Message::from_vec(&out).unwrap().response_code,
        ResponseCode::Refused
    );
}

#[test]
fn edns_version_above_zero_is_badvers() {
    let z = zone_of(POLICY);
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("web.api.app.localspace.").unwrap(),
        RecordType::A,
    ));
    let mut e = Edns::new();
    e.set_version(1);
    m.set_edns(e);
    let q = m.to_vec().unwrap();
    let (o, m) = ask_with(&z, &q, |_| {});
    assert!(matches!(
        o,
        Outcome::Reply(Reply {
            rcode: Rcode::BadVers,
            ..
        })
    ));
    // 16 is both BADVERS and BADSIG; hickory names it the latter.
    assert_eq!(u16::from(m.unwrap().response_code), 16);
}

mod property {
    use proptest::prelude::*;

    use super::*;

    /// A valid query for a name built from zone-ish labels, then mutated byte by byte.
    fn mutated_query() -> impl Strategy<Value = Vec<u8>> {
        let labels = prop::sample::select(vec![
            "web",
            "api",
            "app",
            "localspace",
            "_web",
            "_tcp",
            "1",
            "2",
            "WEB",
            "x",
            "svc",
            "example",
            "internal",
        ]);
        let types = prop::sample::select(vec![
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::SOA,
            RecordType::NS,
            RecordType::ANY,
            RecordType::TXT,
        ]);
        (
            prop::collection::vec(labels, 1..7),
            types,
            prop::option::of(0u16..5000),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        )
            .prop_map(|(labels, ty, edns, flips)| {
                let mut q = query(&format!("{}.", labels.join(".")), ty, edns);
                for (at, byte) in flips {
                    let i = at.index(q.len());
                    q[i] = byte;
                }
                q
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn replies_decode_and_fit(q in mutated_query(), tcp in any::<bool>(), inside in any::<bool>()) {
            let z = zone_of(POLICY);
            let down: HashSet<SocketAddr> = ["10.0.1.5:5000".parse().unwrap()].into();
            let req = Request {
                query: &q,
                client_in_space: inside,
                transport: if tcp { Transport::Tcp } else { Transport::Udp },
                local: Some("10.9.9.9".parse().unwrap()),
                down: Some(&down),
                rotate: q.len(),
            };
            let mut out = Vec::new();
            match answer(&z, &req, &mut out) {
                Outcome::Drop => prop_assert!(q.len() < 12 || q[2] & 0x80 != 0),
                Outcome::Forward(f) => {
                    prop_assert!(inside);
                    prop_assert!(f.question_end <= q.len());
                }
                Outcome::Reply(_) => {
                    prop_assert_eq!(&out[..2], &q[..2]);
                    prop_assert!(tcp || out.len() <= 1232);
                    prop_assert!(Message::from_vec(&out).is_ok(), "answer {:02x?}", out);
                }
            }
        }
    }
}
