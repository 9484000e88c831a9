//! `[fleet]`: a host's file merged with the fleet's shared policy document.

use std::path::Path;

use spaced_config::{Source, parse, parse_fleet};

const LOCAL: &str = r#"[space]
name = "demo"

[router]
listen = ["127.0.0.1:0"]
zone = "a"

[fleet]
etcd = ["http://127.0.0.1:2379"]
prefix = "/spaced/demo/"
instance = "edge-1"
lease_ttl = "5s"
"#;

const POLICY: &str = r#"[space]
internal = ["10.0.0.0/16"]

[router]
balance = "round-robin"

[[app]]
name = "api"
hosts = ["api.example.com"]

[[app.dyno]]
addr = "10.0.1.5:5000"
"#;

fn no_files(_: &Path) -> std::io::Result<Vec<u8>> {
    Err(std::io::Error::other("no files in this test"))
}

fn merged(local: &str, policy: Option<&str>) -> Result<spaced_config::Policy, String> {
    let source = Source {
        name: "spaced.toml",
        dir: Path::new("/etc/spaced"),
        read: &no_files,
    };
    parse_fleet(
        local.as_bytes(),
        &source,
        policy.map(str::as_bytes),
        "etcd:/spaced/demo/policy",
    )
    .map_err(|e| e.to_string())
}

#[test]
fn the_policy_joins_the_host_part() {
    let p = merged(LOCAL, Some(POLICY)).expect("valid");
    assert_eq!(p.space.name, "demo");
    assert_eq!(p.router.zone.as_deref(), Some("a"));
    assert_eq!(p.router.balance, spaced_config::Balance::RoundRobin);
    assert_eq!(p.apps.len(), 1);
    assert!(p.space.internal.contains("10.0.3.4".parse().expect("ip")));
    let fleet = p.fleet.expect("fleet");
    assert_eq!(fleet.prefix, "/spaced/demo");
    assert_eq!(fleet.instance.as_deref(), Some("edge-1"));
    assert_eq!(fleet.lease_ttl, std::time::Duration::from_secs(5));
}

#[test]
fn no_policy_yet_is_the_host_part_alone() {
    let p = merged(LOCAL, None).expect("valid");
    assert!(p.apps.is_empty());
}

#[test]
fn errors_are_located_in_the_policy() {
    let bad = POLICY.replace("10.0.0.0/16", "10.0.0.1/16");
    let err = merged(LOCAL, Some(&bad)).expect_err("invalid");
    assert_eq!(
        err,
        "etcd:/spaced/demo/policy:2:13: invalid CIDR \"10.0.0.1/16\": host bits set (did you mean 10.0.0.0/16?)"
    );
    let err = merged(LOCAL, Some("[router]\nbalanse = 1\n")).expect_err("unknown key");
    assert!(
        err.starts_with("etcd:/spaced/demo/policy:2:1: unknown key `balanse`"),
        "{err}"
    );
    let err = merged(LOCAL, Some("[[app]\n")).expect_err("syntax");
    assert!(err.starts_with("etcd:/spaced/demo/policy:1:"), "{err}");
}

#[test]
fn a_key_in_the_wrong_place_is_named() {
    let err = merged(
        LOCAL,
        Some("[router]\nlisten = [\"127.0.0.1:1\"]\n[admin]\nlisten = \"127.0.0.1:2\"\n"),
    )
    .expect_err("host keys in the policy");
    assert_eq!(
        err,
        "etcd:/spaced/demo/policy:2:1: key `router.listen` belongs in each host's file, not the fleet's policy\n\
         etcd:/spaced/demo/policy:3:2: key `admin` belongs in each host's file, not the fleet's policy"
    );
    let local = LOCAL.replace("zone = \"a\"", "zone = \"a\"\nretries = 3");
    let err = merged(&local, Some(POLICY)).expect_err("shared key in the file");
    assert_eq!(
        err,
        "spaced.toml:7:1: key `router.retries` belongs in the fleet's policy (etcd), not the local file"
    );
}

#[test]
fn fleet_section_is_checked() {
    let source = Source {
        name: "spaced.toml",
        dir: Path::new("."),
        read: &no_files,
    };
    let err = parse(
        b"[space]\nname = \"x\"\n[fleet]\netcd = []\nprefix = \"spaced\"\n",
        &source,
    )
    .expect_err("invalid")
    .to_string();
    assert_eq!(
        err,
        "spaced.toml:3:1: missing required key `fleet.etcd`\n\
         spaced.toml:5:10: invalid fleet.prefix \"spaced\": expected a key prefix starting with '/', e.g. \"/spaced/demo\""
    );
}
