//! The router's admission hot paths: the L4 check right after accept (one binary search
//! over the compiled `space.trusted`, whatever its size) and the trusted-proxy walk of
//! `X-Forwarded-For`. IDs are `group/case/size`.

// Bench setup: a failed unwrap is a broken bench, not an input to handle.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use spaced_config::Policy;
use spaced_router::access::{Listener, admit_l4, client_ip, route};

/// `n` distinct /24 and /32 CIDRs spread over the IPv4 space (seeded, no RNG crate needed),
/// plus 127.0.0.0/8 last, as the peer harness's `gen-acl` does.
fn trusted_list(n: usize) -> String {
    let mut out = String::with_capacity(n * 20);
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..n.saturating_sub(1) {
        // xorshift32: cheap, deterministic, covers the space.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let a = (x >> 24) as u8;
        if a == 127 || a >= 224 {
            continue;
        }
        if i % 2 == 0 {
            out.push_str(&format!(
                "{a}.{}.{}.0/24\n",
                (x >> 16) as u8,
                (x >> 8) as u8
            ));
        } else {
            out.push_str(&format!(
                "{a}.{}.{}.{}\n",
                (x >> 16) as u8,
                (x >> 8) as u8,
                x as u8
            ));
        }
    }
    out.push_str("127.0.0.0/8\n");
    out
}

fn policy(trusted: &str, list: Option<String>) -> Policy {
    let toml = format!(
        "[space]\nname = \"b\"\n{trusted}\n[router]\nlisten = [\"127.0.0.1:0\"]\n\
         trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\n\
         [[app]]\nname = \"api\"\nhosts = [\"api.example.com\"]\ntrusted = [\"198.51.100.0/24\"]\n"
    );
    let read = move |_: &Path| {
        list.clone()
            .map(String::into_bytes)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    let source = spaced_config::Source {
        name: "bench.toml",
        dir: Path::new("."),
        read: &read,
    };
    match spaced_config::parse(toml.as_bytes(), &source) {
        Ok(p) => p,
        Err(e) => panic!("bench policy: {e}"),
    }
}

fn admit(c: &mut Criterion) {
    let small = policy("trusted = [\"127.0.0.0/8\", \"10.0.0.0/8\"]", None);
    let big = policy(
        "trusted = []\ntrusted_file = \"trusted.txt\"",
        Some(trusted_list(100_000)),
    );
    let hit: IpAddr = "127.0.0.2".parse().unwrap();
    let miss: IpAddr = "203.0.113.9".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
    let mut g = c.benchmark_group("admit_l4");
    for (name, p) in [("2", &small), ("100k", &big)] {
        g.bench_function(format!("hit/{name}"), |b| {
            b.iter(|| admit_l4(p, Listener::External, black_box(hit)).is_ok())
        });
        g.bench_function(format!("miss/{name}"), |b| {
            b.iter(|| admit_l4(p, Listener::External, black_box(miss)).is_ok())
        });
        g.bench_function(format!("mapped/{name}"), |b| {
            b.iter(|| admit_l4(p, Listener::External, black_box(mapped)).is_ok())
        });
    }
    g.finish();
}

fn forwarded(c: &mut Criterion) {
    let p = policy("", None);
    let mut three = HeaderMap::new();
    three.insert(
        "x-forwarded-for",
        HeaderValue::from_static("198.51.100.7, 10.1.2.3, 192.0.2.1"),
    );
    let trusted_peer: IpAddr = "10.0.0.1".parse().unwrap();
    let untrusted_peer: IpAddr = "203.0.113.9".parse().unwrap();
    let mut g = c.benchmark_group("client_ip");
    g.bench_function("trusted_peer/3", |b| {
        b.iter(|| client_ip(&p, black_box(trusted_peer), black_box(&three)))
    });
    g.bench_function("untrusted_peer/3", |b| {
        b.iter(|| client_ip(&p, black_box(untrusted_peer), black_box(&three)))
    });
    g.finish();
    let client: IpAddr = "198.51.100.7".parse().unwrap();
    c.bench_function("route/exact/1", |b| {
        b.iter(|| {
            route(
                &p,
                Listener::External,
                black_box("API.example.com:443"),
                client,
            )
            .is_ok()
        })
    });
}

criterion_group!(benches, admit, forwarded);
criterion_main!(benches);
