//! The client socket as hyper sees it ([`Watched`]): reads note when a request head starts
//! (and, over HTTP/2, when a header block opens or closes); the end of a connection's last
//! response is written with `MSG_MORE`; hyper's own empty answer to a head it cannot parse
//! is replaced by our page ([`crate::rejected`]) and logged.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ctx::ConnCtx;
use super::h2;
use super::send_more::SendMore;
use crate::code::Code;
use crate::exchange::{Exchange, Outcome};
use crate::rejected;

/// The client socket, noting when a request head starts arriving, and sending our page in
/// place of hyper's empty answer to a head it cannot parse ([`crate::rejected`]).
pub(super) struct Watched<I> {
    inner: I,
    ctx: Arc<ConnCtx>,
    /// Everything written so far was flushed while no request was in flight: the next
    /// write may be hyper's automatic answer.
    armed: bool,
    /// Our answer being written in place of hyper's, and the length of hyper's write
    /// (reported as written once ours is out).
    replacing: Option<(Bytes, usize)>,
    /// HTTP/2: the client's frames, followed for header blocks left open.
    frames: Option<h2::FrameScan>,
}

impl<I> Watched<I> {
    pub(super) fn new(inner: I, ctx: Arc<ConnCtx>) -> Self {
        let frames = ctx.is_h2().then(h2::FrameScan::new);
        Self {
            inner,
            ctx,
            armed: true,
            replacing: None,
            frames,
        }
    }

    /// Looks at a write that begins while armed; `only` is its one non-empty buffer, if it
    /// has exactly one, and `total` its length.
    fn look(&mut self, only: Option<&[u8]>, total: usize) {
        self.armed = false;
        let Some(out) = only else { return };
        if !self.ctx.between_requests() {
            return;
        }
        if rejected::auto_status(out).is_none() {
            return;
        }
        let request_id = crate::headers::new_request_id();
        let (ours, bytes) = rejected::replacement(out, &request_id);
        self.ctx.head_answered.store(true, Ordering::Relaxed);
        log_unparsed(Arc::clone(&self.ctx), request_id, Code::H26.status(), bytes);
        self.replacing = Some((ours, total));
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    /// Writes our answer; once it is out, hyper's bytes count as written.
    fn poll_replace(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((ours, claimed)) = self.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while ours.has_remaining() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, ours))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            ours.advance(n);
        }
        let claimed = *claimed;
        self.replacing = None;
        Poll::Ready(Ok(claimed))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.ctx.on_read();
            if let Some(frames) = &mut this.frames {
                this.ctx.on_h2_block(frames.feed(&buf.filled()[before..]));
            }
        }
        res
    }
}

impl<I: AsyncWrite + SendMore + Unpin> Watched<I> {
    /// The end of the last response, written with `MSG_MORE` ([`SendMore`]); `None` when
    /// this write is not that or the socket cannot take it now (the plain write then
    /// registers for writability).
    fn try_send_more(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<io::Result<usize>> {
        if !self.ctx.writing_the_end() {
            return None;
        }
        match self.inner.send_more(bufs)? {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            other => Some(other),
        }
    }
}

impl<I: AsyncWrite + SendMore + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.armed {
            this.look(Some(b), b.len());
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        if let Some(res) = this.try_send_more(&[io::IoSlice::new(b)]) {
            return Poll::Ready(res);
        }
        Pin::new(&mut this.inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.armed {
            let mut full = bufs.iter().filter(|b| !b.is_empty());
            let only = match (full.next(), full.next()) {
                (Some(b), None) => Some(&b[..]),
                _ => None,
            };
            this.look(only, bufs.iter().map(|b| b.len()).sum());
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        if let Some(res) = this.try_send_more(bufs) {
            return Poll::Ready(res);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // hyper flushes after its buffer is empty: with no request in flight, the next
        // write starts a new answer.
        if this.replacing.is_none() && this.ctx.between_requests() {
            this.armed = true;
        }
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The log line and count of a request whose head could not be parsed.
pub(super) fn log_unparsed(ctx: Arc<ConnCtx>, request_id: HeaderValue, status: u16, bytes: u64) {
    let mut ex = Exchange::new(ctx, http::Method::GET, http::Version::HTTP_11, request_id);
    ex.unparsed = true;
    ex.finish(Outcome {
        code: Some(Code::H26),
        status,
        bytes,
        ..Outcome::default()
    });
}
