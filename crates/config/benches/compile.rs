//! `parse` of a large generated policy: 1,000 apps, 10,000 dynos and 100,000 CIDRs (100 per
//! app in `trusted`). What a reload costs, end to end from text. Target: under 100 ms.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use spaced_config::{Source, parse};

/// The generated file: `apps` apps with `dynos` dynos and `cidrs` trusted CIDRs each.
fn policy_text(apps: usize, dynos: usize, cidrs: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(apps * (dynos * 60 + cidrs * 20 + 200));
    s.push_str("[space]\nname = \"bench\"\ninternal = [\"10.0.0.0/8\"]\n");
    s.push_str("[router]\nlisten = [\"127.0.0.1:8080\"]\ninternal_listen = [\"127.0.0.1:8081\"]\n");
    for a in 0..apps {
        let _ = write!(
            s,
            "[[app]]\nname = \"app-{a}\"\nhosts = [\"app-{a}.example.com\", \"*.app-{a}.example.com\"]\n"
        );
        s.push_str("trusted = [");
        for c in 0..cidrs {
            let n = a * cidrs + c;
            let _ = write!(
                s,
                "\"{}.{}.{}.0/24\", ",
                11 + (n >> 16) % 200,
                (n >> 8) & 255,
                n & 255
            );
        }
        s.push_str("]\n");
        for d in 0..dynos {
            let n = a * dynos + d;
            let _ = write!(
                s,
                "[[app.dyno]]\naddr = \"10.{}.{}.{}:5000\"\nzone = \"z{}\"\n",
                (n >> 16) & 255,
                (n >> 8) & 255,
                n & 255,
                d % 3
            );
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let read = |_: &Path| -> std::io::Result<Vec<u8>> { Err(std::io::ErrorKind::NotFound.into()) };
    let source = Source {
        name: "bench.toml",
        dir: Path::new("."),
        read: &read,
    };
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for (apps, dynos, cidrs) in [(10, 10, 100), (1_000, 10, 100)] {
        let text = policy_text(apps, dynos, cidrs);
        if let Err(e) = parse(text.as_bytes(), &source) {
            panic!("the generated policy is invalid: {e}");
        }
        group.bench_function(format!("parse/{apps}-apps"), |b| {
            b.iter(|| black_box(parse(black_box(text.as_bytes()), &source)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
