//! A dyno's response body read straight from its socket by the head's framing, with the
//! same rolling idle timeout (H15), interruption (H18), byte count and log line as the
//! hyper-relayed body; after a complete, keep-alive exchange the socket is pooled again.

use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};
use tokio::time::Instant;

use super::{COPY_MAX, RawConn};
use crate::body::{BodyError, RollingIdle, hold_back};
use crate::code::Code;
use crate::h1::chunked::Step;
use crate::h1::framing::RecvFraming;
use crate::relay_end::RelayEnd;

/// A dyno's response body on a [`RawConn`].
#[derive(Debug)]
pub(crate) struct RawRelay {
    conn: Option<RawConn>,
    framing: RecvFraming,
    keep_alive: bool,
    timer: RollingIdle,
    bytes: u64,
    end: Option<RelayEnd>,
    /// The dyno's failure, held back one poll ([`hold_back`]).
    failed: Option<BodyError>,
    /// The client's head, already written as bytes (`front`'s responses); the response
    /// this body goes with then has nothing else to say but its status.
    pub(crate) written: Option<WrittenHead>,
}

/// A client's response head written as bytes by [`super::parse_head_for_client`]: status
/// line and headers, without the framing headers, `date` and the blank line.
#[derive(Debug)]
pub(crate) struct WrittenHead {
    pub bytes: Vec<u8>,
    /// It has a `content-length`.
    pub has_length: bool,
    /// It has a `date`.
    pub has_date: bool,
}

impl RawRelay {
    /// Relays the body that follows a head on `conn`; `end` is finished when it ends,
    /// fails, or is dropped.
    pub(crate) fn new(
        conn: RawConn,
        framing: RecvFraming,
        keep_alive: bool,
        idle: Duration,
        end: RelayEnd,
    ) -> Self {
        end.exchange.conn.relay_started();
        Self {
            conn: Some(conn),
            framing,
            keep_alive,
            timer: RollingIdle::new(idle),
            bytes: 0,
            end: Some(end),
            failed: None,
            written: None,
        }
    }

    /// Whether the body is known to be over.
    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.framing, RecvFraming::Empty | RecvFraming::Length(0)) || self.end.is_none()
    }

    /// The exact length when the framing says it.
    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.framing {
            RecvFraming::Empty => SizeHint::with_exact(0),
            RecvFraming::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// Writes the log line; a complete exchange on a keep-alive connection with nothing
    /// left over gives the socket back to the dyno's pool.
    fn finish(&mut self, code: Option<Code>, complete: bool) {
        let Some(end) = self.end.take() else {
            return;
        };
        let now = Instant::now();
        if let Some(conn) = self.conn.take()
            && complete
            && self.keep_alive
            && conn.buf.is_empty()
            && !end.dyno.0.removed.load(Ordering::Relaxed)
        {
            end.dyno.0.pool.put_raw(conn, now);
        }
        end.finish(code, false, self.bytes, now);
    }

    /// The dyno broke off mid-body (H18).
    fn fail(
        &mut self,
        e: BodyError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.finish(Some(Code::H18), false);
        hold_back(&mut self.failed, self.bytes, e, cx)
    }

    /// The next frame of the body.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if let Some(end) = &self.end {
            end.exchange.conn.relay_polled();
        }
        loop {
            if self.end.is_none() {
                return Poll::Ready(None);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // Take what the buffer holds first.
            let got = match &mut self.framing {
                RecvFraming::Empty | RecvFraming::Length(0) => Next::Done,
                RecvFraming::Length(left) if !conn.buf.is_empty() => {
                    let n =
                        usize::try_from(*left).map_or(conn.buf.len(), |l| l.min(conn.buf.len()));
                    *left -= n as u64;
                    Next::Data(take(&mut conn.buf, n))
                }
                RecvFraming::Close if !conn.buf.is_empty() => {
                    let n = conn.buf.len();
                    Next::Data(take(&mut conn.buf, n))
                }
                RecvFraming::Chunked(c) => match c.step(&mut conn.buf, COPY_MAX) {
                    Ok(Step::Data(d)) => Next::Data(d),
                    Ok(Step::Done) => Next::Done,
                    Ok(Step::More) => Next::Read,
                    Err(_) => Next::Invalid,
                },
                RecvFraming::Length(_) | RecvFraming::Close => Next::Read,
            };
            let polled = match got {
                Next::Data(d) => {
                    self.bytes += d.len() as u64;
                    self.timer.moved();
                    if matches!(self.framing, RecvFraming::Length(0)) {
                        self.finish(None, true);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Next::Done => {
                    self.finish(None, true);
                    return Poll::Ready(None);
                }
                Next::Invalid => return self.fail(BodyError::Framing, cx),
                Next::Read => conn.poll_fill(cx),
            };
            // Nothing buffered: read more, or wait under the idle timer.
            match polled {
                Poll::Ready(Ok(0)) => {
                    if matches!(self.framing, RecvFraming::Close) {
                        // Close-delimited: the end of the body; the socket is spent.
                        self.finish(None, false);
                        return Poll::Ready(None);
                    }
                    return self.fail(BodyError::Closed, cx);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return self.fail(BodyError::Io(e), cx),
                Poll::Pending => {
                    let idle = ready!(self.timer.poll_expired(cx));
                    self.finish(Some(Code::H15), false);
                    return Poll::Ready(Some(Err(BodyError::Idle(idle))));
                }
            }
        }
    }
}

/// What the buffer gave.
enum Next {
    Data(Bytes),
    Done,
    Invalid,
    Read,
}

impl Drop for RawRelay {
    fn drop(&mut self) {
        // Dropped before its end: the client went away mid-response, or the body was never
        // polled because it is empty (HEAD, 204, 304): then it is complete and reusable.
        let complete = matches!(self.framing, RecvFraming::Empty | RecvFraming::Length(0));
        self.finish(None, complete);
    }
}

/// `n` bytes off the front of `buf`: copied when they empty a small buffer (so it stays
/// unshared and is reused as is), split off otherwise (no copy of large bodies).
fn take(buf: &mut bytes::BytesMut, n: usize) -> Bytes {
    if n == buf.len() && n <= COPY_MAX {
        let d = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        d
    } else {
        buf.split_to(n).freeze()
    }
}
