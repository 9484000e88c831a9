//! Good files: the shipped `config/spaced.toml` and `config/example.toml` load from disk
//! (relative paths resolved against their directory), and a minimal file gets the
//! documented defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spaced_config::{Balance, Policy, Routing, Source, load_file, parse};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test addresses are valid")
}

fn parse_text(text: &str) -> Policy {
    let source = Source {
        name: "t.toml",
        dir: Path::new("."),
        read: &|p| std::fs::read(p),
    };
    match parse(text.as_bytes(), &source) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn spaced_toml_loads_with_every_section() {
    let dir = config_dir();
    let loaded = match load_file(&dir.join("spaced.toml")) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(loaded.sha256.len(), 64);
    let p = &loaded.policy;
    assert_eq!(p.space.name, "demo");
    // `trusted_file` resolved against the config's directory, not the working directory.
    assert!(p.space.trusted.contains(ip("192.0.2.77")));
    assert!(p.space.trusted.contains(ip("::ffff:127.0.0.1")));
    assert!(p.space.blocked.contains(ip("127.0.0.66")));
    assert_eq!(p.tls.len(), 1);
    assert_eq!(
        p.tls[0].names,
        ["demo.localhost", "*.demo.localhost", "localhost"]
    );
    assert_eq!(p.tls[0].cert_path, dir.join("tls/demo.crt"));
    assert_eq!(
        p.files,
        [
            dir.join("spaced.toml"),
            dir.join("trusted.txt"),
            dir.join("tls/demo.crt"),
            dir.join("tls/demo.key"),
        ]
    );
    assert_eq!(p.router.zone.as_deref(), Some("a"));
    assert!(p.router.health.is_some());
    assert!(!p.resolver.listen.is_empty());
    assert_eq!(p.egress.source_ips, [ip("127.0.0.1")]);
    assert!(p.egress.ports.allows(8080) && !p.egress.ports.allows(22));
    assert!(p.admin.is_some());
    let api = p.app_for_host("v2.api.demo.localhost").unwrap();
    assert_eq!(api.name, "api");
    assert_eq!(
        api.web_dynos().map(|d| d.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(p.app("billing").unwrap().routing, Routing::Internal);
    // Every listener stays on the loopback.
    let all = [
        &p.router.listen,
        &p.router.tls_listen,
        &p.router.internal_listen,
        &p.resolver.listen,
        &p.egress.listen,
        &p.egress.socks_listen,
    ];
    for a in all.into_iter().flatten() {
        assert!(a.ip().is_loopback(), "{a}");
    }
}

#[test]
fn example_toml_from_the_contract_loads() {
    let loaded = match load_file(&config_dir().join("example.toml")) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let p = &loaded.policy;
    assert_eq!(p.space.name, "demo");
    assert_eq!(p.apps.len(), 1);
    assert_eq!(p.app_for_host("x.api.example.com").unwrap().name, "api");
    assert!(p.egress.deny.contains(ip("169.254.169.254")));
    // Issue 18: copying the example (an explicit `deny`) once dropped the built-in list and
    // opened loopback, the admin API included. An explicit `deny` is added to it.
    assert!(p.egress.default_deny);
    for a in [
        "127.0.0.1",
        "::1",
        "0.0.0.1",
        "100.64.0.1",
        "fe80::1",
        "fec0::1",
        "100::1",
    ] {
        assert!(p.egress.deny.contains(ip(a)), "{a}");
    }
    assert!(!p.egress.deny.contains(ip("93.184.216.34")));
    assert_eq!(spaced_config::egress_warning(&p.egress), None);
}

#[test]
fn a_missing_file_says_so_without_a_location() {
    let path = config_dir().join("no-such.toml");
    let e = load_file(&path).unwrap_err();
    // Not `:1:1:`, which reads like a parse error (issue 18).
    assert_eq!(
        e.to_string(),
        format!("config file {}: No such file or directory", path.display())
    );
    assert!(e.is_io());
}

#[test]
fn minimal_file_gets_the_documented_defaults() {
    let p = parse_text("[space]\nname = \"s\"\n");
    assert!(p.space.internal.is_empty());
    assert!(p.space.trusted.contains(ip("203.0.113.9")));
    assert!(p.space.trusted.contains(ip("2001:db8::1")));
    assert!(p.space.blocked.is_empty());
    assert_eq!(p.router.balance, Balance::LeastRequest);
    assert_eq!(p.router.retries, 2);
    assert_eq!(p.router.max_connections, 100_000);
    assert_eq!(p.router.timeouts.connect, Duration::from_secs(5));
    assert_eq!(p.router.timeouts.response, Duration::from_secs(30));
    assert_eq!(p.router.timeouts.idle, Duration::from_secs(55));
    assert_eq!(p.router.timeouts.client_header, Duration::from_secs(10));
    assert_eq!(p.router.timeouts.keepalive, Duration::from_secs(60));
    assert_eq!(p.router.timeouts.pool_idle, Duration::from_secs(90));
    assert!(p.router.health.is_none());
    assert_eq!(p.resolver.domain, "app.localspace");
    assert_eq!(p.resolver.ttl, Duration::from_secs(5));
    for denied in [
        "127.0.0.1",
        "169.254.169.254",
        "0.1.2.3",
        "100.64.0.1",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(p.egress.deny.contains(ip(denied)), "{denied}");
    }
    assert!(!p.egress.deny.contains(ip("93.184.216.34")));
    assert!(p.egress.ports.allows(1));
    assert_eq!(p.egress.max_per_destination, 50_000);
    assert_eq!(p.egress.connect_timeout, Duration::from_secs(10));
    assert_eq!(p.egress.idle_timeout, Duration::from_secs(350));
    assert!(p.admin.is_none());
}

#[test]
fn dynos_are_numbered_per_process_and_indexed_by_ip() {
    let p = parse_text(
        r#"
[space]
name = "s"
[[app]]
name = "a"
hosts = ["A.Example.com."]
[[app.dyno]]
addr = "10.0.0.1:5000"
[[app.dyno]]
process = "worker"
addr = "10.0.0.2:5000"
[[app.dyno]]
addr = "[::ffff:10.0.0.3]:5000"
zone = "us-east-1a"
[[app.dyno]]
addr = "10.0.0.4:5000"
number = 7
[[app]]
name = "b"
[[app.dyno]]
addr = "10.0.0.1:6000"
"#,
    );
    let a = p.app("a").unwrap();
    assert_eq!(a.hosts, ["a.example.com"]);
    let numbers: Vec<(&str, u32)> = a
        .dynos
        .iter()
        .map(|d| (d.process.as_str(), d.number))
        .collect();
    assert_eq!(numbers, [("web", 1), ("worker", 1), ("web", 2), ("web", 7)]);
    assert_eq!(a.web, [0, 2, 3]);
    assert_eq!(a.dynos[2].zone.as_deref(), Some("us-east-1a"));
    // A shared IP belongs to the first app; mapped addresses are folded.
    assert_eq!(p.dyno_ips.get(&ip("10.0.0.1")), Some(&0));
    assert_eq!(p.dyno_ips.get(&ip("10.0.0.3")), Some(&0));
    assert_eq!(p.dyno_count(), 5);
    assert_eq!(p.app_for_host("a.example.com:443").unwrap().name, "a");
}

#[test]
fn mapped_ipv6_rules_apply_to_ipv4_clients() {
    let p = parse_text(
        "[space]\nname = \"s\"\ninternal = [\"::ffff:10.0.0.0/104\"]\nblocked = [\"192.0.2.1\"]\n",
    );
    assert!(p.space.internal.contains(ip("10.9.9.9")));
    assert!(p.space.blocked.contains(ip("::ffff:192.0.2.1")));
    assert!(!p.space.internal.contains(ip("11.0.0.1")));
}

#[test]
fn ports_accept_numbers_and_strings() {
    let p = parse_text("[space]\nname = \"s\"\n[egress]\nports = [443, \"5432\", 443]\n");
    assert_eq!(p.egress.ports.0, [443, 5432]);
}

#[test]
fn trusted_file_alone_replaces_the_trust_everyone_default() {
    let dir = std::env::temp_dir().join(format!("spaced-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("allow.txt"), "198.51.100.0/24 # partner\n").unwrap();
    std::fs::write(
        dir.join("only-file.toml"),
        "[space]\nname = \"s\"\ntrusted_file = \"allow.txt\"\n",
    )
    .unwrap();
    let loaded = load_file(&dir.join("only-file.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let p = match loaded {
        Ok(l) => l.policy,
        Err(e) => panic!("{e}"),
    };
    assert!(p.space.trusted.contains(ip("198.51.100.9")));
    assert!(!p.space.trusted.contains(ip("203.0.113.9")));
}
