//! The async shell around [`answer`](crate::answer): UDP loops, the TCP accept loop and
//! connection tasks, the zone reloader and the hand-off of forwarded queries.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use spaced_config::{DynoBoard, Store};
use spaced_net::Shutdown;
use spaced_net::udp_batch::{RecvBatch, SendBatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::answer::{Forward, Outcome, Request, Transport, answer};
use crate::forward::{self, forward};
use crate::metrics::Metrics;
use crate::options::Options;
use crate::wire::Rcode;
use crate::zone::{Skipped, Zone};

/// What every loop shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The zone now serving; the reloader swaps a whole new one in, queries `load` it once.
    pub(crate) zone: ArcSwap<Zone>,
    /// Written by the router's health checks, read per query.
    pub(crate) board: Arc<DynoBoard>,
    pub(crate) metrics: Metrics,
    pub(crate) options: Options,
    /// Forwards in flight (UDP and TCP clients); beyond, SERVFAIL at once instead of piling
    /// up sockets and tasks.
    pub(crate) forwards: Arc<Semaphore>,
    /// TCP connections open from inside the space, over every listener.
    pub(crate) tcp_conns: Arc<Semaphore>,
    /// TCP connections open from outside: a small pool of their own, so outsiders (who only
    /// ever get REFUSED) cannot hold the slots the space needs.
    pub(crate) tcp_outsiders: Arc<Semaphore>,
}

/// Largest UDP query read: a query is a few dozen bytes, and EDNS0 clients may pad.
const UDP_RECV: usize = 4096;

/// Recompiles the zone on every policy version and swaps it in whole.
pub(crate) async fn reload(
    store: Arc<Store>,
    mut versions: tokio::sync::watch::Receiver<u64>,
    ctx: Arc<Ctx>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            changed = versions.changed() => if changed.is_err() { return },
        }
        let version = *versions.borrow_and_update();
        let policy = store.load_full();
        let (zone, skipped) = Zone::compile(&policy, version);
        log_skipped(&skipped);
        tracing::info!(
            reload.generation = version,
            names = zone.len(),
            "resolver zone swapped"
        );
        ctx.zone.store(Arc::new(zone));
    }
}

pub(crate) fn log_skipped(skipped: &[Skipped]) {
    for s in skipped {
        match s {
            Skipped::Process { app, process } => tracing::warn!(
                app = %app, process = %process,
                "resolver: process name is not a DNS label; its dynos have no names"
            ),
            Skipped::TooLong { name } => {
                tracing::warn!(name = %name, "resolver: name longer than DNS allows; left out")
            }
        }
    }
}

/// How often a blocked receive wakes up to notice shutdown.
const UDP_POLL: Duration = Duration::from_millis(200);

/// Datagrams taken per receive when that many are queued. dnsperf keeps 100 queries in
/// flight; 32 already divides the syscall count by tens under load, and the buffers
/// (32 × 4 KiB per socket) stay small.
const UDP_BATCH: usize = 32;

