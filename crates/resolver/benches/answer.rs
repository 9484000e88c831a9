//! The per-query path of the resolver (`spaced_resolver::answer` over a compiled zone):
//! a hit, an NXDOMAIN, an SRV with additional records, and a name to forward. IDs are
//! `dns_answer/<case>/<dynos>` so runs compare.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use spaced_resolver::{Request, Transport, Zone, answer};

/// 100 apps with `dynos` web dynos each, like a mid-sized space.
fn zone(dynos: usize) -> Zone {
    let mut text = String::from(
        "[space]\nname = \"b\"\ninternal = [\"127.0.0.0/8\"]\n[resolver]\nlisten = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:53\"]\n",
    );
    for a in 0..100 {
        text += &format!("[[app]]\nname = \"app{a}\"\n");
        for d in 0..dynos {
            text += &format!(
                "[[app.dyno]]\naddr = \"10.{a}.{}.{}:5000\"\n",
                d / 250,
                d % 250 + 1
            );
        }
    }
    let source = spaced_config::Source {
        name: "bench.toml",
        dir: Path::new("."),
        read: &|p| std::fs::read(p),
    };
    let policy = spaced_config::parse(text.as_bytes(), &source).expect("bench policy parses");
    Zone::compile(&policy, 1).0
}

fn query(name: &str, ty: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), ty));
    m.to_vec().expect("encodes")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_answer");
    for dynos in [1usize, 4] {
        let z = zone(dynos);
        let cases = [
            ("hit", query("web.app42.app.localspace.", RecordType::A)),
            ("nxdomain", query("nope42.app.localspace.", RecordType::A)),
            (
                "srv",
                query("_web._tcp.app42.app.localspace.", RecordType::SRV),
            ),
            ("forward", query("www.example.com.", RecordType::A)),
        ];
        for (case, q) in &cases {
            let mut out = Vec::with_capacity(4096);
            let mut rotate = 0usize;
            g.bench_function(format!("{case}/{dynos}"), |b| {
                b.iter(|| {
                    rotate = rotate.wrapping_add(1);
                    let req = Request {
                        query: black_box(q),
                        client_in_space: true,
                        transport: Transport::Udp,
                        local: None,
                        down: None,
                        rotate,
                    };
                    black_box(answer(&z, &req, &mut out))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
