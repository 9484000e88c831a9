//! The relay for TCP ↔ TCP. A direction starts by copying through a small user-space
//! buffer with plain `read`/`write`, and switches to `splice(2)` (socket → pipe → socket, so
//! payload pages move inside the kernel and never cross into user space: HAProxy's and
//! Cloudflare's fast path for bulk tunnels) once one read fills that buffer.
//!
//! Why not splice from the first byte: most tunnels are short exchanges (a request, an
//! answer, close). For those, splice costs two calls per chunk (in, out) where a copy
//! costs one read and one write, plus a pipe from the pool; and tokio's `poll_read` treats
//! a short read as "socket drained" (edge-triggered epoll), which saves the extra
//! read-until-`EAGAIN` that `try_io` needs. Bulk streams fill the buffer on their first
//! read and are spliced from then on.
//!
//! The usual short exchange ends with an answer and the server's close, which arrive
//! together. When the poller has already reported that EOF behind a short read, the EOF
//! is read at once and the answer is written with `MSG_MORE`, so that the FIN of the
//! half-close (or of the close) leaves in the same segment: one segment and one ACK fewer
//! per tunnel, and the client is woken once instead of twice.
//!
//! Readiness comes from tokio (`poll_read`/`poll_write`, or `poll_*_ready` + `try_io` for
//! splice), so this is ordinary non-blocking I/O on the runtime, not a blocking thread per
//! tunnel.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::idle::IdleTimer;
use super::outcome::{Relayed, finish};
use super::pipe::{Pipe, splice};

/// The read size of a direction that has not switched to splice (a stack buffer). A read
/// that fills it marks the stream as bulk: a short exchange fits (an HTTP request, a TLS
/// ClientHello), a download fills it at once.
const COPY_BUF: usize = 8 * 1024;

/// [`super::relay`] for two TCP sockets: copy for short exchanges, `splice(2)` through a
/// pooled pipe once a direction proves bulk (see the module docs). Same contract:
/// half-close, rolling `idle` over both directions.
///
/// When no pipe can be had (out of descriptors), the direction keeps copying.
///
/// # Errors
/// The first I/O error of either direction (see [`relay_tcp_detailed`] to keep the
/// counts).
pub async fn relay_tcp(a: TcpStream, b: TcpStream, idle: Duration) -> io::Result<Relayed> {
    match relay_tcp_detailed(a, b, idle).await {
        (_, Some(e)) => Err(e),
        (relayed, None) => Ok(relayed),
    }
}

