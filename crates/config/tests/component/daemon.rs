//! `[daemon]`: defaults, values, and located errors for bad ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spaced_config::{Policy, Source, parse};

fn parse_text(text: &str) -> Result<Policy, String> {
    let source = Source {
        name: "t.toml",
        dir: Path::new("/etc/spaced"),
        read: &|p| std::fs::read(p),
    };
    parse(text.as_bytes(), &source).map_err(|e| e.to_string())
}

#[test]
fn absent_section_gets_the_documented_defaults() {
    let p = parse_text("[space]\nname = \"s\"\n").unwrap();
    assert_eq!(p.daemon.shutdown_delay, Duration::ZERO);
    assert_eq!(p.daemon.drain_timeout, Duration::from_secs(30));
    assert_eq!(p.daemon.cache, None);
}

#[test]
fn values_are_read_and_cache_is_resolved_against_the_config_dir() {
    let p = parse_text(
        "[space]\nname = \"s\"\n[daemon]\nshutdown_delay = \"5s\"\ndrain_timeout = \"0s\"\ncache = \"cache/policy.toml\"\n",
    )
    .unwrap();
    assert_eq!(p.daemon.shutdown_delay, Duration::from_secs(5));
    assert_eq!(p.daemon.drain_timeout, Duration::ZERO);
    assert_eq!(
        p.daemon.cache,
        Some(PathBuf::from("/etc/spaced/cache/policy.toml"))
    );
    let empty = parse_text("[space]\nname = \"s\"\n[daemon]\ncache = \"\"\n").unwrap();
    assert_eq!(empty.daemon.cache, None);
}

#[test]
fn bad_values_are_located_errors() {
    let e = parse_text("[space]\nname = \"s\"\n[daemon]\nshutdown_delay = \"soon\"\n").unwrap_err();
    assert!(e.contains("t.toml:4:18"), "{e}");
    let e = parse_text("[space]\nname = \"s\"\n[daemon]\ndrain = \"1s\"\n").unwrap_err();
    assert!(e.contains("t.toml:4:"), "{e}");
    let e = parse_text("[space]\nname = \"s\"\n[daemon]\ncache = \"a\\u0001b\"\n").unwrap_err();
    assert!(e.contains("t.toml:4:9"), "{e}");
}
