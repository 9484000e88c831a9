//! One worker: connection after connection until the plan's end, each one connect, TLS
//! 1.3 handshake, one `Connection: close` request, read to EOF, close. Every step is
//! bounded by the step timeout; a failure is counted and the worker goes on.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::Plan;
use crate::tally::Tally;

/// The step a connection failed at, and why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake")]
    Handshake(#[source] io::Error),
    #[error("write the request")]
    Write(#[source] io::Error),
    #[error("read the response")]
    Read(#[source] io::Error),
    #[error("{step}: no answer within the step timeout")]
    Timeout { step: &'static str },
    #[error("response is not `HTTP/1.1 200`: {head:?}")]
    Status { head: String },
}

/// A worker's pause after a failed connection.
const ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// The bytes a response must start with.
const OK: &[u8] = b"HTTP/1.1 200";

/// Runs connections back to back until `plan.until`; `index` picks the source address.
pub(crate) async fn worker(plan: Arc<Plan>, index: usize) -> Tally {
    let mut tally = Tally::default();
    // One buffer per worker for every response: the read side allocates nothing per
    // connection (the TLS session does; that is the handshake being measured).
    let mut buf = vec![0u8; 16 * 1024];
    let source = if plan.sources.is_empty() {
        None
    } else {
        plan.sources.get(index % plan.sources.len()).copied()
    };
    loop {
        let started = Instant::now();
        if started >= plan.until {
            return tally;
        }
        let result = one(&plan, source, &mut buf).await;
        let done = Instant::now();
        if done < plan.measure_from {
            continue;
        }
        if done > plan.until {
            // Started inside the window, finished after it: its CPU is not in the
            // window's clock readings, so it is not in the rate either.
            tally.tail += 1;
            continue;
        }
        match result {
            Ok(resumed) => tally.record(done - started, resumed),
            Err(e) => {
                tally.note_error(done, e.to_string_chain());
                // A server that refuses at once would otherwise be hammered in a hot
                // loop (and the ephemeral ports with it); the count, not the error
                // rate, is what matters.
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// One connection; `Ok(true)` when its handshake was a resumption.
async fn one(plan: &Plan, source: Option<IpAddr>, buf: &mut [u8]) -> Result<bool, ConnError> {
    let t = plan.step_timeout;
    let tcp = timeout(t, connect(plan.connect, source))
        .await
        .map_err(|_| ConnError::Timeout { step: "connect" })?
        .map_err(|source| ConnError::Connect {
            addr: plan.connect,
            source,
        })?;
    // The request is one small write after the handshake: no Nagle wait behind the
    // client's Finished.
    tcp.set_nodelay(true).map_err(|source| ConnError::Connect {
        addr: plan.connect,
        source,
    })?;
    let mut tls = timeout(t, plan.connector.connect(plan.sni.clone(), tcp))
        .await
        .map_err(|_| ConnError::Timeout { step: "handshake" })?
        .map_err(ConnError::Handshake)?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    timeout(t, tls.write_all(&plan.request))
        .await
        .map_err(|_| ConnError::Timeout { step: "write" })?
        .map_err(ConnError::Write)?;
    timeout(t, read_to_eof(&mut tls, buf))
        .await
        .map_err(|_| ConnError::Timeout {
            step: "read to EOF",
        })??;
    Ok(resumed)
}

async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

/// Reads the response to its end, checking its status line. The server closes after a
/// `Connection: close` response; one that omits TLS's close_notify (a bare FIN) still
/// answered, so that counts once the status was seen.
async fn read_to_eof<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<(), ConnError> {
    let mut head = [0u8; OK.len()];
    let mut have = 0;
    loop {
        let n = match stream.read(buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && have == OK.len() => 0,
            Err(e) => return Err(ConnError::Read(e)),
        };
        if have < OK.len() {
            let take = n.min(OK.len() - have);
            head[have..have + take].copy_from_slice(&buf[..take]);
            have += take;
            if have == OK.len() && head != *OK {
                return Err(ConnError::Status {
                    head: String::from_utf8_lossy(&head).into_owned(),
                });
            }
        }
        if n == 0 {
            if have < OK.len() {
                return Err(ConnError::Status {
                    head: String::from_utf8_lossy(&head[..have]).into_owned(),
                });
            }
            return Ok(());
        }
    }
}

/// `error: cause: cause`, the whole chain on one line.
trait ChainString {
    fn to_string_chain(&self) -> String;
}

impl<E: std::error::Error> ChainString for E {
    fn to_string_chain(&self) -> String {
        let mut s = self.to_string();
        let mut next = self.source();
        while let Some(e) = next {
            s.push_str(": ");
            s.push_str(&e.to_string());
            next = e.source();
        }
        s
    }
}
