//! Serving one admin or probe listener under the bounds of the router's listeners: a cap
//! on connections at once, `client_header` for a request head and `keepalive` for an idle
//! connection (`[router.timeouts]`, read per connection so reloads apply). Without them a
//! few hundred silent or dripping connections are held for ever, and they share the file
//! table with the data plane (issue 19, break 4).
//!
//! Like HAProxy's `timeout http-request`, the head clock of a new connection starts at
//! accept: a connection that never sends a byte is cut after `client_header`, not kept as
//! if it were an idle keep-alive one. After a response, the connection may idle for
//! `keepalive`; the first byte of the next head starts the `client_header` clock again.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use spaced_config::Timeouts;
use spaced_net::{ConnGuard, ConnLimit, Shutdown};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{debug, error};

use super::routes::handle;
use super::state::{Cut, Kind, State};

/// Connections one admin or probe listener holds at once; beyond it a new one is closed
/// without a word, as the router does past `max_connections`. Its clients are a handful
/// (an operator, kubelet, a Prometheus or two), so 64 is plenty, and it keeps what an
/// abusive client can pin to 64 descriptors per listener.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// Largest request head buffered: the admin API takes no large heads (hyper's minimum is
/// 8 KiB; nginx's default `large_client_header_buffers` is 4 × 8 KiB).
const MAX_HEAD_BUF: usize = 16 * 1024;

/// Accepts on `listener` until `shutdown`, each connection capped and timed.
pub(super) fn spawn(
    listener: TcpListener,
    local: SocketAddr,
    kind: Kind,
    state: Arc<State>,
    shutdown: Shutdown,
) {
    let limit = ConnLimit::new(MAX_CONNECTIONS);
    let tasks = shutdown.clone();
    shutdown.spawn(async move {
        let handle = |tcp: TcpStream, peer: SocketAddr| {
            let Some(slot) = limit.try_acquire() else {
                state.cuts.count(kind, Cut::OverLimit);
                debug!(client.addr = %peer, listener = %local, "admin connection cap reached, closing");
                return;
            };
            tasks.spawn(connection(tcp, peer, kind, slot, state.clone(), tasks.clone()));
        };
        if let Err(e) = spaced_net::serve(listener, tasks.clone(), |_| true, handle).await {
            error!(listener = %local, error = %e, "admin listener stopped");
        }
    });
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: Kind,
    _slot: ConnGuard,
    state: Arc<State>,
    shutdown: Shutdown,
) {
    let timeouts = state.store.load().router.timeouts;
    // The address the client reached: what a Host naming this listener carries, even
    // when it is bound to a wildcard address.
    let local = match tcp.local_addr() {
        Ok(a) => spaced_net::canonical_addr(a),
        Err(_) => return,
    };
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(Watched {
        io: tcp,
        clock: clock.clone(),
    });
    let service_clock = clock.clone();
    let service_state = state.clone();
    let service = service_fn(move |req: http::Request<Incoming>| {
        let state = service_state.clone();
        let clock = service_clock.clone();
        async move {
            let _busy = clock.begin();
            Ok::<_, Infallible>(handle(&state, kind, local, req).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BUF)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(client.addr = %peer, error = %e, "admin connection");
                }
                return;
            }
            why = clock.expired(&timeouts) => {
                // Dropping the connection closes the socket; nothing is owed to a client
                // that did not finish its head in time or went quiet.
                state.cuts.count(kind, why);
                debug!(client.addr = %peer, reason = why.label(), "admin connection cut");
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where one connection stands, in milliseconds since `start` (0: not set, else ms + 1).
struct Clock {
    start: Instant,
    /// When the request head now arriving began (its first byte, or accept for the first).
    head_since: AtomicU64,
    /// When the connection last went idle (a response was produced).
    idle_since: AtomicU64,
    /// Requests being answered; neither clock runs meanwhile (a reload may take a while).
    busy: AtomicU32,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(1),
            busy: AtomicU32::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Bytes arrived: outside a request they begin a head.
    fn on_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0 && self.head_since.load(Ordering::Relaxed) == 0 {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A head is complete and its request is being answered until the guard drops.
    fn begin(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        Busy(self)
    }

    /// Resolves when the connection has overstayed (see [`Clock::verdict`]). Reads only
    /// store timestamps; this looks again when its deadline passes, so the hot path of a
    /// read is one relaxed load.
    async fn expired(&self, t: &Timeouts) -> Cut {
        loop {
            let now = self.now();
            match self.verdict(now, t) {
                Verdict::Cut(why) => return why,
                Verdict::Wait(at) => {
                    let wait = at.saturating_sub(now).max(1);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
    }

    /// At `now`: cut (a head slower than `client_header`, or idle longer than
    /// `keepalive`), or look again at a later instant. A pure function of the stored
    /// timestamps and `now`.
    fn verdict(&self, now: u64, t: &Timeouts) -> Verdict {
        let look_again = now.saturating_add(ms(t.client_header.min(t.keepalive)));
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Verdict::Wait(look_again);
        }
        let (deadline, why) = match self.head_since.load(Ordering::Relaxed) {
            0 => (
                self.idle_since
                    .load(Ordering::Relaxed)
                    .saturating_add(ms(t.keepalive)),
                Cut::Idle,
            ),
            head => (head.saturating_add(ms(t.client_header)), Cut::SlowHead),
        };
        if now >= deadline {
            Verdict::Cut(why)
        } else {
            Verdict::Wait(deadline.min(look_again))
        }
    }
}

/// What [`Clock::verdict`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Nothing overdue; look again at this instant (ms since the clock's start, + 1).
    Wait(u64),
    /// Close the connection.
    Cut(Cut),
}

/// Marks the end of a request when dropped (also when hyper drops the service future).
struct Busy<'a>(&'a Clock);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.idle_since.store(now, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The socket, telling the clock when bytes arrive.
struct Watched {
    io: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(client_header: u64, keepalive: u64) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(30),
            idle: Duration::from_secs(55),
            client_header: Duration::from_millis(client_header),
            keepalive: Duration::from_millis(keepalive),
            pool_idle: Duration::from_secs(90),
        }
    }

    #[test]
    fn heads_are_timed_from_accept_then_from_their_first_byte_and_idling_by_keepalive() {
        let t = timeouts(1_000, 5_000);
        let clock = Clock::new();
        // A new connection: its first head is due `client_header` after accept (ms 1).
        assert_eq!(clock.verdict(1, &t), Verdict::Wait(1_001));
        assert_eq!(clock.verdict(1_001, &t), Verdict::Cut(Cut::SlowHead));
        // A request in progress is never cut, however long it takes.
        let busy = clock.begin();
        assert_eq!(clock.verdict(60_000, &t), Verdict::Wait(61_000));
        drop(busy);
        // The answer went out at ms 60 000 (the guard stamps the real clock; set it).
        clock.idle_since.store(60_000, Ordering::Relaxed);
        // Idle after the answer: `keepalive`, looked at every `client_header`.
        assert_eq!(clock.verdict(60_500, &t), Verdict::Wait(61_500));
        assert_eq!(clock.verdict(64_999, &t), Verdict::Wait(65_000));
        assert_eq!(clock.verdict(65_000, &t), Verdict::Cut(Cut::Idle));
        // The first byte of the next head starts its `client_header`.
        clock.head_since.store(62_000, Ordering::Relaxed);
        assert_eq!(clock.verdict(62_500, &t), Verdict::Wait(63_000));
        assert_eq!(clock.verdict(63_000, &t), Verdict::Cut(Cut::SlowHead));
    }
}
