//! The `splice(2)` relay for TCP ↔ TCP: per direction, socket → pipe → socket, so payload
//! pages move inside the kernel and never cross into user space (HAProxy's and Cloudflare's
//! fast path for bulk tunnels).
//!
//! Readiness comes from tokio (`poll_read_ready`/`poll_write_ready` + `try_io`), so this
//! is ordinary non-blocking I/O on the runtime, not a blocking thread per tunnel.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{IdleTimer, Relayed, finish, relay_detailed};

/// Bytes asked of one socket → pipe splice: a default pipe's 16 pages.
const CHUNK: usize = 64 * 1024;

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
    pipe: Pipe,
    /// Bytes in the pipe not yet spliced out.
    in_pipe: usize,
    eof: bool,
    done: bool,
    bytes: u64,
}

impl SpliceHalf {
    fn new() -> io::Result<Self> {
        Ok(Self {
            pipe: Pipe::new()?,
            in_pipe: 0,
            eof: false,
            done: false,
            bytes: 0,
        })
    }

    /// Drains the pipe completely before splicing in again. That keeps `EAGAIN`
    /// unambiguous: with data in the pipe a socket → pipe splice can fail because the pipe
    /// is full (its 16 slots may hold far less than 64 KiB), and `try_io` would then clear
    /// the socket's readiness wrongly and the direction would stall. With an empty pipe,
    /// `EAGAIN` can only mean the socket has nothing.
    fn poll_splice(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        progressed: &mut bool,
    ) -> Poll<io::Result<()>> {
        loop {
            while self.in_pipe > 0 {
                ready!(dst.poll_write_ready(cx))?;
                let res = dst.try_io(Interest::WRITABLE, || {
                    splice(self.pipe.read.as_fd(), dst.as_fd(), self.in_pipe)
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
                // Half-close: the peer of `dst` sees EOF, the other direction goes on.
                return match socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write) {
                    Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
                    _ => Poll::Ready(Ok(())),
                };
            }
            ready!(src.poll_read_ready(cx))?;
            let res = src.try_io(Interest::READABLE, || {
                splice(src.as_fd(), self.pipe.write.as_fd(), CHUNK)
            });
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
}

/// A non-blocking, close-on-exec pipe; both ends close on drop.
#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    #[allow(unsafe_code)]
    fn new() -> io::Result<Self> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2 requires.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else;
        // each is wrapped exactly once and closed by its OwnedFd.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self { read, write })
    }
}

/// One non-blocking `splice(2)` of up to `len` bytes from `from` to `to` (one of them a
/// pipe). Returns the bytes moved; 0 means EOF on `from`.
#[allow(unsafe_code)]
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are borrowed, hence open for the call; null offsets are
    // allowed (and required for pipes and sockets); no memory of ours is passed.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    // A negative return is the error flag; any other value fits usize.
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn pipe_and_splice_move_bytes() {
        let a = Pipe::new().unwrap();
        let b = Pipe::new().unwrap();
        std::fs::File::from(a.write.try_clone().unwrap())
            .write_all(b"hello")
            .unwrap();
        let n = splice(a.read.as_fd(), b.write.as_fd(), 64).unwrap();
        assert_eq!(n, 5);
        let mut out = [0u8; 8];
        let got = std::fs::File::from(b.read.try_clone().unwrap())
            .read(&mut out)
            .unwrap();
        assert_eq!(&out[..got], b"hello");
        // Empty pipe, non-blocking: EAGAIN rather than a hang.
        let err = splice(a.read.as_fd(), b.write.as_fd(), 64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // Writer closed: EOF is 0.
        drop(a.write);
        assert_eq!(splice(a.read.as_fd(), b.write.as_fd(), 64).unwrap(), 0);
    }
}
