//! A response body for the client ([`ResBody`]): one the router made, or a dyno's relayed
//! from hyper's client ([`Relay`]: rolling idle timeout, H15; dyno gone, H18) or from a raw
//! connection ([`RawRelay`]). Its end is finished by [`RelayEnd`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Instant;

use crate::body::{BodyError, RollingIdle, hold_back};
use crate::code::Code;
use crate::dyno_h1::body::RawRelay;
use crate::exchange::Exchange;
use crate::relay_end::RelayEnd;

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

/// A dyno's response body with a rolling idle timeout and a byte count.
#[derive(Debug)]
pub(crate) struct Relay {
    inner: Incoming,
    timer: RollingIdle,
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
            timer: RollingIdle::new(idle),
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
