//! Byte relays between two connections: a generic bidirectional copy for any async stream
//! ([`relay`]) and one for two TCP sockets ([`relay_tcp`]) that copies short exchanges and
//! moves bulk streams with Linux `splice(2)`, kernel to kernel through a pipe without
//! copying them into user space.
//!
//! Both handle half-close (EOF from one side becomes `shutdown(SHUT_WR)` on the other, and
//! the other direction keeps going), stop after `idle` without a byte moving in either
//! direction, and keep memory bounded ([`RELAY_BUF`] per direction, or a small copy buffer
//! or one pipe per busy direction of a TCP relay).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod idle;
mod outcome;
mod pipe;
mod splice;

pub use idle::IdleTimer;
pub use outcome::Relayed;
pub use splice::{relay_tcp, relay_tcp_detailed};

use outcome::finish;

/// Buffer per direction of the generic relay. 32 KiB holds two full TLS records, enough
/// for throughput, while a host with tens of thousands of idle tunnels (websockets, long
/// CONNECTs) keeps its footprint in the low gigabytes at worst.
pub const RELAY_BUF: usize = 32 * 1024;

/// Copies `a` → `b` and `b` → `a` until both directions have ended or nothing has moved in
/// either direction for `idle` (a zero `idle` ends the relay at its first lull).
///
/// When one side reaches EOF, the other side's write half is shut down (flushed first) and
/// the opposite direction goes on: a client may send its request, half-close, and still
/// read the whole answer. Pass `&mut stream` to keep ownership of a stream.
///
/// Dropping the future (e.g. on shutdown) drops both streams; bytes in its buffers are
/// lost, which is what closing a tunnel means anyway.
///
/// # Errors
/// The first read, write or flush error of either direction ends both; the byte counts are
/// then lost — use [`relay_detailed`] when they matter (tunnel logs).
pub async fn relay<A, B>(a: A, b: B, idle: Duration) -> io::Result<Relayed>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match relay_detailed(a, b, idle).await {
        (_, Some(e)) => Err(e),
        (relayed, None) => Ok(relayed),
    }
}

/// [`relay`], returning the bytes moved even when an error (a reset, say) ended it.
pub async fn relay_detailed<A, B>(
    mut a: A,
    mut b: B,
    idle: Duration,
) -> (Relayed, Option<io::Error>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut ab = CopyHalf::new();
    let mut ba = CopyHalf::new();
    let mut timer = IdleTimer::new(idle);
    let outcome = std::future::poll_fn(|cx| {
        let mut progressed = false;
        if !ab.done {
            match ab.poll_copy(cx, Pin::new(&mut a), Pin::new(&mut b), &mut progressed) {
                Poll::Ready(Ok(())) => ab.done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if !ba.done {
            match ba.poll_copy(cx, Pin::new(&mut b), Pin::new(&mut a), &mut progressed) {
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

/// One direction of the generic relay.
struct CopyHalf {
    buf: Box<[u8]>,
    /// `buf[pos..cap]` is read but not yet written.
    pos: usize,
    cap: usize,
    /// The reader returned EOF.
    eof: bool,
    /// Bytes written since the last flush.
    need_flush: bool,
    /// EOF was relayed as a write shutdown: this direction is over.
    done: bool,
    bytes: u64,
}

impl CopyHalf {
    fn new() -> Self {
        Self {
            buf: vec![0; RELAY_BUF].into_boxed_slice(),
            pos: 0,
            cap: 0,
            eof: false,
            need_flush: false,
            done: false,
            bytes: 0,
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
        progressed: &mut bool,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.pos == self.cap && !self.eof {
                let mut rb = ReadBuf::new(&mut self.buf);
                match r.as_mut().poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            self.eof = true;
                        } else {
                            (self.pos, self.cap) = (0, n);
                            *progressed = true;
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Nothing more to read for now: push out what buffered writers
                        // (TLS, hyper's upgraded IO) hold, or it would sit there.
                        if self.need_flush {
                            ready!(w.as_mut().poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.cap {
                let n = ready!(w.as_mut().poll_write(cx, &self.buf[self.pos..self.cap]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.bytes += n as u64;
                self.need_flush = true;
                *progressed = true;
            }
            if self.eof {
                // poll_shutdown flushes first. A peer that already went away makes the
                // shutdown fail with ENOTCONN; the direction is over either way.
                return match ready!(w.as_mut().poll_shutdown(cx)) {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
                    _ => Poll::Ready(Ok(())),
                };
            }
        }
    }
}
