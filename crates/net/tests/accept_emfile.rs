//! The accept loop rides out descriptor exhaustion (EMFILE): it pauses and retries instead
//! of ending, and the waiting connection is served once descriptors are free again.
//! Alone in its own test binary because it fills the process's descriptor table.

// Helpers outside #[test] fns panic on purpose: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use spaced_net::{Shutdown, serve, tcp_listener};
use tokio::sync::mpsc;
use tokio::time::timeout;

#[tokio::test(flavor = "current_thread")]
async fn emfile_pauses_then_recovers() {
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(serve(
        listener,
        shutdown.clone(),
        |_| true,
        move |s, p| {
            tx.send((s, p)).unwrap();
        },
    ));
    // The client's descriptor exists before the table is filled; connecting needs no new
    // one (the kernel completes the handshake from the backlog).
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let mut hog = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
        assert!(hog.len() < 2_000_000, "no descriptor limit?");
    }
    client.connect(&addr.into()).unwrap();
    // accept(2) fails with EMFILE now: nothing is handed over and the loop keeps going
    // (the pause is the test: a window in which nothing may happen).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err());
    assert!(!task.is_finished(), "the loop must not end on EMFILE");
    drop(hog);
    let (_stream, peer) = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer, client.local_addr().unwrap().as_socket().unwrap());
    shutdown.cancel();
    timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