/// One UDP loop on its own OS thread (one per socket of the group), blocking in
/// `recvmmsg`. Measured under dnsperf, the async version spent a third of its CPU in
/// context switches: readiness arrives on the runtime's I/O driver, which wakes the loop's
/// task on another worker. A thread blocked in the receive is woken by the kernel directly.
/// Under load, every query already queued is taken by the same receive (up to
/// [`UDP_BATCH`]) and all their answers leave with one `sendmmsg`: the two syscalls, which
/// are nearly all of a query's cost, are paid once per batch; consecutive answers of one
/// size to one client go as a single GSO message (see `SendBatch`), so the kernel's per-
/// datagram output path is paid once per group as well. The receive waits for the
/// first datagram only, so a lone query is answered at once. Forwarded queries, which wait
/// on upstreams, are still handed to the async runtime (`rt`).
pub(crate) fn serve_udp_thread(
    sock: std::net::UdpSocket,
    ctx: Arc<Ctx>,
    shutdown: Shutdown,
    rt: tokio::runtime::Handle,
    seed: usize,
) {
    // Forward tasks are spawned from this thread: they need the runtime's context.
    let _runtime = rt.enter();
    let sock = Arc::new(sock);
    if let Err(e) = sock.set_read_timeout(Some(UDP_POLL)) {
        tracing::warn!(error = %e, "resolver udp: cannot set the receive timeout; shutdown may wait");
    }
    // A full send buffer must not stall the loop for long; the answers are dropped instead,
    // as a congested network would (the clients retry).
    let _ = sock.set_write_timeout(Some(Duration::from_millis(50)));
    let local = sock
        .local_addr()
        .ok()
        .map(|a| spaced_config::canonical(a.ip()))
        .filter(|ip| !ip.is_unspecified());
    let mut rx = RecvBatch::new(UDP_BATCH, UDP_RECV);
    let mut tx = SendBatch::new();
    let mut out = Vec::with_capacity(UDP_RECV);
    let mut rotate = seed;
    while !shutdown.is_cancelled() {
        if let Err(e) = rx.recv(sock.as_fd()) {
            // A timeout is the shutdown poll; anything else is one datagram's trouble (an
            // ICMP error reported late, ENOMEM): skip it.
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
            ) {
                tracing::debug!(error = %e, "resolver udp receive");
            }
            continue;
        }
        // A batch read across a shutdown is still answered (the loop ends after it): during
        // a SIGUSR2 upgrade the new process reads this very socket, and a query taken here
        // is one it never sees, so dropping it would lose an answer.
        {
            // One zone and one view of the health board per batch: a batch is read in
            // microseconds, and a reload landing meanwhile applies to the next one.
            let zone = ctx.zone.load();
            let down = ctx.board.down();
            for dgram in rx.iter() {
                let Some(peer) = dgram.from else {
                    continue; // not an IP sender: impossible on an IP socket
                };
                if zone.blocks(peer.ip()) {
                    ctx.metrics.blocked.inc();
                    continue;
                }
                rotate = rotate.wrapping_add(1);
                let req = Request {
                    query: dgram.data,
                    // `allows` folds a v4-mapped sender before the range check; `peer`
                    // stays as received so the reply goes back the same way.
                    client_in_space: zone.allows(peer.ip()),
                    transport: Transport::Udp,
                    local,
                    down: Some(&down),
                    rotate,
                };
                let outcome = answer(&zone, &req, &mut out);
                if let Outcome::Forward(fwd) = outcome {
                    let upstreams = zone.upstreams();
                    spawn_udp_forward(&ctx, &shutdown, &sock, dgram.data, peer, fwd, upstreams);
                }
                if count(&ctx.metrics, outcome) {
                    tx.push(&out, peer);
                }
            }
        }
        let sent = tx.send(sock.as_fd());
        if let Some(e) = sent.error {
            tracing::debug!(dropped = sent.dropped, error = %e, "resolver udp send");
        }
    }
}

/// Counts an outcome; true when `out` holds a reply to send.
fn count(m: &Metrics, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Reply(r) => {
            m.query(r.qtype, r.rcode);
            if r.truncated {
                m.truncated.inc();
            }
            if r.refused_acl {
                m.refused_acl.inc();
            }
            true
        }
        Outcome::Forward(_) => false,
        Outcome::Drop => {
            m.dropped.inc();
            false
        }
    }
}

fn spawn_udp_forward(
    ctx: &Arc<Ctx>,
    shutdown: &Shutdown,
    sock: &Arc<std::net::UdpSocket>,
    query: &[u8],
    peer: SocketAddr,
    fwd: Forward,
    upstreams: &Arc<[SocketAddr]>,
) {
    let Ok(permit) = ctx.forwards.clone().try_acquire_owned() else {
        let mut out = Vec::new();
        overloaded(&ctx.metrics, query, fwd, &mut out);
        // Best effort (bounded by the socket's write timeout).
        let _ = sock.send_to(&out, peer);
        return;
    };
    let (ctx, sock, query, upstreams) =
        (ctx.clone(), sock.clone(), query.to_vec(), upstreams.clone());
    shutdown.spawn(async move {
        let _permit: OwnedSemaphorePermit = permit;
        let mut out = relay(&ctx, &upstreams, &query, fwd).await;
        if forward::fit_udp(&mut out, fwd) {
            ctx.metrics.truncated.inc();
        }
        // A UDP send does not wait on the peer; the socket's write timeout bounds the rare
        // full-buffer case.
        if let Err(e) = sock.send_to(&out, peer) {
            tracing::debug!(client.addr = %peer, error = %e, "resolver udp send");
        }
    });
}

