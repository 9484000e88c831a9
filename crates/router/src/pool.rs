//! Connections to one dyno: HTTP/1.1 keep-alive senders, shared by every worker thread,
//! most recently used first, closed once idle for `pool_idle` (or at once when the dyno
//! leaves the policy). A short mutex per dyno guards the idle list; it is held for a
//! push or a pop, never across an await.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::body::ReqBody;
use crate::dial::{self, ConnectError};
use crate::dyno_h1::RawConn;
use crate::h1::limits::DYNO_MAX_HEADERS;

/// Most idle connections kept per dyno; more are closed when returned.
const MAX_IDLE: usize = 512;

/// A sender to a dyno.
pub(crate) type Sender = SendRequest<ReqBody>;

/// One connection to a dyno: the sender and, for pooled connections, the connection's
/// driver, polled by whichever request task holds it (so a proxied exchange needs no
/// hand-off to another task). Upgrade requests use a spawned driver instead, since the
/// upgraded socket outlives the request.
pub(crate) struct Upstream {
    /// Sends requests on the connection.
    pub tx: Sender,
    /// The connection state machine (boxed once per connection: it is large and moves in
    /// and out of the pool); `None` when it runs as its own task.
    conn: Option<Box<Driver>>,
    /// The driver finished (closed or failed): never reuse.
    done: bool,
}

type Driver = http1::Connection<TokioIo<TcpStream>, ReqBody>;

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("inline", &self.conn.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl Upstream {
    /// Polls the inline driver, if any, so the connection makes progress (reads the
    /// response, notices a close). Registers the caller's waker.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) {
        self.split().1.drive(cx);
    }

    /// Waits until a request may be sent; `false` when the connection is dead.
    pub(crate) async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            self.drive(cx);
            if self.done {
                return Poll::Ready(false);
            }
            self.tx.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Whether it can serve another exchange.
    pub(crate) fn reusable(&self) -> bool {
        self.conn.is_some() && !self.done && !self.tx.is_closed()
    }

    /// The sender and a driver hook, borrowed apart.
    pub(crate) fn split(&mut self) -> (&mut Sender, DriveHook<'_>) {
        (
            &mut self.tx,
            DriveHook {
                conn: self.conn.as_mut(),
                done: &mut self.done,
            },
        )
    }
}

/// The driver half of a borrowed [`Upstream`].
pub(crate) struct DriveHook<'a> {
    conn: Option<&'a mut Box<Driver>>,
    done: &'a mut bool,
}

impl DriveHook<'_> {
    /// As [`Upstream::drive`].
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = self.conn.as_mut()
            && !*self.done
            && let Poll::Ready(res) = Pin::new(&mut ***conn).poll(cx)
        {
            *self.done = true;
            if let Err(e) = res {
                debug!(error = %e, "dyno connection ended");
            }
        }
    }
}

/// The idle connections of one dyno: hyper ones (left by requests with a body) and raw
/// ones (left by requests without, see `dyno_h1`).
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: IdleStack<Upstream>,
    raw: IdleStack<RawConn>,
}

/// Idle connections of one kind, most recently returned last. A short mutex guards it,
/// held for a push, a pop or a sweep, never across an await.
#[derive(Debug)]
struct IdleStack<C>(Mutex<Vec<(C, Instant)>>);

impl<C> Default for IdleStack<C> {
    fn default() -> Self {
        Self(Mutex::new(Vec::new()))
    }
}

impl<C> IdleStack<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(C, Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recent connection that `usable` accepts and that is not idle for
    /// `max_idle`; older ones popped on the way are closed.
    fn checkout(&self, now: Instant, max_idle: Duration, usable: impl Fn(&C) -> bool) -> Option<C> {
        let mut idle = self.lock();
        while let Some((c, since)) = idle.pop() {
            if usable(&c) && now.saturating_duration_since(since) < max_idle {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, c: C, now: Instant) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push((c, now));
        }
    }

    /// Keeps the connections `keep` accepts and that are not idle for `max_idle`.
    fn sweep(&self, now: Instant, max_idle: Duration, mut keep: impl FnMut(&mut C) -> bool) {
        self.lock()
            .retain_mut(|(c, since)| keep(c) && now.saturating_duration_since(*since) < max_idle);
    }

    fn clear(&self) {
        let drained = std::mem::take(&mut *self.lock());
        drop(drained);
    }

    fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Pool {
    /// The most recently returned connection not idle for longer than `max_idle` (it may
    /// still turn out closed: see [`Upstream::ready`]).
    pub(crate) fn checkout(&self, now: Instant, max_idle: Duration) -> Option<Upstream> {
        self.idle.checkout(now, max_idle, Upstream::reusable)
    }

    /// The most recently returned raw connection that is still open and not idle for
    /// longer than `max_idle`.
    pub(crate) fn checkout_raw(&self, now: Instant, max_idle: Duration) -> Option<RawConn> {
        self.raw.checkout(now, max_idle, RawConn::idle_ok)
    }

    /// Returns a raw connection after a complete keep-alive exchange.
    pub(crate) fn put_raw(&self, conn: RawConn, now: Instant) {
        self.raw.put(conn, now);
    }

    /// Returns a connection after a complete exchange.
    pub(crate) fn put(&self, up: Upstream, now: Instant) {
        if up.reusable() {
            self.idle.put(up, now);
        }
    }

    /// Closes connections idle for `max_idle` or longer, and those the dyno closed: each
    /// idle driver is polled once (with a no-op waker: nobody waits on an idle connection;
    /// checkout polls again with a real one), so a dyno's close is noticed within a sweep
    /// instead of leaving the socket in CLOSE_WAIT until `max_idle`.
    pub(crate) fn sweep(&self, now: Instant, max_idle: Duration) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.idle.sweep(now, max_idle, |up| {
            up.drive(&mut cx);
            up.reusable()
        });
        self.raw.sweep(now, max_idle, |c| c.idle_ok());
    }

    /// Closes every idle connection (the dyno left the policy, or shutdown).
    pub(crate) fn clear(&self) {
        self.idle.clear();
        self.raw.clear();
    }

    /// Idle connections held now.
    pub(crate) fn len(&self) -> usize {
        self.idle.len() + self.raw.len()
    }
}

/// Opens a new HTTP/1.1 connection to `addr` within `timeout`. With `upgrade`, the
/// connection is driven by its own task (an upgraded socket outlives the request) and is
/// never pooled; otherwise whoever holds the [`Upstream`] drives it.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    upgrade: bool,
) -> Result<Upstream, ConnectError> {
    let stream = dial::tcp(addr, timeout).await?;
    let (tx, conn) = http1::Builder::new()
        .max_headers(DYNO_MAX_HEADERS)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    if upgrade {
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(dyno.addr = %addr, error = %e, "dyno connection ended");
            }
        });
        return Ok(Upstream {
            tx,
            conn: None,
            done: false,
        });
    }
    Ok(Upstream {
        tx,
        conn: Some(Box::new(conn)),
        done: false,
    })
}
