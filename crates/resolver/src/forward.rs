//! Forwarding names outside the zone to `resolver.upstreams`: over UDP from a fresh socket
//! with a fresh random id (so an off-path attacker must guess both, RFC 5452), again over TCP
//! when the answer comes back truncated; the answer is checked, given the client's id back,
//! and relayed.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::answer::Forward;
use crate::metrics::Metrics;
use crate::wire::{self, HEADER, Rcode};

/// Why one upstream gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No answer within the deadline.
    #[error("upstream {upstream} timed out")]
    Timeout {
        /// The upstream.
        upstream: SocketAddr,
    },
    /// Socket trouble (refused, unreachable, reset).
    #[error("upstream {upstream}")]
    Io {
        /// The upstream.
        upstream: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// It answered something that is not an answer to our question.
    #[error("upstream {upstream} sent a malformed or mismatched answer")]
    BadAnswer {
        /// The upstream.
        upstream: SocketAddr,
    },
}

impl ForwardError {
    /// The rcode the client gets: always SERVFAIL (RFC 8914's "network error" family).
    pub fn rcode(&self) -> Rcode {
        Rcode::ServFail
    }

    /// Whether the next upstream may do better (every case: each is independent).
    pub fn try_next(&self) -> bool {
        true
    }
}

/// Relays `query` (whose question ends at `fwd.question_end`) to the upstreams in turn until
/// one answers; returns the answer carrying the client's id.
pub(crate) async fn forward(
    upstreams: &[SocketAddr],
    query: &[u8],
    fwd: Forward,
    timeout: Duration,
    metrics: &Metrics,
) -> Result<Vec<u8>, ForwardError> {
    let mut last = None;
    // Three upstreams at most: a client gives up long before more would be tried.
    for &upstream in upstreams.iter().take(3) {
        let started = Instant::now();
        match tokio::time::timeout(timeout, exchange(upstream, query, fwd)).await {
            Ok(Ok(mut answer)) => {
                metrics
                    .upstream_latency
                    .observe_us(started.elapsed().as_micros() as u64);
                answer[..2].copy_from_slice(&fwd.id.to_be_bytes());
                return Ok(answer);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(ForwardError::Timeout { upstream }),
        }
    }
    Err(last.unwrap_or(ForwardError::Timeout {
        upstream: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    }))
}

/// One upstream: UDP, then TCP if the UDP answer is truncated.
async fn exchange(
    upstream: SocketAddr,
    query: &[u8],
    fwd: Forward,
) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let mut msg = query.to_vec();
    let id = fastrand::u16(..);
    msg[..2].copy_from_slice(&id.to_be_bytes());
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(upstream).await.map_err(io)?;
    sock.send(&msg).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    let answer = loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        // A connected socket only hears the upstream; a stray or stale datagram with the
        // wrong id or question is ignored and we keep waiting (until the deadline).
        if matches(&msg, &buf[..n], fwd.question_end) {
            break &buf[..n];
        }
    };
    if answer[2] & 0x02 == 0 {
        return checked(upstream, answer.to_vec());
    }
    match over_tcp(upstream, &msg, fwd).await {
        Ok(full) => Ok(full),
        // The truncated answer still tells the client to try TCP: better than SERVFAIL.
        Err(e) => {
            tracing::debug!(error = %e, "resolver forward: tcp retry failed");
            checked(upstream, answer.to_vec())
        }
    }
}

/// The same query over TCP, for an answer that did not fit UDP.
async fn over_tcp(upstream: SocketAddr, msg: &[u8], fwd: Forward) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let len = u16::try_from(msg.len()).map_err(|_| ForwardError::BadAnswer { upstream })?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await.map_err(io)?;
    if !matches(msg, &answer, fwd.question_end) {
        return Err(ForwardError::BadAnswer { upstream });
    }
    checked(upstream, answer)
}

/// A response to our query: QR set, our id, the same question (case aside: some servers
/// normalise it).
fn matches(query: &[u8], answer: &[u8], question_end: usize) -> bool {
    answer.len() >= question_end
        && answer[..2] == query[..2]
        && answer[2] & 0x80 != 0
        && answer[4..6] == [0, 1]
        && answer[HEADER..question_end].eq_ignore_ascii_case(&query[HEADER..question_end])
}

/// Relays only what decodes as a DNS message: clients are not fed garbage from upstream.
fn checked(upstream: SocketAddr, answer: Vec<u8>) -> Result<Vec<u8>, ForwardError> {
    match Message::from_vec(&answer) {
        Ok(_) => Ok(answer),
        Err(_) => Err(ForwardError::BadAnswer { upstream }),
    }
}

/// Fits a relayed answer into the client's UDP size: too big, and the client gets the
/// header and question with TC set (it will ask again over TCP).
pub(crate) fn fit_udp(answer: &mut Vec<u8>, fwd: Forward) -> bool {
    if answer.len() <= fwd.udp_limit {
        return false;
    }
    answer.truncate(fwd.question_end);
    wire::set_tc(answer);
    for section in 1..=3 {
        wire::set_count(answer, section, 0);
    }
    if fwd.edns {
        wire::put_opt(answer, Rcode::NoError);
        wire::set_count(answer, 3, 1);
    }
    true
}

/// A SERVFAIL for a query that could not be forwarded.
pub(crate) fn servfail(query: &[u8], fwd: Forward, out: &mut Vec<u8>) {
    out.clear();
    let flags = u16::from_be_bytes([query[2], query[3]]);
    let flags = wire::response_flags(flags, false, true, Rcode::ServFail);
    wire::put_header(out, fwd.id, flags, [1, 0, 0, u16::from(fwd.edns)]);
    out.extend_from_slice(&query[HEADER..fwd.question_end]);
    if fwd.edns {
        wire::put_opt(out, Rcode::ServFail);
    }
}
