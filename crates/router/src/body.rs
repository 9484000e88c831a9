//! The bodies the router streams: a client's request body on its way to a dyno (rolling
//! idle timeout, H28; client gone, H27) and a dyno's response on its way to the client
//! (rolling idle timeout, H15; dyno gone, H18), whose end writes the log line and gives the
//! dyno connection back to the pool.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::code::Code;
use crate::dyno_h1::body::RawRelay;
use crate::exchange::{Exchange, Outcome};
use crate::pool::Upstream;
use crate::state::DynoRt;

/// Why a relayed body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Nothing moved for `timeouts.idle`.
    #[error("body idle for {0:?}")]
    Idle(Duration),
    /// The sending side failed or closed mid-body.
    #[error("body interrupted")]
    Interrupted(#[source] hyper::Error),
    /// The dyno closed the connection mid-body.
    #[error("dyno closed the connection mid-body")]
    Closed,
    /// The dyno's socket failed mid-body.
    #[error("dyno connection failed mid-body")]
    Io(#[source] std::io::Error),
    /// The dyno's chunked coding is invalid.
    #[error("invalid chunked body from the dyno")]
    Framing,
}

/// Set by a [`ReqBody`] when the client failed mid-upload, read by the proxy to pick the code.
pub(crate) const CLIENT_OK: u8 = 0;
/// The client went away while sending (H27).
pub(crate) const CLIENT_GONE: u8 = 1;
/// The client was idle while sending (H28).
pub(crate) const CLIENT_IDLE: u8 = 2;
/// The whole body was handed over: the request is sent (the H12 clock may run).
pub(crate) const CLIENT_DONE: u8 = 3;
/// The client's body broke its framing (a bad chunk size or line; H26).
pub(crate) const CLIENT_MALFORMED: u8 = 4;

/// A rolling idle timeout for a streamed body: armed on the first wait, so a body that
/// arrives at once costs no timer, and pushed back whenever data moves.
#[derive(Debug)]
pub(crate) struct IdleTimer {
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    /// A timer of `idle`, not yet armed.
    pub(crate) fn new(idle: Duration) -> Self {
        Self { idle, sleep: None }
    }

    /// Data moved: the timeout counts from now again.
    pub(crate) fn moved(&mut self) {
        if let Some(t) = self.sleep.as_mut() {
            t.as_mut().reset(Instant::now() + self.idle);
        }
    }

    /// Called when the body would wait: ready (with the timeout) once nothing moved for
    /// the whole of it.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Duration> {
        let idle = self.idle;
        let t = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        ready!(t.as_mut().poll(cx));
        Poll::Ready(idle)
    }
}

/// A request body for a dyno.
#[derive(Debug)]
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// The client's body, relayed.
    Client(ClientBody),
}

/// A client's request body with a rolling idle timeout.
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: Incoming,
    timer: IdleTimer,
    /// What went wrong, for the proxy (shared: the body moves into hyper's client).
    pub(crate) fault: Arc<AtomicU8>,
}

impl ReqBody {
    /// Wraps a client body; the second value reports a client fault after the fact.
    pub(crate) fn client(inner: Incoming, idle: Duration) -> (Self, Option<Arc<AtomicU8>>) {
        if inner.is_end_stream() {
            return (Self::Empty, None);
        }
        let fault = Arc::new(AtomicU8::new(CLIENT_OK));
        let body = ClientBody {
            inner,
            timer: IdleTimer::new(idle),
            fault: Arc::clone(&fault),
        };
        (Self::Client(body), Some(fault))
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Self::Client(b) = self.get_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut b.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                b.timer.moved();
                if b.inner.is_end_stream() {
                    b.fault.store(CLIENT_DONE, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                let fault = if is_malformed(&e) {
                    CLIENT_MALFORMED
                } else {
                    CLIENT_GONE
                };
                b.fault.store(fault, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyError::Interrupted(e))))
            }
            Poll::Ready(None) => {
                b.fault.store(CLIENT_DONE, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = ready!(b.timer.poll_expired(cx));
                b.fault.store(CLIENT_IDLE, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyError::Idle(idle))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Client(b) => b.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Client(b) => b.inner.size_hint(),
        }
    }
}

/// Whether a client body failed on its framing rather than on its connection: hyper's
/// chunk decoder says so with `InvalidInput`/`InvalidData`, and an early end with
/// `UnexpectedEof`.
fn is_malformed(e: &hyper::Error) -> bool {
    let io = std::error::Error::source(e).and_then(|c| c.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
        )
    })
}

