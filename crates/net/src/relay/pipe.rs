//! Pipes for `splice(2)` and a small process-wide pool of them.
//!
//! A relay holds a pipe only while bytes are in flight: an idle tunnel gives its pipe back,
//! so ten thousand idle CONNECT tunnels do not pin forty thousand descriptors, nor count
//! megabytes each against the user's pipe allowance (`fs.pipe-user-pages-soft`; past it the
//! kernel shrinks every new pipe of the user to two pages).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// A default pipe's capacity: 16 pages.
const DEFAULT_PIPE: usize = 64 * 1024;
/// The pipe size asked for: fewer, larger splices per GiB (the default `fs.pipe-max-size`,
/// so unprivileged users may ask for it).
const PIPE_SIZE: usize = 1024 * 1024;
/// Empty pipes kept for reuse; beyond this they are closed.
const POOL_MAX: usize = 64;

/// Empty pipes, ready for the next busy relay.
static POOL: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// A non-blocking, close-on-exec pipe; both ends close on drop.
#[derive(Debug)]
pub(super) struct Pipe {
    pub(super) read: OwnedFd,
    pub(super) write: OwnedFd,
    /// Bytes the pipe holds at most (what one socket → pipe splice asks for).
    pub(super) cap: usize,
}

impl Pipe {
    /// An empty pipe from the pool, or a new one.
    pub(super) fn take() -> io::Result<Self> {
        // A poisoned lock only means another thread panicked while pushing or popping a
        // Vec; the Vec is still sound, so keep using it.
        let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(pipe) => Ok(pipe),
            None => Self::new(),
        }
    }

    /// Returns an EMPTY pipe to the pool (the caller guarantees nothing is left in it, or
    /// the next user would relay stale bytes).
    pub(super) fn give_back(self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(self);
        }
    }

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
        let mut pipe = Self {
            read,
            write,
            cap: DEFAULT_PIPE,
        };
        pipe.cap = pipe.grow(PIPE_SIZE);
        Ok(pipe)
    }

    /// Asks for a `size`-byte pipe (`F_SETPIPE_SZ`); returns the capacity in effect. A
    /// refusal (an unprivileged user over `fs.pipe-user-pages-soft`) keeps the default.
    #[allow(unsafe_code)]
    fn grow(&self, size: usize) -> usize {
        let want = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl on a descriptor we own, with an integer argument; no memory passed.
        let rc = unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
        usize::try_from(rc)
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_PIPE)
    }
}

/// One non-blocking `splice(2)` of up to `len` bytes from `from` to `to` (one of them a
/// pipe). Returns the bytes moved; 0 means EOF on `from`.
#[allow(unsafe_code)]
pub(super) fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
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
    use std::os::fd::AsFd;

    #[test]
    fn pipe_and_splice_move_bytes() {
        let a = Pipe::new().unwrap();
        let b = Pipe::new().unwrap();
        assert!(a.cap >= DEFAULT_PIPE);
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

    #[test]
    fn pool_reuses_and_is_bounded() {
        let pipes: Vec<Pipe> = (0..POOL_MAX + 8).map(|_| Pipe::take().unwrap()).collect();
        for p in pipes {
            p.give_back();
        }
        assert!(POOL.lock().unwrap().len() <= POOL_MAX);
        let again = Pipe::take().unwrap();
        again.give_back();
    }
}
