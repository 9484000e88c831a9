//! `spaced fleet put | register | status` against a real etcd and a real spaced.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spaced_testkit::etcd::Etcd;

use super::{Instance, converge, get, policy};
use crate::harness::{ConfigDir, bin};
use spaced_testkit::dyno::Backend;

const PREFIX: &str = "/spaced/cli";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_register_and_status() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let url = etcd.endpoints()[0].clone();
    let dir = ConfigDir::new();
    let fleet_args = ["--etcd", url.as_str(), "--prefix", PREFIX];

    // An invalid document is refused with its location, and nothing is written.
    dir.write_atomic("bad.toml", "[space]\ninternal = [\"10.0.0.1/8\"]\n");
    let out = Command::new(bin())
        .args(["fleet", "put"])
        .args(fleet_args)
        .arg(dir.path("bad.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.toml:2:13: invalid CIDR"), "{stderr}");
    let mut c = etcd.client().await;
    assert!(
        c.get(format!("{PREFIX}/policy"), None)
            .await
            .unwrap()
            .kvs()
            .is_empty()
    );

    dir.write_atomic("good.toml", &policy(1, ""));
    let out = Command::new(bin())
        .args(["fleet", "put"])
        .args(fleet_args)
        .arg(dir.path("good.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fleet = vec![Instance::start(&etcd, PREFIX, "edge-1")];
    converge("the put policy", &fleet, |i| i.config()["apps"] == 1).await;

    // register: the dyno serves while it runs, and leaves on SIGTERM.
    let dyno = Backend::start("r").await;
    let mut reg = Command::new(bin())
        .args(["fleet", "register"])
        .args(fleet_args)
        .args([
            "app-0",
            "web",
            "1",
            &dyno.addr.to_string(),
            "--zone",
            "a",
            "--ttl",
            "3s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    converge(
        "a registered dyno",
        &fleet,
        |i| matches!(get(i.router, "app-0.test"), Ok((200, b)) if b == "r"),
    )
    .await;
    // Kept alive past its TTL (the pause is the test: the lease would have expired).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(matches!(get(fleet[0].router, "app-0.test"), Ok((200, _))));
    let status = Command::new("kill")
        .args(["-TERM", &reg.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    while reg.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "register did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleted at once, not after the TTL.
    assert!(
        c.get(format!("{PREFIX}/dynos/app-0/web/1"), None)
            .await
            .unwrap()
            .kvs()
            .is_empty()
    );
    converge("the dyno gone", &fleet, |i| {
        !matches!(get(i.router, "app-0.test"), Ok((200, _)))
    })
    .await;

    // status: the instance, on the latest revision.
    let start = Instant::now();
    loop {
        let out = Command::new(bin())
            .args(["fleet", "status", "--config"])
            .arg(fleet[0].dir.path("spaced.toml"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && stdout.contains("edge-1\t") && stdout.contains("\tyes\t") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "status: {stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A clean stop of spaced revokes its lease: its instances/ key goes at once.
    let mut fleet = fleet;
    let spaced = fleet[0].process.as_mut().unwrap();
    spaced.signal(15);
    assert_eq!(spaced.wait_exit(Duration::from_secs(40)), Some(0));
    let records = super::instances(&etcd, PREFIX).await;
    assert!(records.is_empty(), "{records:?}");
}

#[test]
fn check_names_a_shared_key_in_a_fleet_hosts_file() {
    let dir = ConfigDir::new();
    dir.write_atomic(
        "spaced.toml",
        "[space]\nname = \"x\"\n[router]\nretries = 3\n[fleet]\netcd = [\"http://127.0.0.1:1\"]\nprefix = \"/x\"\n",
    );
    let out = Command::new(bin())
        .arg("check")
        .arg(dir.path("spaced.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("spaced.toml:4:1: key `router.retries` belongs in the fleet's policy"),
        "{stdout}"
    );
}