/// A dyno's body failed mid-way (H18): once some of it was relayed, the error is held back
/// one poll, with a wake-up. hyper drops its unflushed write buffer with the connection
/// when a body fails, and a `Pending` first lets it flush what was relayed (BEHAVIOR.md:
/// "what was already relayed stays relayed").
pub(crate) fn hold_back(
    failed: &mut Option<BodyError>,
    relayed: u64,
    e: BodyError,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    if relayed == 0 {
        return Poll::Ready(Some(Err(e)));
    }
    *failed = Some(e);
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Holds one in-flight slot of a dyno; gives it back when dropped.
#[derive(Debug)]
pub(crate) struct InFlight(pub(crate) Arc<DynoRt>);

impl InFlight {
    /// Takes a slot on `dyno`.
    pub(crate) fn new(dyno: Arc<DynoRt>) -> Self {
        dyno.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(dyno)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body for the client.
#[derive(Debug)]
pub(crate) enum ResBody {
    /// A body made by the router (errors, upgrades); the exchange is held until it is sent.
    Full {
        /// The bytes, taken when sent.
        data: Option<Bytes>,
        /// Ends the request's activity when the body is dropped.
        _exchange: Option<Exchange>,
    },
    /// A dyno's response, relayed.
    Relay(Relay),
    /// A dyno's response read from a raw connection (requests without a body).
    Raw(RawRelay),
}

/// What finishes a relayed response.
#[derive(Debug)]
pub(crate) struct RelayEnd {
    /// The request.
    pub exchange: Exchange,
    /// The dyno's slot.
    pub dyno: InFlight,
    /// The connection, driven while the body streams and pooled again after a complete
    /// exchange.
    pub up: Option<Upstream>,
    /// Connection time, ms.
    pub connect_ms: u64,
    /// When the request was handed to the dyno.
    pub sent: Instant,
    /// The response status.
    pub status: u16,
}

/// A dyno's response body with a rolling idle timeout and a byte count.
#[derive(Debug)]
pub(crate) struct Relay {
    inner: Incoming,
    timer: IdleTimer,
    bytes: u64,
    end: Option<RelayEnd>,
    /// The dyno's failure, held back one poll ([`hold_back`]).
    failed: Option<BodyError>,
}

impl Relay {
    /// Relays `inner`; `end` is finished when it ends, fails, or is dropped.
    pub(crate) fn new(inner: Incoming, idle: Duration, end: RelayEnd) -> Self {
        end.exchange.conn.relay_started();
        Self {
            inner,
            timer: IdleTimer::new(idle),
            bytes: 0,
            end: Some(end),
            failed: None,
        }
    }

    fn finish(&mut self, code: Option<Code>, complete: bool) {
        if let Some(end) = self.end.take() {
            end.finish(code, complete, self.bytes, Instant::now());
        }
    }
}

impl RelayEnd {
    /// Writes the log line at `now`; after a complete exchange the hyper connection, if
    /// any, goes back to the dyno's pool.
    pub(crate) fn finish(mut self, code: Option<Code>, complete: bool, bytes: u64, now: Instant) {
        self.exchange.conn.relay_ended();
        if let Some(up) = self.up.take()
            && complete
            && !self.dyno.0.removed.load(Ordering::Relaxed)
        {
            self.dyno.0.pool.put(up, now);
        }
        let service_ms = now.saturating_duration_since(self.sent).as_millis() as u64;
        let o = Outcome {
            code,
            status: self.status,
            bytes,
            dyno: Some(&self.dyno.0.label),
            connect_ms: Some(self.connect_ms),
            service_ms: Some(service_ms),
        };
        self.exchange.finish_at(o, now);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropped before its end: the client went away mid-response (or the body was never
        // polled because it was empty, e.g. HEAD — then it is complete and reusable).
        let complete = self.inner.is_end_stream();
        self.finish(None, complete);
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let r = match self.get_mut() {
            Self::Full { data, .. } => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Relay(r) => r,
            Self::Raw(r) => return r.poll_frame(cx),
        };
        if let Some(e) = r.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if let Some(end) = &r.end {
            end.exchange.conn.relay_polled();
        }
        // The dyno connection is driven from here: it reads the response into `inner`.
        if let Some(up) = r.end.as_mut().and_then(|e| e.up.as_mut()) {
            up.drive(cx);
        }
        match Pin::new(&mut r.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    r.bytes += d.len() as u64;
                }
                r.timer.moved();
                if r.inner.is_end_stream() {
                    r.finish(None, true);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                r.finish(Some(Code::H18), false);
                hold_back(&mut r.failed, r.bytes, BodyError::Interrupted(e), cx)
            }
            Poll::Ready(None) => {
                r.finish(None, true);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = ready!(r.timer.poll_expired(cx));
                r.finish(Some(Code::H15), false);
                Poll::Ready(Some(Err(BodyError::Idle(idle))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full { data, .. } => data.as_ref().is_none_or(Bytes::is_empty),
            Self::Relay(r) => r.inner.is_end_stream(),
            Self::Raw(r) => r.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Self::Relay(r) => r.inner.size_hint(),
            Self::Raw(r) => r.size_hint(),
        }
    }
}