/// [`relay_tcp`], returning the bytes moved even when an error ended it.
///
/// Both sockets are closed when it returns. The direction that ends last therefore skips
/// its `shutdown(SHUT_WR)`: its destination already sent EOF (that ended the other
/// direction), so nothing is left unread on it and the close sends the same FIN, one
/// system call fewer per tunnel.
pub async fn relay_tcp_detailed(
    mut a: TcpStream,
    mut b: TcpStream,
    idle: Duration,
) -> (Relayed, Option<io::Error>) {
    let (mut ab, mut ba) = (Half::new(), Half::new());
    let mut timer = IdleTimer::new(idle);
    let outcome = std::future::poll_fn(|cx| {
        let mut progressed = false;
        if !ab.done {
            match ab.poll_relay(cx, &mut a, &mut b, ba.done, &mut progressed) {
                Poll::Ready(Ok(())) => ab.done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if !ba.done {
            match ba.poll_relay(cx, &mut b, &mut a, ab.done, &mut progressed) {
                Poll::Ready(Ok(())) => ba.done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if ab.done && ba.done {
            return Poll::Ready(Ok(false));
        }
        timer.poll_expired(cx, progressed).map(Ok)
    })
    .await;
    finish(ab.bytes, ba.bytes, outcome)
}

/// One direction, `src` → `dst`: copying through `buf` until a read fills it, then
/// `src` → pipe → `dst`.
struct Half {
    /// Copy mode: bytes read that `dst` did not take yet (usually none, and then no
    /// allocation).
    buf: Vec<u8>,
    /// `buf[pos..]` is still to be written.
    pos: usize,
    /// A read filled the buffer: switch to splice once `buf` is written out.
    bulk: bool,
    /// Splice mode (for good: a bulk stream stays bulk).
    splicing: bool,
    /// Cleared when no pipe could be had: the direction then copies to the end.
    may_splice: bool,
    /// Held while bytes are in flight; returned to the pool when `src` runs dry.
    pipe: Option<Pipe>,
    /// Bytes in the pipe not yet spliced out.
    in_pipe: usize,
    eof: bool,
    /// A read error met while looking for the EOF behind a short read, returned once the
    /// bytes read before it are written.
    err: Option<io::Error>,
    done: bool,
    bytes: u64,
}

impl Half {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            bulk: false,
            splicing: false,
            may_splice: true,
            pipe: None,
            in_pipe: 0,
            eof: false,
            err: None,
            done: false,
            bytes: 0,
        }
    }

    /// Moves what `src` has to `dst`. `last`: the other direction is over, so at EOF the
    /// write shutdown is left to the close (see [`relay_tcp_detailed`]).
    fn poll_relay(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut TcpStream,
        dst: &mut TcpStream,
        last: bool,
        progressed: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.splicing {
                ready!(self.poll_splice(cx, src, dst, progressed))?;
                return Poll::Ready(self.end(dst, last));
            }
            ready!(self.poll_copy(cx, src, dst, progressed))?;
            if self.eof {
                return Poll::Ready(self.end(dst, last));
            }
            // Bulk, and the copy buffer is written out: splice from here on.
            self.bulk = false;
            match Pipe::take() {
                Ok(pipe) => {
                    self.pipe = Some(pipe);
                    self.splicing = true;
                }
                Err(e) => {
                    // Out of descriptors: keep copying, and stop asking for a pipe.
                    tracing::debug!(error = %e, "pipe for splice; relaying through user space");
                    self.may_splice = false;
                }
            }
        }
    }

    /// Copy mode until EOF (`Ready` with `eof` set) or until a read fills the buffer and
    /// its bytes are written out (`Ready` with `bulk` set).
    ///
    /// A read lands in a stack buffer and is written straight on; only what `dst` does not
    /// take at once is kept, on the heap. The usual short exchange thus costs no
    /// allocation and no zeroing, and an idle or drained direction holds no memory.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut TcpStream,
        dst: &mut TcpStream,
        progressed: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            while self.pos < self.buf.len() {
                let n = ready!(Pin::new(&mut *dst).poll_write(cx, &self.buf[self.pos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.bytes += n as u64;
                *progressed = true;
            }
            if !self.buf.is_empty() {
                (self.buf, self.pos) = (Vec::new(), 0);
            }
            if self.eof || self.bulk {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = self.err.take() {
                return Poll::Ready(Err(e));
            }
            let mut raw = [MaybeUninit::<u8>::uninit(); COPY_BUF];
            let mut rb = ReadBuf::uninit(&mut raw);
            // tokio's read: a short read clears the readiness (the socket is drained under
            // edge-triggered epoll), so no extra read only to learn `EAGAIN`.
            ready!(Pin::new(&mut *src).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                self.eof = true;
                continue;
            }
            *progressed = true;
            let fin = self.read_eof_behind(cx, src, &mut rb);
            let data = rb.filled();
            self.bulk = self.may_splice && data.len() == COPY_BUF;
            let written = if fin {
                // What `dst` does not take now is written the plain way below.
                match send_before_fin(dst, data) {
                    Ok(n) => n,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            } else {
                match Pin::new(&mut *dst).poll_write(cx, data) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => 0,
                }
            };
            self.bytes += written as u64;
            if let Some(rest) = data.get(written..).filter(|r| !r.is_empty()) {
                self.buf.extend_from_slice(rest);
            }
        }
    }

    /// After a short read: when `src` has reported its EOF as well (a server that answers
    /// and closes: the answer and the FIN arrived together), reads the EOF now, so that the
    /// caller can hand the answer and the FIN to `dst` as one segment. Costs no system
    /// call that the relay would not make anyway: the EOF read is only tried when the
    /// poller has already said the socket is closed or readable again. Returns whether the
    /// EOF was read (`self.eof` is set then).
    fn read_eof_behind(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut TcpStream,
        rb: &mut ReadBuf<'_>,
    ) -> bool {
        if rb.remaining() == 0 || src.poll_read_ready(cx).is_pending() {
            return false;
        }
        let before = rb.filled().len();
        match Pin::new(&mut *src).poll_read(cx, rb) {
            Poll::Ready(Ok(())) if rb.filled().len() == before => {
                self.eof = true;
                true
            }
            // More bytes (they go with the first ones), or nothing after all.
            Poll::Ready(Ok(())) | Poll::Pending => false,
            // Reported after the bytes already read are passed on, as a plain read would.
            Poll::Ready(Err(e)) => {
                self.err = Some(e);
                false
            }
        }
    }

    /// The direction is over: give the pipe back and pass the EOF on as a write shutdown
    /// (half-close: the peer of `dst` sees EOF, the other direction goes on), unless the
    /// other direction is over too and the close will do it.
    fn end(&mut self, dst: &TcpStream, last: bool) -> io::Result<()> {
        self.release();
        if last {
            return Ok(());
        }
        match socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        }
    }

    /// Drains the pipe completely before splicing in again. That keeps `EAGAIN`
    /// unambiguous: with data in the pipe a socket → pipe splice can fail because the pipe
    /// is full (its slots may hold far less than its byte size), and `try_io` would then
    /// clear the socket's readiness wrongly and the direction would stall. With an empty
    /// pipe, `EAGAIN` can only mean the socket has nothing.
    fn poll_splice(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        progressed: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            while self.in_pipe > 0 {
                let Some(pipe) = &self.pipe else {
                    // Bytes are only counted in a pipe we hold; never reached.
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                };
                ready!(dst.poll_write_ready(cx))?;
                let res = dst.try_io(Interest::WRITABLE, || {
                    splice(pipe.read.as_fd(), dst.as_fd(), self.in_pipe)
                });
                match res {
                    // The pipe holds data, so 0 cannot be EOF; refuse to spin on it.
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        self.in_pipe = self.in_pipe.saturating_sub(n);
                        self.bytes += n as u64;
                        *progressed = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            if src.poll_read_ready(cx)?.is_pending() {
                // Nothing to move: an idle tunnel holds no pipe.
                self.release();
                return Poll::Pending;
            }
            // Out of descriptors when a bulk direction comes back from idle ends this relay
            // with the error; only the switch to splice falls back to copying.
            let pipe = match self.pipe.take() {
                Some(pipe) => pipe,
                None => Pipe::take()?,
            };
            let res = src.try_io(Interest::READABLE, || {
                splice(src.as_fd(), pipe.write.as_fd(), pipe.cap)
            });
            self.pipe = Some(pipe);
            match res {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.in_pipe = n;
                    *progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Gives the pipe back to the pool if it is empty (bytes left in it die with it).
    fn release(&mut self) {
        if self.in_pipe == 0
            && let Some(pipe) = self.pipe.take()
        {
            pipe.give_back();
        }
    }
}

/// Writes `data` to `dst` with `MSG_MORE` ([`crate::more`]), as far as `dst` takes it
/// without waiting (`Ok(0)` when it takes nothing now). The caller shuts down `dst`'s write
/// side (or closes it) right after, without waiting either.
fn send_before_fin(dst: &TcpStream, data: &[u8]) -> io::Result<usize> {
    match crate::more::send_more(dst, &[io::IoSlice::new(data)]) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

impl Drop for Half {
    fn drop(&mut self) {
        self.release();
    }
}
