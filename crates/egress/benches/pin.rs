//! Criterion benches of the egress gateway's pure hot paths: the source-IP choice made for
//! every new tunnel, and the SOCKS5 handshake parsers.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use spaced_egress::pin::{self, PinKey};
use spaced_egress::socks5;

fn pool(n: u8) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::from([203, 0, 113, 10 + i]))
        .collect()
}

fn bench_pin(c: &mut Criterion) {
    for n in [2u8, 16] {
        let p = pool(n);
        c.bench_function(&format!("pin/choose/{n}"), |b| {
            b.iter(|| pin::choose(black_box(PinKey::App("api-production")), black_box(&p)))
        });
        c.bench_function(&format!("pin/order/{n}"), |b| {
            b.iter(|| pin::order(black_box(PinKey::App("api-production")), black_box(&p)))
        });
        let client: IpAddr = "10.0.1.5".parse().unwrap_or(IpAddr::from([10, 0, 1, 5]));
        c.bench_function(&format!("pin/choose_by_addr/{n}"), |b| {
            b.iter(|| pin::choose(black_box(PinKey::Addr(client)), black_box(&p)))
        });
    }
}

fn bench_socks5(c: &mut Criterion) {
    let greeting = b"\x05\x02\x00\x02";
    let v4 = b"\x05\x01\x00\x01\x7f\x00\x00\x01\x23\x29";
    let domain = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb";
    c.bench_function("socks5/greeting", |b| {
        b.iter(|| socks5::parse_greeting(black_box(greeting)))
    });
    c.bench_function("socks5/request_v4", |b| {
        b.iter(|| socks5::parse_request(black_box(v4)))
    });
    c.bench_function("socks5/request_domain", |b| {
        b.iter(|| socks5::parse_request(black_box(domain)))
    });
    let head = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n";
    c.bench_function("http/parse_connect_head", |b| {
        b.iter(|| spaced_egress::parse_request_head(black_box(head)))
    });
}

criterion_group!(benches, bench_pin, bench_socks5);
criterion_main!(benches);
