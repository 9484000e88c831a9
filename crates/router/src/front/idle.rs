//! The fast path's buffers while a keep-alive connection waits for its next request.
//!
//! Why: an idle connection held an 8 KiB read buffer and an 8 KiB write buffer for as long
//! as the client kept it open (`keepalive`, minutes), most of the 26 KB per idle connection
//! measured against nginx's 0.5 (benches/README.md, "Memory per idle connection"). nginx
//! frees a keep-alive connection's header buffer when a read finds nothing and allocates it
//! again on the next readable event; so does this, with one difference, for the hot path:
//!
//! The release happens at the second read of an empty buffer that finds nothing, not the
//! first. Under load, a client's next request comes a round trip after the response: the
//! first read finds nothing every time, and freeing and allocating two 8 KiB buffers per
//! request cost 14 % more instructions per request (mimalloc's generic path). The second
//! read comes only when the task is woken with no bytes to read, which for an idle
//! connection is the connection timer ([`crate::conn::timer::drive`], at least every
//! `client_header`): so an idle connection gives its buffers back within that, and a busy
//! one never does. Never between pipelined requests (their bytes are in the buffer).
//!
//! The read that ends the wait goes to a buffer on the stack, so a connection that never
//! sends again (nor a new one that sends nothing) never allocates; only what it brought is
//! copied into the new buffers.
//!
//! At the release point the fast path also gives up the connection itself when nothing is
//! in flight ([`crate::conn::park`]): its whole future is dropped while the client idles.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

/// The read buffer's size, kept between requests while the client keeps sending.
pub(crate) const READ_BUF: usize = 8 * 1024;
/// A read is tried only with at least this much room.
pub(super) const MIN_READ: usize = 1024;

/// The stack buffer of the read that ends an idle wait: a typical request head fits, and
/// a longer one continues into the heap buffer allocated for it.
const IDLE_READ: usize = 4 * 1024;

/// Reads into `rbuf` as [`tokio_util::io::poll_read_buf`] does, but with the idle
/// connection's buffers released: when a read finds nothing and `rbuf` holds no partial
/// head for the second time in one wait (`waited` notes the first), both buffers are freed;
/// the read that ends the wait allocates them again.
pub(super) fn poll_fill<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
    waited: &mut bool,
) -> Poll<io::Result<usize>> {
    if rbuf.capacity() == 0 {
        return poll_wake(io, cx, rbuf, wbuf);
    }
    if rbuf.capacity() - rbuf.len() < MIN_READ {
        rbuf.reserve(READ_BUF);
    }
    let res = tokio_util::io::poll_read_buf(Pin::new(io), cx, rbuf);
    if res.is_pending() && rbuf.is_empty() {
        if *waited {
            release(rbuf, wbuf);
        }
        *waited = true;
    }
    res
}

/// Frees both buffers (the write buffer is empty between requests: every response is
/// flushed before the next read).
fn release(rbuf: &mut BytesMut, wbuf: &mut Vec<u8>) {
    *rbuf = BytesMut::new();
    if wbuf.is_empty() {
        *wbuf = Vec::new();
    }
}

/// The read that ends an idle wait: into the stack, then, when bytes came, into buffers
/// allocated now at their working size (so the request does not grow them step by step).
fn poll_wake<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
    wbuf: &mut Vec<u8>,
) -> Poll<io::Result<usize>> {
    let fresh = ready!(poll_wake_read(io, cx))?;
    let n = fresh.len();
    if n > 0 {
        *rbuf = fresh;
        if wbuf.capacity() == 0 {
            *wbuf = Vec::with_capacity(READ_BUF);
        }
    }
    Poll::Ready(Ok(n))
}

