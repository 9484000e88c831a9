//! The parking lot: idle plain keep-alive connections wait here, outside tokio.
//!
//! Why: a parked connection in its own task ([`super::park`]) still costs the task, its
//! future and tokio's registration of the socket, about 1.5 KB of RSS per idle connection
//! against nginx's 0.5 (benches/README.md, "Memory per idle connection"); a task holding
//! only its `TcpStream` was measured at 0.9. Here a parked connection is its socket (as a
//! plain fd, taken out of tokio's reactor), the connection's context and a deadline: an
//! entry of a few dozen bytes in one thread's tables, with one epoll instance watching the
//! sockets. When one becomes readable (or the client closes it, or the socket fails), it
//! goes back to the runtime as a new task, which resumes the wait of [`super::park`]: that
//! reads the bytes, sees the end of stream or the router's stop exactly as before, so the
//! behaviour stays in one place. `keepalive` passing closes it here (FIN, then close: the
//! socket has nothing to send). When the router stops every connection in the lot goes
//! back to the runtime, whose wait then keeps it open for `client_header` (a request
//! already sent is answered with `Connection: close`); later arrivals are handed back at
//! once. TLS connections stay in their task (their session state lives in the stream).
//!
//! The runtime never waits on the lot: a park is a push on an unbounded channel and an
//! eventfd write. This module knows nothing of the router (its tenants resume themselves,
//! [`Tenant`]), so the router's shared state can own it without an import cycle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// What the lot holds of a connection besides its socket: it resumes the connection.
pub(crate) trait Tenant: Send + Sync {
    /// Continues serving `stream` in a new task of the runtime (called with the runtime
    /// entered): its wait finds what woke the lot (bytes, end of stream, an error, the
    /// router's stop).
    fn resume(self: Arc<Self>, stream: TcpStream);
}

/// A parked connection, as the runtime hands it over.
type Arrival = (TcpStream, Arc<dyn Tenant>, Instant);

/// The epoll key of the eventfd; connections count from 1.
const WAKER: u64 = 0;

/// One router's lot, started at the first park.
#[derive(Default)]
pub(crate) struct Lot {
    /// `None` inside when the lot could not start: connections then wait in their tasks.
    started: OnceLock<Option<Door>>,
    /// Connections in the lot now (`spaced_router_parked_connections`), kept by its thread.
    count: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Lot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lot")
    }
}

/// The runtime's side of a started lot.
struct Door {
    /// Taken when the router's state is dropped: the thread then exits.
    queue: Option<Sender<Arrival>>,
    waker: Arc<OwnedFd>,
}

impl Drop for Door {
    fn drop(&mut self) {
        // The sender first, so the woken thread finds the channel closed.
        self.queue.take();
        wake(&self.waker);
    }
}

impl Lot {
    /// Connections waiting in the lot now.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Parks `stream` until it is readable or `deadline` passes; hands it back when the lot
    /// cannot take it (it could not start, or `stop` is cancelled: the caller waits for it
    /// in its task, as before the lot).
    pub(crate) fn park(
        &self,
        stream: TcpStream,
        tenant: Arc<dyn Tenant>,
        deadline: Instant,
        stop: &CancellationToken,
    ) -> Result<(), TcpStream> {
        if stop.is_cancelled() {
            return Err(stream);
        }
        let started = self.started.get_or_init(|| {
            let started = start(stop.clone(), Arc::clone(&self.count));
            if let Err(e) = &started {
                warn!(error = %e, "parking lot did not start: idle connections wait in tasks");
            }
            started.ok()
        });
        let Some(door) = started else {
            return Err(stream);
        };
        let sent = match &door.queue {
            Some(tx) => tx.send((stream, tenant, deadline)).map_err(|e| e.0.0),
            None => Err(stream),
        };
        if sent.is_ok() {
            wake(&door.waker);
        }
        sent
    }
}

/// Wakes the lot's thread (an eventfd add never blocks short of 2^64 - 2 wake-ups).
fn wake(waker: &OwnedFd) {
    let _ = rustix::io::write(waker, &1u64.to_ne_bytes());
}

/// Starts the lot's thread; from a runtime task (the handle is taken from it).
fn start(stop: CancellationToken, count: Arc<AtomicUsize>) -> std::io::Result<Door> {
    let handle = Handle::try_current().map_err(std::io::Error::other)?;
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let waker = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
    epoll::add(
        &epoll,
        &*waker,
        epoll::EventData::new_u64(WAKER),
        epoll::EventFlags::IN,
    )?;
    let (tx, rx) = mpsc::channel();
    let yard = Yard {
        epoll,
        waker: Arc::clone(&waker),
        rx,
        handle: handle.clone(),
        stop: stop.clone(),
        stopping: false,
        next: WAKER + 1,
        parked: HashMap::new(),
        deadlines: BinaryHeap::new(),
        count,
    };
    std::thread::Builder::new()
        .name("spaced-lot".into())
        .spawn(move || yard.run())?;
    // The stop wakes the thread; this task is not tracked (a drain must not wait for it).
    let on_stop = Arc::clone(&waker);
    handle.spawn(async move {
        stop.cancelled().await;
        wake(&on_stop);
    });
    Ok(Door {
        queue: Some(tx),
        waker,
    })
}

/// The lot's thread and what it holds.
struct Yard {
    epoll: OwnedFd,
    waker: Arc<OwnedFd>,
    rx: Receiver<Arrival>,
    handle: Handle,
    stop: CancellationToken,
    /// The router stopped: everything goes back to the runtime.
    stopping: bool,
    next: u64,
    parked: HashMap<u64, (TcpStream, Arc<dyn Tenant>)>,
    /// Each parked key by its deadline; keys already gone are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// `parked.len()`, for the metrics.
    count: Arc<AtomicUsize>,
}