/// Every forward permit is taken: SERVFAIL at once, into `out`, rather than pile up
/// sockets and tasks (UDP and TCP alike).
fn overloaded(m: &Metrics, query: &[u8], fwd: Forward, out: &mut Vec<u8>) {
    m.forwarded_overload.inc();
    m.query(Some(fwd.qtype), Rcode::ServFail);
    forward::servfail(query, fwd, out);
}

/// Forwards and counts; returns the answer to send (SERVFAIL on failure).
async fn relay(ctx: &Ctx, upstreams: &[SocketAddr], query: &[u8], fwd: Forward) -> Vec<u8> {
    let m = &ctx.metrics;
    match forward(upstreams, query, fwd, ctx.options.upstream_timeout, m).await {
        Ok(answer) => {
            m.forwarded_ok.inc();
            let rcode = Rcode::from_header(u16::from_be_bytes([answer[2], answer[3]]));
            m.query(Some(fwd.qtype), rcode.unwrap_or(Rcode::NoError));
            answer
        }
        Err(e) => {
            tracing::debug!(error = %e, "resolver forward failed");
            m.forwarded_failed.inc();
            m.query(Some(fwd.qtype), e.rcode());
            let mut out = Vec::new();
            forward::servfail(query, fwd, &mut out);
            out
        }
    }
}

/// The TCP accept loop (`spaced_net::serve`, the one every TCP listener uses): a blocked
/// client is closed at accept, before a byte is read; then the connection cap, with its own
/// small pool for outsiders.
pub(crate) async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>, shutdown: Shutdown) {
    let admit = |peer: SocketAddr| {
        if ctx.zone.load().blocks(peer.ip()) {
            ctx.metrics.blocked.inc();
            tracing::debug!(client.addr = %peer, "resolver tcp: blocked client, closed");
            return false;
        }
        true
    };
    let handle = |stream: TcpStream, peer: SocketAddr| {
        let inside = ctx.zone.load().allows(peer.ip());
        let pool = if inside {
            &ctx.tcp_conns
        } else {
            &ctx.tcp_outsiders
        };
        let Ok(permit) = pool.clone().try_acquire_owned() else {
            ctx.metrics.tcp_rejected.inc();
            return;
        };
        ctx.metrics.tcp_accepted.inc();
        let (ctx, conn_shutdown) = (ctx.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let _permit = permit;
            // An outsider gets its REFUSED and the connection ends.
            let one_shot = !inside;
            if let Err(e) = serve_conn(stream, peer, &ctx, &conn_shutdown, one_shot).await {
                tracing::debug!(client.addr = %peer, error = %e, "resolver tcp connection");
            }
        });
    };
    if let Err(e) = spaced_net::serve(listener, shutdown.clone(), admit, handle).await {
        tracing::error!(error = %e, "resolver tcp listener stopped");
    }
}

/// Forwards one TCP connection may have in flight. RFC 7766 §6.2.1.1 asks that pipelined
/// queries be processed concurrently, so that a slow upstream does not hold up the answers
/// behind it; past this bound the connection's next query waits, so one client cannot take
/// every forward permit.
const TCP_FORWARDS_PER_CONN: usize = 16;

