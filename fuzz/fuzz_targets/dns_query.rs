//! Fuzzes the resolver's per-query core (`spaced_resolver::answer`) on arbitrary bytes, over
//! both transports and for clients inside and outside the space: it never panics; it drops
//! only what has no header or is a response; every reply keeps the query's id, has QR set,
//! fits the UDP limit over UDP, and decodes with hickory-proto (an independent decoder).
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spaced_resolver::proto::op::Message;
use spaced_resolver::{Outcome, Request, Transport, Zone, answer};

const POLICY: &str = r#"
[space]
name = "fuzz"
internal = ["127.0.0.1/32"]
[router]
internal_listen = ["10.0.0.2:80", "0.0.0.0:8080", "[fd00::2]:80"]
[resolver]
listen = ["127.0.0.1:0"]
upstreams = ["127.0.0.1:53"]
[[app]]
name = "api"
hosts = ["api.corp.example", "*.svc.example", "x.app.localspace"]
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

fn zone() -> &'static (Zone, HashSet<SocketAddr>) {
    static ZONE: OnceLock<(Zone, HashSet<SocketAddr>)> = OnceLock::new();
    ZONE.get_or_init(|| {
        let source = spaced_config::Source {
            name: "fuzz.toml",
            dir: Path::new("."),
            read: &|p| std::fs::read(p),
        };
        let policy = spaced_config::parse(POLICY.as_bytes(), &source).expect("fuzz policy parses");
        let down = ["10.0.1.5:5000".parse().expect("addr")].into_iter().collect();
        (Zone::compile(&policy, 1).0, down)
    })
}

fuzz_target!(|data: &[u8]| {
    let (zone, down) = zone();
    let mut out = Vec::new();
    for (transport, in_space, with_down) in [
        (Transport::Udp, true, false),
        (Transport::Tcp, true, true),
        (Transport::Udp, false, false),
    ] {
        let req = Request {
            query: data,
            client_in_space: in_space,
            transport,
            local: Some("10.9.9.9".parse().expect("ip")),
            down: with_down.then_some(down),
            rotate: data.len(),
        };
        match answer(zone, &req, &mut out) {
            Outcome::Drop => {
                assert!(out.is_empty());
                assert!(data.len() < 12 || data[2] & 0x80 != 0, "dropped a readable query");
            }
            Outcome::Forward(f) => {
                assert!(in_space, "forwarded for an outsider");
                assert!(f.question_end <= data.len());
            }
            Outcome::Reply(_) => {
                assert!(out.len() >= 12);
                assert_eq!(out[..2], data[..2], "id kept");
                assert!(out[2] & 0x80 != 0, "QR set");
                if transport == Transport::Udp {
                    assert!(out.len() <= 1232, "UDP answer of {} bytes", out.len());
                }
                if let Err(e) = Message::from_vec(&out) {
                    panic!("our answer does not decode: {e}\nquery {data:02x?}\nanswer {out:02x?}");
                }
            }
        }
    }
});
