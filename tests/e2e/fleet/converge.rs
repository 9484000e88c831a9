//! Three instances converge on policy and dyno changes; bad input is rejected or skipped
//! with its name, everywhere.

use std::time::{Duration, Instant};

use spaced_testkit::etcd::Etcd;

use super::{Instance, converge, get, instances, policy, put, resolve};
use spaced_testkit::dyno::Backend;

const PREFIX: &str = "/spaced/conv";

fn apps(i: &Instance) -> u64 {
    i.config()["apps"].as_u64().unwrap_or(0)
}

fn serves(i: &Instance, host: &str, body: &str) -> bool {
    matches!(get(i.router, host), Ok((200, b)) if b == body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_converge_and_reject_bad_input_everywhere() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    put(&etcd, PREFIX, "policy", &policy(1, "")).await;
    let fleet: Vec<Instance> = (1..=3)
        .map(|n| Instance::start(&etcd, PREFIX, &format!("edge-{n}")))
        .collect();
    converge("the initial policy", &fleet, |i| apps(i) == 1).await;
    let mut took = Vec::new();

    // A policy change.
    put(&etcd, PREFIX, "policy", &policy(2, "")).await;
    took.push((
        "policy change",
        converge("a policy change", &fleet, |i| apps(i) == 2).await,
    ));

    // A new dyno key, then the same key changed.
    let value = |addr| format!(r#"{{"addr": "{addr}", "zone": "a"}}"#);
    put(&etcd, PREFIX, "dynos/app-1/web/1", &value(a.addr)).await;
    took.push((
        "new dyno",
        converge("a new dyno", &fleet, |i| serves(i, "app-1.test", "a")).await,
    ));
    put(&etcd, PREFIX, "dynos/app-1/web/1", &value(b.addr)).await;
    took.push((
        "changed dyno",
        converge("a changed dyno", &fleet, |i| serves(i, "app-1.test", "b")).await,
    ));

    // The resolver sees the registry too (one snapshot with the router).
    let ip: std::net::IpAddr = "10.9.9.9".parse().unwrap();
    put(
        &etcd,
        PREFIX,
        "dynos/app-0/worker/1",
        r#"{"addr": "10.9.9.9:80"}"#,
    )
    .await;
    took.push((
        "new dyno in DNS",
        converge("a new dyno in DNS", &fleet, |i| {
            resolve(i.resolver, "1.worker.app-0.app.localspace.") == vec![ip]
        })
        .await,
    ));
    let mut client = etcd.client().await;
    client
        .delete(format!("{PREFIX}/dynos/app-0/worker/1"), None)
        .await
        .unwrap();
    took.push((
        "deleted dyno gone from DNS",
        converge("a deleted dyno gone from DNS", &fleet, |i| {
            resolve(i.resolver, "1.worker.app-0.app.localspace.").is_empty()
        })
        .await,
    ));

    // A dyno under a lease that is not kept alive leaves by itself.
    let lease = client.lease_grant(2, None).await.unwrap().id();
    client
        .put(
            format!("{PREFIX}/dynos/app-0/web/1"),
            value(a.addr),
            Some(spaced_fleet::etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    converge("a leased dyno", &fleet, |i| serves(i, "app-0.test", "a")).await;
    let put_at = Instant::now();
    let start = Instant::now();
    loop {
        if fleet
            .iter()
            .all(|i| !matches!(get(i.router, "app-0.test"), Ok((200, _))))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2) + super::CONVERGE,
            "the expired dyno still serves"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "fleet: expired dyno: gone from 3 instances {:?} after the put of a 2 s lease",
        put_at.elapsed()
    );

    // An invalid policy: rejected everywhere, the old one serves, the error is shown.
    let bad = policy(3, "").replace("127.0.0.0/8", "127.0.0.1/8");
    put(&etcd, PREFIX, "policy", &bad).await;
    converge("an invalid policy rejected", &fleet, |i| {
        let c = i.config();
        c["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("etcd:/spaced/conv/policy:2:13: invalid CIDR"))
            && c["apps"] == 2
    })
    .await;
    assert!(fleet.iter().all(|i| serves(i, "app-1.test", "b")));
    // Dynos still come and go while the bad document waits to be fixed.
    put(&etcd, PREFIX, "dynos/app-0/web/2", &value(b.addr)).await;
    converge("a dyno joining beside a rejected policy", &fleet, |i| {
        serves(i, "app-0.test", "b") && i.config()["last_error"].is_string()
    })
    .await;
    let start = Instant::now();
    loop {
        let records = instances(&etcd, PREFIX).await;
        let all = records.len() == 3
            && records.iter().all(|r| {
                r.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("etcd:/spaced/conv/policy:2:13"))
            });
        if all {
            break;
        }
        assert!(
            start.elapsed() < super::CONVERGE,
            "instances/ keys: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A key in the wrong place is named.
    let misplaced = format!("{}[router]\nlisten = [\"127.0.0.1:1\"]\n", policy(2, ""));
    put(&etcd, PREFIX, "policy", &misplaced).await;
    converge("a misplaced key named", &fleet, |i| {
        i.config()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("key `router.listen` belongs in each host's file"))
    })
    .await;

    // Malformed dyno JSON and a number given twice: those keys are skipped and named, the
    // rest applies.
    let with_dyno = format!("{}[[app.dyno]]\naddr = \"{}\"\n", policy(3, ""), a.addr);
    put(&etcd, PREFIX, "policy", &with_dyno).await;
    put(&etcd, PREFIX, "dynos/app-1/web/2", "{nope").await;
    put(&etcd, PREFIX, "dynos/app-2/web/1", &value(b.addr)).await;
    converge("bad dyno keys skipped and named", &fleet, |i| {
        let c = i.config();
        let ignored = c["fleet"]["ignored"].to_string();
        c["apps"] == 3
            && c["last_error"].is_null()
            && ignored.contains("etcd:/spaced/conv/dynos/app-1/web/2: invalid dyno value")
            && ignored.contains("etcd:/spaced/conv/dynos/app-2/web/1: duplicate dyno number 1")
    })
    .await;
    assert!(fleet.iter().all(|i| serves(i, "app-1.test", "b")));
    assert!(fleet.iter().all(|i| serves(i, "app-2.test", "a")));

    // GET /fleet: every instance, each serving the latest revision.
    converge(
        "/fleet shows every instance on the latest revision",
        &fleet,
        |i| {
            let Ok((200, body)) = crate::harness::http(i.admin, "GET", "/fleet") else {
                return false;
            };
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let list = v["instances"].as_array().cloned().unwrap_or_default();
            list.len() == 3 && list.iter().all(|r| r["latest"] == true)
        },
    )
    .await;
    // Settled: nothing writes while nothing changes (an instance rewriting its key on
    // every other instance's write would loop forever).
    let mut client = etcd.client().await;
    let rev = |r: spaced_fleet::etcd_client::GetResponse| r.header().map_or(0, |h| h.revision());
    let before = rev(client.get("/", None).await.unwrap());
    // The pause is the test: a window in which nothing may be written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rev(client.get("/", None).await.unwrap());
    assert_eq!(before, after, "etcd written while nothing changed");
    for (what, t) in took {
        eprintln!("fleet: {what}: {t:?}");
        assert!(t <= super::CONVERGE);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_with_one_member_killed_keeps_converging() {
    let Some(mut etcd) = Etcd::cluster(3).await else {
        return;
    };
    let prefix = "/spaced/cluster";
    put(&etcd, prefix, "policy", &policy(1, "")).await;
    let fleet: Vec<Instance> = (1..=2)
        .map(|n| Instance::start(&etcd, prefix, &format!("edge-{n}")))
        .collect();
    converge("the initial policy", &fleet, |i| apps(i) == 1).await;
    etcd.members[0].kill();
    let mut client = etcd.client().await;
    // The client may first try the dead member; retry the write until the cluster takes it.
    let start = Instant::now();
    while client
        .put(format!("{prefix}/policy"), policy(2, ""), None)
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the cluster took no write"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    loop {
        if fleet.iter().all(|i| apps(i) == 2) {
            break;
        }
        // A watch on the killed member notices within its keepalive (2 s + 2 s) and moves
        // to another: longer than a change on a healthy cluster, so a wider bound.
        assert!(start.elapsed() < Duration::from_secs(15), "no convergence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "fleet: a change with one of 3 members killed served by 2 instances after {:?}",
        start.elapsed()
    );
}
