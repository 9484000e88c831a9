//! A reload swaps the whole zone: answers are the old set or the new set, never a mix.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::rr::RecordType;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_a_dyno_while_queries_run() {
    let old = policy_text(&dynos_text(20));
    let new = policy_text(&dynos_text(21));
    let r = start(&old).await;
    let set = |n: usize| -> BTreeSet<IpAddr> {
        (0..n)
            .map(|i| format!("10.1.{}.{}", i / 250, i % 250 + 1).parse().unwrap())
            .collect()
    };
    let (old_set, new_set) = (set(20), set(21));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for src in ["127.0.0.1", "127.0.0.2"] {
        let (addr, stop) = (r.addr, stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut s = tcp_from(addr, src).await;
            while !stop.load(Ordering::Relaxed) {
                let q = query("web.big.app.localspace.", RecordType::A, None);
                let m = tcp_exchange(&mut s, &q).await;
                seen.push(ips(&m).into_iter().collect::<BTreeSet<_>>());
                let m = udp(
                    addr,
                    src,
                    &query("web.big.app.localspace.", RecordType::A, Some(1232)),
                )
                .await;
                seen.push(ips(&m).into_iter().collect::<BTreeSet<_>>());
            }
            seen
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    r.store.apply(parse(&new), "v2".into());
    // Wait until the new zone answers, then a little more.
    within("new zone", async {
        loop {
            let m = udp(
                r.addr,
                "127.0.0.1",
                &query("21.web.big.app.localspace.", RecordType::A, None),
            )
            .await;
            if !m.answers.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut olds, mut news) = (0, 0);
    for c in clients {
        for s in within("client", c).await.unwrap() {
            if s == old_set {
                olds += 1;
            } else if s == new_set {
                news += 1;
            } else {
                panic!("an answer mixing policies: {s:?}");
            }
        }
    }
    assert!(olds > 0 && news > 0, "old {olds}, new {news}");
}