/// One TCP connection: length-prefixed queries until the client closes, idles out, or the
/// resolver stops. Names inside the zone are answered at once and in order; forwards run
/// beside them and are answered when they complete (clients match answers by id).
async fn serve_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<Ctx>,
    shutdown: &Shutdown,
    one_shot: bool,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let local: Option<IpAddr> = stream
        .local_addr()
        .ok()
        .map(|a| spaced_config::canonical(a.ip()));
    let opts = &ctx.options;
    // Bytes read and not yet taken: pipelined queries then cost one read between them.
    let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
    let mut out = Vec::new();
    let mut framed = Vec::new();
    let mut rotate = fastrand::usize(..);
    let mut forwards: JoinSet<Vec<u8>> = JoinSet::new();
    let mut eof = false;
    // When the first byte of the message now in `rbuf` arrived. A message (prefix and
    // body) must be whole within `tcp_idle` of it: an idle timer restarted by every read
    // would hold a connection for ever for a client dripping one byte every few seconds.
    let mut started: Option<tokio::time::Instant> = None;
    loop {
        while forwards.len() < TCP_FORWARDS_PER_CONN {
            let Some(n) = complete_message(&rbuf) else {
                break;
            };
            rotate = rotate.wrapping_add(1);
            let outcome = {
                let zone = ctx.zone.load();
                let down = ctx.board.down();
                let req = Request {
                    query: &rbuf[2..2 + n],
                    client_in_space: zone.allows(peer.ip()),
                    transport: Transport::Tcp,
                    local,
                    down: Some(&down),
                    rotate,
                };
                let outcome = answer(&zone, &req, &mut out);
                (outcome, zone.upstreams().clone())
            };
            let send = match outcome {
                (Outcome::Forward(fwd), upstreams) => {
                    match ctx.forwards.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (ctx, query) = (Arc::clone(ctx), rbuf[2..2 + n].to_vec());
                            forwards.spawn(async move {
                                let _permit = permit;
                                relay(&ctx, &upstreams, &query, fwd).await
                            });
                            rbuf.drain(..2 + n);
                            started = None;
                            continue;
                        }
                        Err(_) => {
                            overloaded(&ctx.metrics, &rbuf[2..2 + n], fwd, &mut out);
                            true
                        }
                    }
                }
                (o, _) => count(&ctx.metrics, o),
            };
            rbuf.drain(..2 + n);
            started = None;
            if !send {
                // Not even a header: the stream cannot be trusted to be in step any more.
                return Ok(());
            }
            write_framed(&mut stream, &mut framed, &out, opts.tcp_idle).await?;
            if one_shot {
                return Ok(());
            }
        }
        if eof && forwards.is_empty() {
            return Ok(());
        }
        let can_read = !eof && forwards.len() < TCP_FORWARDS_PER_CONN;
        if can_read && rbuf.capacity() - rbuf.len() < 2048 {
            rbuf.reserve(4096);
        }
        let now = tokio::time::Instant::now();
        if rbuf.is_empty() {
            started = None;
        } else if started.is_none() {
            started = Some(now);
        }
        let read_by = started.unwrap_or(now) + opts.tcp_idle;
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            Some(done) = forwards.join_next(), if !forwards.is_empty() => {
                if let Ok(answer) = done {
                    write_framed(&mut stream, &mut framed, &answer, opts.tcp_idle).await?;
                }
            }
            r = tokio::time::timeout_at(read_by, stream.read_buf(&mut rbuf)), if can_read => {
                match r {
                    // Closed: what is in flight is still answered (the client may have
                    // only shut down its side).
                    Ok(Ok(0)) => eof = true,
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return Ok(()),
                    // Idle too long between queries or mid-message: end quietly, unless
                    // forwards are still to be answered.
                    Err(_) if forwards.is_empty() => return Ok(()),
                    Err(_) => {}
                }
            }
        }
    }
}

/// The length of the first whole message in `buf` (after its 2-byte prefix), if it is in.
fn complete_message(buf: &[u8]) -> Option<usize> {
    let len = buf.get(..2)?;
    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
    (buf.len() >= 2 + n).then_some(n)
}

/// Writes `answer` with its length prefix, within `limit`. An answer over 64 KiB, which
/// the prefix cannot say, is an error: the connection ends rather than skip an answer.
async fn write_framed(
    stream: &mut TcpStream,
    framed: &mut Vec<u8>,
    answer: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    let len = u16::try_from(answer.len()).map_err(|_| std::io::ErrorKind::InvalidData)?;
    framed.clear();
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(answer);
    timed(limit, stream.write_all(framed)).await
}

async fn timed<T>(
    limit: Duration,
    fut: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
