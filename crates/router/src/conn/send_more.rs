//! The client socket's one extra: a write held back for the FIN behind it.

use std::io;

/// A client socket that can hold a write back for the FIN behind it.
///
/// A connection's last response (`Connection: close`, HTTP/1.0) is followed at once by
/// hyper's shutdown. Written with `MSG_MORE`, the kernel keeps its tail until the shutdown
/// and sends it with the FIN in one segment: one segment and one ACK fewer per connection,
/// and the client woken once, as the egress relay does for an answer and its close. Only
/// for requests without a body, so hyper has nothing left to read before it shuts down.
pub(crate) trait SendMore {
    /// Writes `bufs` with `MSG_MORE` as far as the socket takes them now (`WouldBlock`
    /// when it takes nothing), or `None` when this socket cannot (TLS: the record layer
    /// writes for itself).
    fn send_more(&self, bufs: &[io::IoSlice<'_>]) -> Option<io::Result<usize>>;
}

impl SendMore for tokio::net::TcpStream {
    fn send_more(&self, bufs: &[io::IoSlice<'_>]) -> Option<io::Result<usize>> {
        Some(spaced_net::send_more(self, bufs))
    }
}

impl<T> SendMore for tokio_rustls::server::TlsStream<T> {
    fn send_more(&self, _: &[io::IoSlice<'_>]) -> Option<io::Result<usize>> {
        None
    }
}

/// The fast path's hand-over to hyper: the socket with the bytes already read put back.
impl<I: SendMore> SendMore for spaced_net::Rewind<I> {
    fn send_more(&self, bufs: &[io::IoSlice<'_>]) -> Option<io::Result<usize>> {
        self.get_ref().send_more(bufs)
    }
}
