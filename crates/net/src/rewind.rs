//! A stream with bytes already read from it put back in front.
//!
//! A server that reads a little to decide how to serve a connection (the router's fast
//! path, the egress proxy's first request head) hands the rest to hyper, which must see
//! those bytes first. Writes go straight to the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, read after `pre`.
#[derive(Debug)]
pub struct Rewind<I> {
    pre: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    /// Reads yield `pre` first, then `inner`'s bytes.
    pub fn new(pre: Bytes, inner: I) -> Self {
        Self { pre, inner }
    }

    /// The stream behind (for what only the socket can do, such as `MSG_MORE`).
    pub fn get_ref(&self) -> &I {
        &self.inner
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pre.has_remaining() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The put-back bytes come first, even to a reader with a small buffer, then the
    /// stream's; writes reach the peer unchanged.
    #[tokio::test]
    async fn reads_the_prefix_first_and_writes_through() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut s = Rewind::new(Bytes::from_static(b"GET / HT"), near);
        far.write_all(b"TP/1.1\r\n").await.unwrap();
        let mut small = [0u8; 5];
        s.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"GET /");
        let mut rest = [0u8; 11];
        s.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b" HTTP/1.1\r\n");
        s.write_all(b"ok").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ok");
    }
}
