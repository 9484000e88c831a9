//! The admin and probe listeners' bounds: a connection cap, `client_header` for heads and
//! `keepalive` for idle connections (issue 19, break 4).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{T, admin_policy, ask, start, status};
use crate::harness::{ConfigDir, wait_for};

/// Whether the server closed `s` (EOF or reset), waiting up to `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn timeouts(client_header: &str, keepalive: &str) -> String {
    format!(
        "\n[router.timeouts]\nclient_header = \"{client_header}\"\nkeepalive = \"{keepalive}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_beyond_the_cap_are_closed_at_once() {
    let dir = ConfigDir::new();
    // Long enough that only the cap can close anything during the test.
    let text = admin_policy("probe_listen = [\"127.0.0.1:0\"]\n") + &timeouts("60s", "60s");
    let daemon = start(&dir, &text, false).await;
    let admin = daemon.addrs().admin.unwrap();
    let probe = daemon.addrs().probe[0];
    let cap = spaced::admin::MAX_CONNECTIONS;
    tokio::task::spawn_blocking(move || {
        let mut conns: Vec<TcpStream> = (0..250)
            .map(|_| TcpStream::connect(admin).unwrap())
            .collect();
        let mut open = Vec::new();
        let mut closed = 0;
        for mut s in conns.drain(..) {
            if closed_within(&mut s, Duration::from_millis(300)) {
                closed += 1;
            } else {
                open.push(s);
            }
        }
        assert_eq!(closed, 250 - cap, "closed at once");
        assert_eq!(open.len(), cap);
        // The probe listener has its own cap: a full admin listener does not blind kubelet.
        assert_eq!(status(&ask(probe, "GET /readyz HTTP/1.1", None)), 200);
        let metrics = ask(probe, "GET /metrics HTTP/1.1", None);
        let over = format!(
            "spaced_admin_connections_cut_total{{listener=\"admin\",reason=\"over_limit\"}} {}\n",
            250 - cap
        );
        assert!(metrics.contains(&over), "{over} in:\n{metrics}");
        // A slot freed is a slot for the next client.
        drop(open.pop());
        wait_for("a freed admin slot", T, || {
            TcpStream::connect(admin)
                .map(|mut s| {
                    write!(
                        s,
                        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let mut text = String::new();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let _ = s.read_to_string(&mut text);
                    text.starts_with("HTTP/1.1 200")
                })
                .unwrap_or(false)
        });
    })
    .await
    .unwrap();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_dripping_and_idle_connections_are_cut() {
    let dir = ConfigDir::new();
    let text = admin_policy("probe_listen = [\"127.0.0.1:0\"]\n") + &timeouts("1s", "2s");
    let daemon = start(&dir, &text, false).await;
    let admin = daemon.addrs().admin.unwrap();
    let probe = daemon.addrs().probe[0];
    tokio::task::spawn_blocking(move || {
        for addr in [admin, probe] {
            // Silent: never a byte. Cut by client_header, counted from accept (those
            // beyond the cap at once).
            let mut silent: Vec<TcpStream> = (0..250)
                .map(|_| TcpStream::connect(addr).unwrap())
                .collect();
            let started = Instant::now();
            for s in &mut silent {
                let left = Duration::from_secs(20).saturating_sub(started.elapsed());
                assert!(
                    closed_within(s, left.max(Duration::from_millis(1))),
                    "{addr}: silent connection held"
                );
            }
            // Dripping: a byte of a head every 200 ms, which would never end by itself.
            let mut drip = TcpStream::connect(addr).unwrap();
            drip.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            drip.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                .unwrap();
            let started = Instant::now();
            let mut cut = false;
            let mut buf = [0u8; 256];
            while started.elapsed() < Duration::from_secs(20) {
                if drip.write_all(b"X").is_err() {
                    cut = true;
                    break;
                }
                match drip.read(&mut buf) {
                    Ok(0) => {
                        cut = true;
                        break;
                    }
                    Ok(n) => panic!("{addr}: answered a head never finished: {:?}", &buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {
                        cut = true;
                        break;
                    }
                }
            }
            assert!(cut, "{addr}: a dripping head was held for 20 s");
            // Idle after an answer: cut by keepalive.
            let mut idle = TcpStream::connect(addr).unwrap();
            idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let n = idle.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{addr}");
            assert!(
                closed_within(&mut idle, Duration::from_secs(20)),
                "{addr}: idle connection held"
            );
        }
    })
    .await
    .unwrap();
    daemon.stop().await;
}