impl Yard {
    fn run(mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        loop {
            if !self.stopping && self.stop.is_cancelled() {
                debug!(
                    parked = self.parked.len(),
                    "router stopping: the lot hands its connections back"
                );
                self.give_all_back();
            }
            if !self.take_arrivals() && self.parked.is_empty() {
                self.count.store(0, Ordering::Relaxed);
                return; // the router is gone
            }
            self.expire();
            self.count.store(self.parked.len(), Ordering::Relaxed);
            let timeout = self.timeout();
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    // Cannot watch any more: give everything back rather than strand it.
                    warn!(error = %e, "parking lot failed; its connections go back to their tasks");
                    self.give_all_back();
                    // Nothing to watch now but the waker, which may be what failed:
                    // not a busy loop.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            for ev in &events {
                let key = ev.data.u64();
                if key == WAKER {
                    let mut buf = [0u8; 8];
                    let _ = rustix::io::read(&*self.waker, &mut buf);
                    continue;
                }
                if let Some((stream, tenant)) = self.parked.remove(&key) {
                    let _ = epoll::delete(&self.epoll, &stream);
                    self.hand_back(stream, tenant);
                }
            }
        }
    }

    /// Registers what the runtime parked since the last look; `false` once the router's
    /// side is gone (no more can come).
    fn take_arrivals(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok((stream, tenant, deadline)) => {
                    if self.stopping {
                        self.hand_back(stream, tenant);
                        continue;
                    }
                    let key = self.next;
                    self.next += 1;
                    let flags = epoll::EventFlags::IN
                        | epoll::EventFlags::RDHUP
                        | epoll::EventFlags::ONESHOT;
                    if let Err(e) =
                        epoll::add(&self.epoll, &stream, epoll::EventData::new_u64(key), flags)
                    {
                        debug!(error = %e, "parking lot could not watch a connection");
                        self.hand_back(stream, tenant);
                        continue;
                    }
                    self.parked.insert(key, (stream, tenant));
                    self.deadlines.push(Reverse((deadline, key)));
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Closes the connections whose `keepalive` passed, as the fast path closes after a
    /// last response: FIN (nothing is left to send), then close; the context dropped frees
    /// the `max_connections` slot.
    fn expire(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some((stream, tenant)) = self.parked.remove(&key) {
                let _ = epoll::delete(&self.epoll, &stream);
                // Bytes first, as the wait in its task: a request that came with the
                // deadline (not yet reported by epoll) is served.
                if matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0) {
                    self.hand_back(stream, tenant);
                    continue;
                }
                let _ = stream.shutdown(Shutdown::Write);
                drop((stream, tenant));
            }
        }
    }

    /// Until the next deadline (rounded up to a millisecond, so it is not woken early in a
    /// loop), or none.
    fn timeout(&mut self) -> Option<Timespec> {
        while let Some(Reverse((at, key))) = self.deadlines.peek().copied() {
            if !self.parked.contains_key(&key) {
                self.deadlines.pop();
                continue;
            }
            let left = at.saturating_duration_since(Instant::now());
            let ms = left.as_millis().saturating_add(1).min(1 << 31) as u64;
            return Timespec::try_from(Duration::from_millis(ms)).ok();
        }
        None
    }

    /// From now on nothing stays: what is parked and what arrives goes back to the runtime.
    fn give_all_back(&mut self) {
        self.stopping = true;
        for (_, (stream, tenant)) in std::mem::take(&mut self.parked) {
            let _ = epoll::delete(&self.epoll, &stream);
            self.hand_back(stream, tenant);
        }
        self.deadlines.clear();
    }

    fn hand_back(&self, stream: TcpStream, tenant: Arc<dyn Tenant>) {
        let _entered = self.handle.enter();
        tenant.resume(stream);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A tenant that reports its resumption on a channel (the router's resumes a
    /// connection; here only the hand-back is under test).
    struct Reports(Sender<TcpStream>);

    impl Tenant for Reports {
        fn resume(self: Arc<Self>, stream: TcpStream) {
            // Called with the runtime entered, as the router's spawns there.
            assert!(Handle::try_current().is_ok());
            let _ = self.0.send(stream);
        }
    }

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    const LONG: Duration = Duration::from_secs(60);

    /// Readable: handed back with its bytes unread. Past its deadline: FIN. Stopped:
    /// everything handed back, and what comes later is refused. Dropped: the thread ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_lot_hands_back_closes_and_stops() {
        let lot = Lot::default();
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let tenant = || Arc::new(Reports(tx.clone())) as Arc<dyn Tenant>;
        let far = Instant::now() + LONG;

        let (server, mut client) = pair();
        lot.park(server, tenant(), far, &stop).unwrap();
        client.write_all(b"GET").unwrap();
        let back = rx.recv_timeout(LONG).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(back.peek(&mut buf).unwrap(), 3);

        let (server, mut client) = pair();
        lot.park(server, tenant(), Instant::now(), &stop).unwrap();
        client.set_read_timeout(Some(LONG)).unwrap();
        assert_eq!(client.read(&mut buf).unwrap(), 0, "a FIN at the deadline");

        let (server, _client) = pair();
        lot.park(server, tenant(), far, &stop).unwrap();
        let (server2, _client2) = pair();
        lot.park(server2, tenant(), far, &stop).unwrap();
        for _ in 0..100 {
            if lot.len() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(lot.len(), 2);
        stop.cancel();
        rx.recv_timeout(LONG).unwrap();
        rx.recv_timeout(LONG).unwrap();
        let (server, _client) = pair();
        assert!(lot.park(server, tenant(), far, &stop).is_err());
        drop(lot);
    }
}
