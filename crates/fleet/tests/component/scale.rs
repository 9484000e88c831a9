//! What a change costs at 1,000 apps and 10,000 dynos: a full compile of the merged policy
//! against joining the registry's dynos to a compiled base. Timed, not asserted (a shared
//! machine's timings mean little); run by hand:
//! `cargo test -p spaced-fleet --release --test component scale -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use spaced_config::{Source, parse_fleet};

const HOST: &str = "[space]\nname = \"scale\"\n[router]\nlisten = [\"127.0.0.1:1\"]\n\
                    [fleet]\netcd = [\"http://127.0.0.1:2379\"]\nprefix = \"/s\"\n";

#[test]
#[ignore = "a measurement, run by hand"]
fn compile_versus_join_at_ten_thousand_dynos() {
    let mut with_dynos = String::from("[space]\ninternal = [\"10.0.0.0/8\"]\n");
    let mut bare = with_dynos.clone();
    let mut registry = BTreeMap::new();
    for a in 0..1000 {
        let app = format!("[[app]]\nname = \"app-{a}\"\nhosts = [\"app-{a}.test\"]\n");
        with_dynos.push_str(&app);
        bare.push_str(&app);
        for d in 1..=10 {
            let addr = format!("10.{}.{}.{d}:5000", a / 250, a % 250);
            with_dynos.push_str(&format!("[[app.dyno]]\naddr = \"{addr}\"\nnumber = {d}\n"));
            registry.insert(
                format!("app-{a}/web/{d}"),
                format!("{{\"addr\":\"{addr}\"}}").into_bytes(),
            );
        }
    }
    let source = Source {
        name: "host.toml",
        dir: Path::new("."),
        read: &|p| std::fs::read(p),
    };
    let t = Instant::now();
    let full = parse_fleet(HOST.as_bytes(), &source, Some(with_dynos.as_bytes()), "p").unwrap();
    let compile = t.elapsed();
    let base = parse_fleet(HOST.as_bytes(), &source, Some(bare.as_bytes()), "p").unwrap();
    let t = Instant::now();
    let (joined, errors) = spaced_fleet::dynos::join(&base, "/s", &registry);
    let join = t.elapsed();
    assert!(errors.is_empty());
    assert_eq!(joined.dyno_count(), full.dyno_count());
    eprintln!(
        "1,000 apps / 10,000 dynos: full compile {compile:?}, join of the registry to a compiled base {join:?}"
    );
}
