//! Opening a TCP connection to a dyno, for both dyno paths (hyper's client in `pool`, the
//! raw connections of `dyno_h1`), and why it failed ([`ConnectError`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::code::Code;

/// Why no connection to a dyno could be had. Either way nothing was sent, so the request
/// may be retried on another dyno.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// No answer within `timeouts.connect`.
    #[error("connect to dyno {addr} timed out")]
    Timeout {
        /// The dyno.
        addr: SocketAddr,
    },
    /// Refused, reset or unreachable.
    #[error("connect to dyno {addr}")]
    Io {
        /// The dyno.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The HTTP/1 handshake failed (the socket died at once).
    #[error("http handshake with dyno {addr}")]
    Handshake {
        /// The dyno.
        addr: SocketAddr,
        /// What hyper said.
        #[source]
        source: hyper::Error,
    },
}

impl ConnectError {
    /// The code logged when this was the last failure: H19 for a timeout, H21 otherwise.
    pub(crate) fn code(&self) -> Code {
        match self {
            Self::Timeout { .. } => Code::H19,
            Self::Io { .. } | Self::Handshake { .. } => Code::H21,
        }
    }
}

/// A TCP connection to `addr` within `timeout`, with `TCP_NODELAY` (a request head or a
/// small body must not wait for an ACK).
pub(crate) async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout { addr }),
        Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
