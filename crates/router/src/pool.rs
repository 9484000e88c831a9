//! Connections to one dyno: HTTP/1.1 keep-alive senders, shared by every worker thread,
//! most recently used first, closed once idle for `pool_idle` (or at once when the dyno
//! leaves the policy). A short mutex per dyno guards the idle list; it is held for a
//! push or a pop, never across an await.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::body::ReqBody;
use crate::code::Code;

/// Most idle connections kept per dyno; more are closed when returned.
const MAX_IDLE: usize = 512;

/// A sender to a dyno.
pub(crate) type Sender = SendRequest<ReqBody>;

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

/// The idle connections of one dyno.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    tx: Sender,
    since: Instant,
}

impl Pool {
    /// The most recently returned live connection not idle for longer than `max_idle`.
    pub(crate) fn checkout(&self, now: Instant, max_idle: Duration) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if !c.tx.is_closed() && now.saturating_duration_since(c.since) < max_idle {
                return Some(c.tx);
            }
        }
        None
    }

    /// Returns a connection after a complete exchange.
    pub(crate) fn put(&self, tx: Sender, now: Instant) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle { tx, since: now });
        }
    }

    /// Closes connections idle for `max_idle` or longer (and dead ones).
    pub(crate) fn sweep(&self, now: Instant, max_idle: Duration) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| !c.tx.is_closed() && now.saturating_duration_since(c.since) < max_idle);
    }

    /// Closes every idle connection (the dyno left the policy, or shutdown).
    pub(crate) fn clear(&self) {
        let drained = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        drop(drained);
    }

    /// Idle connections held now.
    pub(crate) fn len(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

/// Opens a new HTTP/1.1 connection to `addr` within `timeout`; the connection's driver runs
/// as its own task and ends when the sender is dropped and the exchange is over.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout { addr }),
        Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(dyno.addr = %addr, error = %e, "dyno connection ended");
        }
    });
    Ok(tx)
}
