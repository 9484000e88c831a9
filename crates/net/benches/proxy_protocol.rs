//! PROXY header parsing, the per-connection cost on a `proxy_protocol = true` listener.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use spaced_net::proxy_protocol::{Command, encode_v1, encode_v2, parse};

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "v1/tcp4",
            encode_v1(addr("203.0.113.9:51234"), addr("10.0.0.2:443")),
        ),
        (
            "v1/tcp6",
            encode_v1(addr("[2001:db8::9]:51234"), addr("[2001:db8::2]:443")),
        ),
        (
            "v2/tcp4",
            encode_v2(
                Command::Proxy,
                addr("203.0.113.9:51234"),
                addr("10.0.0.2:443"),
            ),
        ),
        (
            "v2/tcp6",
            encode_v2(
                Command::Proxy,
                addr("[2001:db8::9]:51234"),
                addr("[2001:db8::2]:443"),
            ),
        ),
    ];
    let mut group = c.benchmark_group("proxy_protocol/parse");
    for (name, wire) in &cases {
        let mut buf = wire.clone();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        group.bench_function(*name, |b| b.iter(|| parse(black_box(&buf))));
        // The reader's first step on a v1 header: a prefix, answered with a lower bound.
        let prefix = &wire[..wire.len() / 2];
        group.bench_function(format!("{name}/half"), |b| {
            b.iter(|| parse(black_box(prefix)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
