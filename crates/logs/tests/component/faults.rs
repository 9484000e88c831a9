//! Drains under reloads, a clean stop and a receiver that accepts and never reads: the
//! other drains keep flowing, queued lines survive a reload, and every line is counted
//! (sent + dropped = produced).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A syslog TCP receiver: reads octet-counted frames, keeps the MSG parts.
async fn syslog_receiver(l: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                        g.lock().unwrap().push(msg);
                        buf.drain(..sp + 1 + len);
                    }
                }
            });
        }
    });
    got
}

fn numbers(msgs: &[String]) -> Vec<usize> {
    msgs.iter()
        .filter_map(|m| m.split("path=\"/n/").nth(1))
        .map(|r| r.split('"').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_lines_queued_for_a_drain_that_stays() {
    let down = spaced_testkit::ports::free();
    let a = format!("[[drain]]\nurl = \"syslog://127.0.0.1:{down}\"");
    let hub = hub_with(&policy(&a, "", 1000));
    for i in 0..100 {
        line(&hub, "", i);
    }
    let failed = || metric(&hub, "spaced_drain_lines_total", &["result=\"failed\""]);
    assert!(eventually(30, || failed() > 0).await);
    // Reload: the same drain plus a new one, and an app drain.
    let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = l2.local_addr().unwrap();
    let got2 = syslog_receiver(l2).await;
    let b = format!("{a}\n\n[[drain]]\nurl = \"syslog://{second}\"");
    hub.apply(&policy(&b, "", 1000));
    assert_eq!(hub.drains_json().as_array().unwrap().len(), 2);
    for i in 100..150 {
        line(&hub, "", i);
    }
    // The first comes up: everything queued before and after the reload, in order, once.
    let got1 = syslog_receiver(TcpListener::bind(("127.0.0.1", down)).await.unwrap()).await;
    assert!(
        eventually(60, || got1.lock().unwrap().len() >= 150).await,
        "{}",
        got1.lock().unwrap().len()
    );
    assert_eq!(numbers(&got1.lock().unwrap()), (0..150).collect::<Vec<_>>());
    assert!(eventually(30, || got2.lock().unwrap().len() >= 50).await);
    assert_eq!(
        numbers(&got2.lock().unwrap()),
        (100..150).collect::<Vec<_>>()
    );
    // Reload without the first: it stops, counted; the second keeps flowing.
    hub.apply(&policy(
        &format!("[[drain]]\nurl = \"syslog://{second}\""),
        "",
        1000,
    ));
    assert_eq!(hub.drains_json().as_array().unwrap().len(), 1);
    line(&hub, "", 150);
    assert!(eventually(30, || got2.lock().unwrap().len() == 51).await);
    assert_eq!(
        got1.lock().unwrap().len(),
        150,
        "a removed drain gets nothing new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_reads_slows_nothing_and_every_line_is_counted() {
    // Accepts, never reads: the kernel buffers fill, the write times out, lines queue and drop.
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = stuck.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let ok = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ok_addr = ok.local_addr().unwrap();
    let got = syslog_receiver(ok).await;
    let refused = spaced_testkit::ports::free();
    let p = policy(
        &format!(
            "[[drain]]\nurl = \"syslog://{stuck_addr}\"\n\n[[drain]]\nurl = \"syslog://{ok_addr}\"\n\n\
             [[drain]]\nurl = \"syslog://127.0.0.1:{refused}\""
        ),
        "",
        500,
    );
    let hub = hub_with(&p);
    let produced = 3000;
    let pad = "p".repeat(2000);
    let started = std::time::Instant::now();
    for i in 0..produced {
        // Long lines fill the stuck connection's buffers quickly.
        hub.emit(
            spaced_logs::Level::Info,
            spaced_logs::Source::Router,
            spaced_logs::Kind::Logfmt,
            "",
            &format!("at=info path=\"/n/{i}\" pad={pad}"),
        );
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Emitting never waited on any drain (generous bound: a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(20));
    // The healthy drain keeps flowing: what it did not drop, it delivered, in order.
    let sel = format!("drain=\"syslog://{ok_addr}\"");
    let sent = || metric(&hub, "spaced_drain_lines_total", &[&sel, "result=\"sent\""]);
    let dropped = || {
        metric(
            &hub,
            "spaced_drain_lines_total",
            &[&sel, "result=\"dropped\""],
        )
    };
    assert!(eventually(60, || sent() + dropped() == produced as u64).await);
    let n = numbers(&got.lock().unwrap());
    assert_eq!(n.len() as u64, sent());
    assert!(n.windows(2).all(|w| w[0] < w[1]));
    // The stuck and refusing drains: sent + dropped + queued = produced, exactly.
    for addr in [stuck_addr.to_string(), format!("127.0.0.1:{refused}")] {
        let sel = format!("drain=\"syslog://{addr}\"");
        let count = |r: &str| {
            metric(
                &hub,
                "spaced_drain_lines_total",
                &[&sel, &format!("result=\"{r}\"")],
            )
        };
        let queued = metric(&hub, "spaced_drain_queue_lines", &[&sel]);
        assert_eq!(
            count("sent") + count("dropped") + queued,
            produced as u64,
            "{addr}"
        );
        assert!(count("dropped") > 0, "{addr}");
    }
    // A clean stop: what cannot leave within the grace (5 s) is counted as dropped.
    hub.shutdown(Duration::from_secs(10)).await;
    for addr in [
        stuck_addr.to_string(),
        format!("127.0.0.1:{refused}"),
        ok_addr.to_string(),
    ] {
        let sel = format!("drain=\"syslog://{addr}\"");
        let count = |r: &str| {
            metric(
                &hub,
                "spaced_drain_lines_total",
                &[&sel, &format!("result=\"{r}\"")],
            )
        };
        assert_eq!(
            count("sent") + count("dropped"),
            produced as u64,
            "{addr} after stop"
        );
        assert_eq!(metric(&hub, "spaced_drain_queue_lines", &[&sel]), 0);
    }
    assert!(
        hub.drains_json()
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "stopped")
    );
}