/// The read that ends an idle wait, on the stack: the bytes it got, in a read buffer
/// allocated now at its working size; an empty one (nothing allocated) at end of stream.
/// The parked connection's wait ([`crate::conn::park`]) uses it too, so no buffer is held
/// in that wait either.
pub(crate) fn poll_wake_read<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
) -> Poll<io::Result<BytesMut>> {
    let mut stack = [MaybeUninit::<u8>::uninit(); IDLE_READ];
    let mut buf = ReadBuf::uninit(&mut stack);
    ready!(Pin::new(io).poll_read(cx, &mut buf))?;
    let got = buf.filled();
    if got.is_empty() {
        return Poll::Ready(Ok(BytesMut::new()));
    }
    let mut fresh = BytesMut::with_capacity(READ_BUF);
    fresh.extend_from_slice(got);
    Poll::Ready(Ok(fresh))
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use bytes::Buf;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected pair on loopback: (server side, client side).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (server, client)
    }

    /// One poll of a wait (`waited` as the caller's wait left it).
    fn poll_once(
        io: &mut TcpStream,
        rbuf: &mut BytesMut,
        wbuf: &mut Vec<u8>,
        waited: &mut bool,
    ) -> Poll<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        poll_fill(io, &mut cx, rbuf, wbuf, waited).map(|r| r.unwrap())
    }

    /// A whole wait, as `Front::fill` does it.
    async fn fill(io: &mut TcpStream, rbuf: &mut BytesMut, wbuf: &mut Vec<u8>) -> usize {
        let mut waited = false;
        std::future::poll_fn(|cx| poll_fill(io, cx, rbuf, wbuf, &mut waited))
            .await
            .unwrap()
    }

    /// An idle connection holds no buffer; the next request brings them back at their
    /// working size; a partial head keeps its buffer while the rest is awaited.
    #[tokio::test]
    async fn idle_connection_holds_no_buffer() {
        let (mut server, mut client) = pair().await;
        // A new connection that has sent nothing: nothing is allocated.
        let (mut rbuf, mut wbuf) = (BytesMut::new(), Vec::new());
        assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, &mut false).is_pending());
        assert_eq!((rbuf.capacity(), wbuf.capacity()), (0, 0));

        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let n = fill(&mut server, &mut rbuf, &mut wbuf).await;
        assert_eq!(&rbuf[..], &b"GET / HTTP/1.1\r\nHo"[..n]);
        assert!(rbuf.capacity() >= READ_BUF);
        assert_eq!(wbuf.capacity(), READ_BUF);

        // A partial head is waiting for its rest: its buffer stays.
        if n == 18 {
            let waited = &mut false;
            assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, waited).is_pending());
            assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, waited).is_pending());
            assert!(rbuf.capacity() >= READ_BUF);
        }
        client.write_all(b"st: a\r\n\r\n").await.unwrap();
        while !rbuf.ends_with(b"\r\n\r\n") {
            fill(&mut server, &mut rbuf, &mut wbuf).await;
        }
        // The request is consumed and answered (the write buffer used, then flushed).
        rbuf.advance(rbuf.len());
        wbuf.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        wbuf.clear();

        // Waiting for the next request: the first read that finds nothing keeps the
        // buffers (the next request may be a round trip away), a second one in the same
        // wait (the connection timer's wake-up) releases both.
        let waited = &mut false;
        assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, waited).is_pending());
        assert!(rbuf.capacity() >= MIN_READ);
        assert_eq!(wbuf.capacity(), READ_BUF);
        assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, waited).is_pending());
        assert_eq!((rbuf.capacity(), wbuf.capacity()), (0, 0));

        // And come back with the next request.
        client.write_all(b"GET /2 HTTP/1.1\r\n").await.unwrap();
        let n = fill(&mut server, &mut rbuf, &mut wbuf).await;
        assert_eq!(&rbuf[..], &b"GET /2 HTTP/1.1\r\n"[..n]);
        assert!(rbuf.capacity() >= READ_BUF);

        // The client leaves while idle: a plain end of stream, nothing allocated for it.
        rbuf.advance(rbuf.len());
        let waited = &mut false;
        assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, waited).is_pending());
        assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, waited).is_pending());
        drop(client);
        assert_eq!(fill(&mut server, &mut rbuf, &mut wbuf).await, 0);
        assert_eq!(rbuf.capacity(), 0);
    }

    /// Bytes already in the socket (a request sent back to back) are read without a
    /// release: the buffer is kept.
    #[tokio::test]
    async fn back_to_back_request_keeps_the_buffer() {
        let (mut server, mut client) = pair().await;
        let (mut rbuf, mut wbuf) = (BytesMut::with_capacity(READ_BUF), Vec::new());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        // Wait until the bytes are in the socket, so that the read below finds them.
        server.readable().await.unwrap();
        let before = rbuf.as_ptr();
        assert!(poll_once(&mut server, &mut rbuf, &mut wbuf, &mut true).is_ready());
        assert_eq!(rbuf.as_ptr(), before);
    }
}

/// The size of a connection's futures: the requests' box, which a connection holds while
/// it is busy, and the loop around it, which it holds for its whole life, parked or not
/// ([`crate::conn::park`]). A request's state is inline in the box (boxing it, and hyper's
/// connection, saved 4 KB per idle connection but cost 5 % more instructions per request:
/// benches/README.md); parking frees the box instead.
#[cfg(test)]
mod size {
    use std::sync::Arc;

    use spaced_config::Store;
    use tokio::net::{TcpListener, TcpStream};

    use crate::access::Listener;
    use crate::conn::{self, ctx::ConnCtx};
    use crate::shared::Shared;

    /// The bound is the test profile's (unoptimised) size with some room: 5,312 bytes when
    /// written (1,840 with the request's forward, its response write and hyper boxed). A release
    /// build's futures are smaller.
    const MAX_CONN_FUTURE: usize = 6144;
    /// The loop a parked connection holds, in the test profile (its socket, the context,
    /// the keep-alive deadline's timer): it is there for every idle connection. 672 bytes
    /// when written.
    const MAX_PARK_FUTURE: usize = 768;

    #[tokio::test]
    async fn connection_future_stays_small() {
        let p = crate::access::tests::policy(crate::access::tests::BASE);
        let t = p.router.timeouts;
        let store = Arc::new(Store::new(p, "one".into()));
        let shared = Shared::for_tests(store);
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let io = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let ctx = Arc::new(ConnCtx::new(
            shared,
            Listener::External,
            "127.0.0.1".parse().unwrap(),
            http::HeaderValue::from_static("80"),
            None,
            false,
            None,
        ));
        let fut = conn::serve(io, bytes::BytesMut::new(), Arc::clone(&ctx), t);
        let size = size_of_val(&fut);
        drop(fut);
        assert!(
            size <= MAX_CONN_FUTURE,
            "a connection's future is {size} bytes, over {MAX_CONN_FUTURE}: what grew?"
        );
        let io = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let park = conn::park::serve(io, ctx, t);
        let parked = size_of_val(&park);
        println!("requests' future {size} bytes, parking loop {parked}");
        assert!(
            parked <= MAX_PARK_FUTURE,
            "a parked connection's future is {parked} bytes, over {MAX_PARK_FUTURE}: what grew?"
        );
    }
}
