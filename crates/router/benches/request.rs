//! The per-request pure work of the router: host lookup and route check, dyno pick, request
//! and response header rewrite, and log-line formatting. IDs are `request/<case>/<size>`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use spaced_config::Balance;
use spaced_router::access::{self, Listener};
use spaced_router::balance::{self, Candidate};
use spaced_router::bench_api;
use spaced_router::headers::{self, Forward};
use spaced_router::logline::LogLine;

fn policy(apps: usize) -> spaced_config::Policy {
    let mut toml =
        String::from("[space]\nname = \"bench\"\n\n[router]\nlisten = [\"127.0.0.1:0\"]\n");
    for i in 0..apps {
        toml.push_str(&format!(
            "\n[[app]]\nname = \"app{i}\"\nhosts = [\"app{i}.example.com\", \"*.app{i}.example.com\"]\n\n[[app.dyno]]\naddr = \"127.0.0.1:{}\"\n",
            10000 + i
        ));
    }
    let read = |p: &Path| std::fs::read(p);
    spaced_config::parse(
        toml.as_bytes(),
        &spaced_config::Source {
            name: "bench.toml",
            dir: Path::new("."),
            read: &read,
        },
    )
    .unwrap()
}

fn client_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "app7.example.com"),
        ("user-agent", "wrk/4.2"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "203.0.113.9"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn bench(c: &mut Criterion) {
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    for apps in [10usize, 1000] {
        let p = policy(apps);
        c.bench_function(&format!("request/route_exact/{apps}"), |b| {
            b.iter(|| {
                access::route(
                    black_box(&p),
                    Listener::External,
                    black_box("app7.example.com:8080"),
                    client,
                )
            })
        });
        c.bench_function(&format!("request/route_wildcard/{apps}"), |b| {
            b.iter(|| {
                access::route(
                    black_box(&p),
                    Listener::External,
                    black_box("x.y.app7.example.com"),
                    client,
                )
            })
        });
    }

    for n in [3usize, 50] {
        let cands: Vec<Candidate> = (0..n)
            .map(|i| Candidate {
                in_flight: (i % 7) as u32,
                up: i % 5 != 0,
                local: false,
                excluded: false,
            })
            .collect();
        for (name, bal) in [
            ("least_request", Balance::LeastRequest),
            ("round_robin", Balance::RoundRobin),
            ("random", Balance::Random),
        ] {
            let mut cursor = 0usize;
            c.bench_function(&format!("request/pick_{name}/{n}"), |b| {
                b.iter(|| {
                    cursor += 1;
                    balance::pick(bal, n, |i| cands[i], cursor, |k| fastrand::usize(..k))
                })
            });
        }
    }

    let template = client_headers();
    let peer = headers::ip_value(client);
    let port = HeaderValue::from_static("8080");
    c.bench_function("request/rewrite_request/6", |b| {
        b.iter_batched(
            || template.clone(),
            |mut h| {
                headers::check_limits(40, &h).unwrap();
                let id = headers::request_id(&h);
                headers::rewrite_request(
                    &mut h,
                    &Forward {
                        peer: &peer,
                        https: false,
                        port: &port,
                        start_ms: 1_700_000_000_000,
                        request_id: &id,
                        upgrade: false,
                    },
                );
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut resp = HeaderMap::new();
    resp.insert("content-type", HeaderValue::from_static("text/plain"));
    resp.insert("content-length", HeaderValue::from_static("12"));
    resp.insert(
        "date",
        HeaderValue::from_static("Sat, 28 Nov 2026 23:00:00 GMT"),
    );
    let id = headers::new_request_id();
    c.bench_function("request/rewrite_response/3", |b| {
        b.iter_batched(
            || resp.clone(),
            |mut h| {
                headers::rewrite_response(&mut h, &id, false);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The fast path's byte rewrites against the HeaderMap ones, parsing included on both
    // sides (hyper's own parse and dispatch are not in the HeaderMap figure).
    let raw_request =
        b"GET /orders?id=1 HTTP/1.1\r\nhost: app7.example.com\r\nuser-agent: wrk/4.2\r\n\
        accept: */*\r\naccept-encoding: gzip, deflate\r\nconnection: keep-alive\r\n\
        x-forwarded-for: 203.0.113.9\r\n\r\n";
    let mut out = Vec::with_capacity(1024);
    c.bench_function("request/request_head_bytes/6", |b| {
        b.iter(|| {
            assert!(bench_api::request_head_bytes(
                black_box(raw_request),
                &mut out
            ));
            black_box(out.len())
        })
    });
    let raw_response =
        b"HTTP/1.1 200 OK\r\nserver: nginx\r\ndate: Sat, 28 Nov 2026 23:00:00 GMT\r\n\
        content-type: text/plain\r\ncontent-length: 12\r\nconnection: keep-alive\r\n\r\n";
    c.bench_function("request/response_head_bytes/5", |b| {
        b.iter(|| {
            assert!(bench_api::response_head_bytes(
                black_box(raw_response),
                &mut out
            ));
            black_box(out.len())
        })
    });
    c.bench_function("request/response_head_map/5", |b| {
        b.iter(|| {
            assert!(bench_api::response_head_map(
                black_box(raw_response),
                &mut out
            ));
            black_box(out.len())
        })
    });
    c.bench_function("request/new_request_id/1", |b| {
        b.iter(headers::new_request_id)
    });

    let mut buf = String::with_capacity(512);
    c.bench_function("request/log_line/1", |b| {
        b.iter(|| {
            buf.clear();
            LogLine {
                code: None,
                method: "GET",
                path: b"/orders?id=1",
                host: b"api.example.com",
                request_id: id.as_bytes(),
                fwd: client,
                dyno: Some("web.2"),
                connect_ms: Some(0),
                service_ms: Some(3),
                status: 200,
                bytes: 5120,
                protocol: "http1.1",
                tls: None,
            }
            .write(&mut buf);
            black_box(buf.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
