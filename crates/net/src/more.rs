//! Writes that wait for the FIN behind them.
//!
//! When a write is the last thing sent before a shutdown (an answer and then the close),
//! `MSG_MORE` has the kernel hold its tail until the shutdown, which sends it with the FIN
//! in one segment: one segment and one ACK fewer, and the reader woken once instead of
//! twice. The caller must shut the socket down (or close it) right after, without waiting
//! on anything: until then the held bytes are not sent.

use std::io;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Writes `bufs` to `stream` with `MSG_MORE`, as far as the socket takes them without
/// waiting; `WouldBlock` (readiness cleared, so a later poll waits for it) when it takes
/// nothing now.
///
/// # Errors
/// The socket's error, or `WouldBlock`.
pub fn send_more(stream: &TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    stream.try_io(Interest::WRITABLE, || {
        socket2::SockRef::from(stream)
            .send_vectored_with_flags(bufs, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    })
}
