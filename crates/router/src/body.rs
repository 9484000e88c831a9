//! What every streamed body of the router shares, and the client's request body on its way
//! to a dyno (rolling idle timeout, H28; client gone, H27; bad framing, H26). The dyno's
//! response on its way to the client is [`crate::relay`]'s; what ends it,
//! [`crate::relay_end`]'s.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

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
pub(crate) struct RollingIdle {
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl RollingIdle {
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
    timer: RollingIdle,
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
            timer: RollingIdle::new(idle),
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
