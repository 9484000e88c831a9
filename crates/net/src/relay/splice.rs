//! The `splice(2)` relay for TCP ↔ TCP: per direction, socket → pipe → socket, so payload
//! pages move inside the kernel and never cross into user space (HAProxy's and Cloudflare's
//! fast path for bulk tunnels).
//!
//! Readiness comes from tokio (`poll_read_ready`/`poll_write_ready` + `try_io`), so this
//! is ordinary non-blocking I/O on the runtime, not a blocking thread per tunnel.

use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::pipe::{Pipe, splice};
use super::{IdleTimer, Relayed, finish, relay_detailed};

/// [`super::relay`] for two TCP sockets, moving bytes with `splice(2)` through one pipe per
/// direction. Same contract: half-close, rolling `idle` over both directions.
///
/// If the pipes cannot be created (out of descriptors), falls back to the generic copy.
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
pub async fn relay_tcp_detailed(
    a: TcpStream,
    b: TcpStream,
    idle: Duration,
) -> (Relayed, Option<io::Error>) {
    let (mut ab, mut ba) = match (SpliceHalf::new(), SpliceHalf::new()) {
        (Ok(ab), Ok(ba)) => (ab, ba),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(error = %e, "pipe for splice; relaying through user space");
            return relay_detailed(a, b, idle).await;
        }
    };
    let mut timer = IdleTimer::new(idle);
    let outcome = std::future::poll_fn(|cx| {
        let mut progressed = false;
        for (half, src, dst) in [(&mut ab, &a, &b), (&mut ba, &b, &a)] {
            if half.done {
                continue;
            }
            match half.poll_splice(cx, src, dst, &mut progressed) {
                Poll::Ready(Ok(())) => half.done = true,
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

/// One direction: `src` → pipe → `dst`.
struct SpliceHalf {
    /// Held while bytes are in flight; returned to the pool when `src` runs dry.
    pipe: Option<Pipe>,
    /// Bytes in the pipe not yet spliced out.
    in_pipe: usize,
    eof: bool,
    done: bool,
    bytes: u64,
}

impl SpliceHalf {
    /// Starts with a pipe, so a relay that cannot get one falls back before any byte.
    fn new() -> io::Result<Self> {
        Ok(Self {
            pipe: Some(Pipe::take()?),
            in_pipe: 0,
            eof: false,
            done: false,
            bytes: 0,
        })
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
                self.release();
                // Half-close: the peer of `dst` sees EOF, the other direction goes on.
                return match socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write) {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
                    _ => Poll::Ready(Ok(())),
                };
            }
            if src.poll_read_ready(cx)?.is_pending() {
                // Nothing to move: an idle tunnel holds no pipe.
                self.release();
                return Poll::Pending;
            }
            // Out of descriptors mid-relay ends this relay with the error; only the first
            // pipes (taken before any byte) can fall back to the generic copy.
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

impl Drop for SpliceHalf {
    fn drop(&mut self) {
        self.release();
    }
}
