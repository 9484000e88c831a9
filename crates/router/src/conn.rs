//! One client connection: hyper serving HTTP/1.1 (with upgrades) or HTTP/2, bounded by
//! `client_header` (a request head must be complete within it) and `keepalive` (an idle
//! connection is closed after it), and shut down gracefully when the router stops.
//!
//! Both deadlines are watched by one timer per connection rather than per request: reads
//! and request boundaries only store timestamps; the timer recomputes its deadline when it
//! fires. The same timer cuts a client that stops reading a response: a relayed body that
//! nobody polls for `timeouts.idle` means the client takes no more bytes (its socket or,
//! over HTTP/2, its flow-control window is full), and the dyno behind it would be held for
//! ever; HAProxy's `timeout client` and nginx's `send_timeout` bound the same case.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use spaced_config::Timeouts;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use crate::access::Listener;
use crate::code::Code;
use crate::exchange::{Exchange, Outcome};
use crate::proxy;
use crate::rejected;
use crate::shared::{Shared, Slot};

pub(crate) mod h2;

/// Largest HTTP/1 request head buffered (all headers together); beyond it hyper answers
/// 431. HTTP/2 heads have their own, smaller bound ([`h2::MAX_HEADER_LIST`]).
const MAX_HEAD_BUF: usize = 1 << 20;
/// Header lines hyper parses before giving up; a little above the limit so that a request
/// just over it gets our 400 (H26) rather than hyper's 431.
const PARSE_MAX_HEADERS: usize = 1100;

/// What every request of one connection shares.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    /// Router-wide state.
    pub shared: Arc<Shared>,
    /// The kind of listener it came on.
    pub listener: Listener,
    /// The client (the PROXY header's source when one was read), canonical.
    pub peer: IpAddr,
    /// `peer` as a header value (appended to X-Forwarded-For).
    pub peer_value: HeaderValue,
    /// The listener's port as a header value (X-Forwarded-Port).
    pub port_value: HeaderValue,
    /// Came over TLS.
    pub https: bool,
    /// `Some(tls_version)` over TLS.
    pub tls: Option<&'static str>,
    /// Requests being served on it.
    in_flight: AtomicU32,
    /// Router-clock ms when it last became idle.
    idle_since: AtomicU64,
    /// Router-clock ms + 1 when the first byte of a request head arrived; 0 when none.
    head_since: AtomicU64,
    /// HTTP/2: heads are framed, `client_header` does not apply per request. Set at the
    /// start (ALPN) or when a cleartext connection opens with the HTTP/2 preface.
    h2: AtomicBool,
    /// Handed to an upgrade relay: the socket carries the relay's bytes now.
    upgraded: AtomicBool,
    /// An unparsable head was answered with our page (and logged) in place of hyper's.
    head_answered: AtomicBool,
    /// The request being served is the connection's last one (it has no body and hyper
    /// closes after its response).
    last_request: AtomicBool,
    /// HTTP/2: router-clock ms + 1 when the client opened a header block (HEADERS without
    /// END_HEADERS) that is not ended yet; 0 when none is open.
    h2_block_since: AtomicU64,
    /// HTTP/2: decoded header bytes of the requests in flight ([`h2::HeadBudget`]).
    h2_head_bytes: AtomicU64,
    /// Dyno responses being relayed to the client now.
    relaying: AtomicU32,
    /// Polls of those relays so far: unchanged for `idle` while one is open, the client
    /// has stopped taking the response.
    relay_polls: AtomicU64,
    /// The `max_connections` slot, released when the connection ends.
    _slot: Option<Slot>,
}

/// What the connection timer decides.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Look again at this router-clock ms.
    Wait(u64),
    /// Idle past `keepalive`: close gracefully.
    Idle,
    /// A request head took longer than `client_header`: close.
    SlowHead,
    /// A response was relayed to a client that took nothing of it for `idle`: close.
    NotReading,
}

/// What the timer last saw of the relays' progress ([`ConnCtx::relay_polls`]).
#[derive(Debug, Default)]
struct Progress {
    /// The poll count it saw.
    polls: u64,
    /// Router-clock ms when it first saw that count.
    since: u64,
}

impl ConnCtx {
    /// A connection context; the `client_header` clock starts now.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        listener: Listener,
        peer: IpAddr,
        port_value: HeaderValue,
        tls: Option<&'static str>,
        h2: bool,
        slot: Option<Slot>,
    ) -> Self {
        let now = shared.runtime.now_ms();
        Self {
            listener,
            peer,
            peer_value: crate::headers::ip_value(peer),
            port_value,
            https: tls.is_some(),
            tls,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(if h2 { 0 } else { now + 1 }),
            h2: AtomicBool::new(h2),
            upgraded: AtomicBool::new(false),
            head_answered: AtomicBool::new(false),
            last_request: AtomicBool::new(false),
            h2_block_since: AtomicU64::new(0),
            h2_head_bytes: AtomicU64::new(0),
            relaying: AtomicU32::new(0),
            relay_polls: AtomicU64::new(0),
            _slot: slot,
            shared,
        }
    }

    /// A request's head was parsed.
    pub(crate) fn activity_begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.in_flight.inc();
    }

    /// A request finished (its response was sent or abandoned) at router-clock `now_ms`.
    pub(crate) fn activity_end(&self, now_ms: u64) {
        self.shared.metrics.in_flight.dec();
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(now_ms, Ordering::Relaxed);
            self.head_since.store(0, Ordering::Relaxed);
        }
    }

    /// A dyno's response body starts being relayed ([`Self::relay_ended`] when it ends).
    #[inline]
    pub(crate) fn relay_started(&self) {
        self.relaying.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn relay_ended(&self) {
        self.relaying.fetch_sub(1, Ordering::Relaxed);
    }

    /// The client side asked a relayed body for more: it still takes the response.
    #[inline]
    pub(crate) fn relay_polled(&self) {
        self.relay_polls.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection was upgraded (101 sent): what it carries next is not HTTP.
    pub(crate) fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    /// The request just parsed is the connection's last (see [`SendMore`]).
    pub(crate) fn mark_last_request(&self) {
        self.last_request.store(true, Ordering::Relaxed);
    }

    /// Whether what hyper writes now ends the connection's last response: hyper shuts the
    /// socket down right after it.
    #[inline]
    fn writing_the_end(&self) -> bool {
        self.last_request.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.upgraded.load(Ordering::Relaxed)
    }

    /// Whether hyper may be writing its own answer to an unparsable head: HTTP/1, no
    /// request in flight, not upgraded.
    #[inline]
    fn between_requests(&self) -> bool {
        !self.is_h2()
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.upgraded.load(Ordering::Relaxed)
    }

    /// Whether the connection speaks HTTP/2.
    #[inline]
    fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// A cleartext connection opened with the HTTP/2 preface (prior knowledge, RFC 9113
    /// §3.3): from now on it is HTTP/2, whose heads the `client_header` clock does not time.
    pub(crate) fn switch_to_h2(&self) {
        self.h2.store(true, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
    }

    /// Bytes arrived from the client.
    #[inline]
    pub(crate) fn on_read(&self) {
        if !self.is_h2()
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since
                .store(self.shared.runtime.now_ms() + 1, Ordering::Relaxed);
        }
    }

    /// An HTTP/2 header block was opened or ended by what the client just sent.
    fn on_h2_block(&self, block: h2::Block) {
        match block {
            h2::Block::Open => {
                if self.h2_block_since.load(Ordering::Relaxed) == 0 {
                    self.h2_block_since
                        .store(self.shared.runtime.now_ms() + 1, Ordering::Relaxed);
                }
            }
            h2::Block::Closed => self.h2_block_since.store(0, Ordering::Relaxed),
            h2::Block::Same => {}
        }
    }

    fn verdict(&self, now: u64, t: &Timeouts, seen: &mut Progress) -> Verdict {
        // An HTTP/2 header block left open (its CONTINUATION never sent) is a head that
        // does not finish: cut after `client_header`, whatever else is going on.
        let block = self.h2_block_since.load(Ordering::Relaxed);
        if block == 0 {
            return self.verdict_http(now, t, seen);
        }
        let deadline = (block - 1).saturating_add(ms(t.client_header));
        if now >= deadline {
            return Verdict::SlowHead;
        }
        match self.verdict_http(now, t, seen) {
            Verdict::Wait(at) => Verdict::Wait(at.min(deadline)),
            other => other,
        }
    }

    fn verdict_http(&self, now: u64, t: &Timeouts, seen: &mut Progress) -> Verdict {
        // Reads only note when a head starts; the timer looks at least every
        // `client_header` (or `keepalive`, when shorter), so a slow head is cut within
        // twice that at worst.
        let look_again = now.saturating_add(ms(t.client_header).min(ms(t.keepalive)).max(1));
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return self.relay_verdict(now, t, seen, look_again);
        }
        let head = self.head_since.load(Ordering::Relaxed);
        if head > 0 {
            let deadline = (head - 1).saturating_add(ms(t.client_header));
            // No later than `look_again`: a head that completes early leaves the
            // connection idle, and a `keepalive` shorter than `client_header` must still
            // close it on time (issue 17).
            return if now >= deadline {
                Verdict::SlowHead
            } else {
                Verdict::Wait(deadline.min(look_again))
            };
        }
        let deadline = self
            .idle_since
            .load(Ordering::Relaxed)
            .saturating_add(ms(t.keepalive));
        if now >= deadline {
            Verdict::Idle
        } else {
            Verdict::Wait(deadline.min(look_again))
        }
    }

    /// The verdict while requests are in flight: `NotReading` once a response is being
    /// relayed and no relay was polled for `idle`; else look again by `look_again`.
    fn relay_verdict(
        &self,
        now: u64,
        t: &Timeouts,
        seen: &mut Progress,
        look_again: u64,
    ) -> Verdict {
        let polls = self.relay_polls.load(Ordering::Relaxed);
        if self.relaying.load(Ordering::Relaxed) == 0 || polls != seen.polls {
            *seen = Progress { polls, since: now };
            return Verdict::Wait(look_again);
        }
        // A relay polled even once within `idle` is not stalled: its own idle timer (H15)
        // wakes it at least that often while the client takes bytes.
        let deadline = seen.since.saturating_add(ms(t.idle));
        if now >= deadline {
            return Verdict::NotReading;
        }
        Verdict::Wait(deadline.min(look_again))
    }
}

/// A duration in whole milliseconds, saturating (config durations may be absurdly long).
fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Serves HTTP on `io` until the client leaves, a deadline passes, or shutdown: HTTP/1
/// through the fast path ([`crate::front`]), which hands what it does not take to hyper.
pub(crate) async fn serve<I>(io: I, ctx: Arc<ConnCtx>, timeouts: Timeouts)
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin + Send + 'static,
{
    if ctx.is_h2() {
        serve_hyper(io, ctx, timeouts).await;
    } else {
        crate::front::serve(io, ctx, timeouts).await;
    }
}

/// Serves HTTP with hyper on `io` until the client leaves, a deadline passes, or shutdown.
pub(crate) async fn serve_hyper<I>(io: I, ctx: Arc<ConnCtx>, timeouts: Timeouts)
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched::new(io, Arc::clone(&ctx)));
    let svc_ctx = Arc::clone(&ctx);
    let svc = service_fn(move |req| proxy::handle(Arc::clone(&svc_ctx), req));
    if ctx.is_h2() {
        // The decoded header list is bounded per stream by the codec (its own bare 431
        // above it: HPACK makes a few wire bytes decode to many) and per connection by
        // `h2::HeadBudget`; the router's limits (400, H26) decide below that.
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(h2::MAX_HEADER_LIST)
            .max_concurrent_streams(h2::MAX_STREAMS)
            .serve_connection(io, svc);
        ended(
            drive(conn, &ctx, timeouts, |c| c.graceful_shutdown()).await,
            &ctx,
        );
    } else {
        let conn = http1::Builder::new()
            .max_buf_size(MAX_HEAD_BUF)
            .max_headers(PARSE_MAX_HEADERS)
            .header_read_timeout(None)
            .serve_connection(io, svc)
            .with_upgrades();
        let res = drive(conn, &ctx, timeouts, |c| c.graceful_shutdown()).await;
        if let Some(e) = ended(res, &ctx)
            && !ctx.head_answered.load(Ordering::Relaxed)
        {
            log_rejected_head(ctx, &e);
        }
    }
}

/// hyper answers a request head it cannot parse itself (400; 431 or 414 when too large),
/// before any request reaches the router: conflicting `Content-Length`, a head over
/// [`MAX_HEAD_BUF`], bad syntax. [`Watched`] normally puts our page (always 400) in place of
/// that answer and logs it; when it could not (the answer shared a write with the previous response),
/// the request still gets its log line here (H26, with a new request id) and is counted,
/// like every other request.
fn log_rejected_head(ctx: Arc<ConnCtx>, e: &hyper::Error) {
    if !e.is_parse() || e.is_parse_version_h2() {
        return;
    }
    let status = if !e.is_parse_too_large() {
        400
    } else if e.to_string().contains("URI") {
        414
    } else {
        431
    };
    log_unparsed(ctx, crate::headers::new_request_id(), status, 0);
}

/// The log line and count of a request whose head could not be parsed.
fn log_unparsed(ctx: Arc<ConnCtx>, request_id: HeaderValue, status: u16, bytes: u64) {
    let mut ex = Exchange::new(ctx, http::Method::GET, http::Version::HTTP_11, request_id);
    ex.unparsed = true;
    ex.finish(Outcome {
        code: Some(Code::H26),
        status,
        bytes,
        ..Outcome::default()
    });
}

/// The error a hyper connection ended with, if any, logged.
fn ended(res: Option<Result<(), hyper::Error>>, ctx: &ConnCtx) -> Option<hyper::Error> {
    let e = res?.err()?;
    debug!(client.addr = %ctx.peer, error = %e, "client connection ended");
    Some(e)
}

/// Polls `conn` until it ends, watching the connection's deadlines and shutdown;
/// `graceful` asks it to finish in-flight requests and stop (it is polled again right
/// after). Returns what it ended with, or `None` when a slow head cut it.
pub(crate) async fn drive<C, F, R>(conn: C, ctx: &ConnCtx, t: Timeouts, graceful: F) -> Option<R>
where
    C: Future<Output = R>,
    F: Fn(Pin<&mut C>),
{
    let shutdown = ctx.shared.shutdown.clone();
    let runtime = &ctx.shared.runtime;
    tokio::pin!(conn);
    // The first look at the earlier of the two deadlines: with a `keepalive` shorter than
    // `client_header`, a connection idle after a quick first request closes on time.
    let first_look = ms(t.client_header).min(ms(t.keepalive)).max(1);
    let first = runtime.instant_at(runtime.now_ms().saturating_add(first_look));
    let timer = tokio::time::sleep_until(first);
    tokio::pin!(timer);
    let mut closing = false;
    // Once closing, the client gets `client_header` to finish the close (HTTP/2: answer
    // the GOAWAY's PING), counted from the close or from its last request's end, whichever
    // is later, so a response's last bytes have that long to flush; a client that never
    // does would otherwise hold its socket and `max_connections` slot for ever.
    let close_within = ms(t.client_header).max(1);
    let close_by = |from: u64| runtime.instant_at(from.saturating_add(close_within));
    let mut seen = Progress::default();
    loop {
        tokio::select! {
            // The connection first: a relay woken at the same instant as the timer is
            // polled (and counted) before the timer judges it.
            biased;
            res = conn.as_mut() => return Some(res),
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                graceful(conn.as_mut());
                timer.as_mut().reset(close_by(runtime.now_ms()));
            }
            () = timer.as_mut() => {
                let now = runtime.now_ms();
                if closing {
                    let in_flight = ctx.in_flight.load(Ordering::Relaxed) > 0;
                    if in_flight
                        && ctx.relay_verdict(now, &t, &mut seen, now) == Verdict::NotReading
                    {
                        return not_reading(ctx);
                    }
                    let from = if in_flight {
                        now
                    } else {
                        ctx.idle_since.load(Ordering::Relaxed)
                    };
                    if now >= from.saturating_add(close_within) {
                        debug!(client.addr = %ctx.peer, "client did not finish closing, dropping");
                        return None;
                    }
                    timer.as_mut().reset(close_by(from));
                    continue;
                }
                match ctx.verdict(now, &t, &mut seen) {
                    Verdict::Wait(at) => timer.as_mut().reset(runtime.instant_at(at)),
                    Verdict::Idle => {
                        closing = true;
                        graceful(conn.as_mut());
                        timer.as_mut().reset(close_by(now));
                    }
                    Verdict::SlowHead => {
                        debug!(client.addr = %ctx.peer, "request head too slow, closing");
                        return None;
                    }
                    Verdict::NotReading => return not_reading(ctx),
                }
            }
        }
    }
}

/// Drops a connection whose client stopped reading its response ([`Verdict::NotReading`]):
/// the relays' log lines say what reached it.
fn not_reading<R>(ctx: &ConnCtx) -> Option<R> {
    debug!(client.addr = %ctx.peer, "client took no response bytes for `idle`, closing");
    ctx.shared.metrics.client_not_reading.inc();
    None
}

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

/// The client socket, noting when a request head starts arriving, and sending our page in
/// place of hyper's empty answer to a head it cannot parse ([`crate::rejected`]).
struct Watched<I> {
    inner: I,
    ctx: Arc<ConnCtx>,
    /// Everything written so far was flushed while no request was in flight: the next
    /// write may be hyper's automatic answer.
    armed: bool,
    /// Our answer being written in place of hyper's, and the length of hyper's write
    /// (reported as written once ours is out).
    replacing: Option<(Bytes, usize)>,
    /// HTTP/2: the client's frames, followed for header blocks left open.
    frames: Option<h2::FrameScan>,
}

impl<I> Watched<I> {
    fn new(inner: I, ctx: Arc<ConnCtx>) -> Self {
        let frames = ctx.is_h2().then(h2::FrameScan::new);
        Self {
            inner,
            ctx,
            armed: true,
            replacing: None,
            frames,
        }
    }

    /// Looks at a write that begins while armed; `only` is its one non-empty buffer, if it
    /// has exactly one, and `total` its length.
    fn look(&mut self, only: Option<&[u8]>, total: usize) {
        self.armed = false;
        let Some(out) = only else { return };
        if !self.ctx.between_requests() {
            return;
        }
        if rejected::auto_status(out).is_none() {
            return;
        }
        let request_id = crate::headers::new_request_id();
        let (ours, bytes) = rejected::replacement(out, &request_id);
        self.ctx.head_answered.store(true, Ordering::Relaxed);
        log_unparsed(Arc::clone(&self.ctx), request_id, Code::H26.status(), bytes);
        self.replacing = Some((ours, total));
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    /// Writes our answer; once it is out, hyper's bytes count as written.
    fn poll_replace(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((ours, claimed)) = self.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while ours.has_remaining() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, ours))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            ours.advance(n);
        }
        let claimed = *claimed;
        self.replacing = None;
        Poll::Ready(Ok(claimed))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.ctx.on_read();
            if let Some(frames) = &mut this.frames {
                this.ctx.on_h2_block(frames.feed(&buf.filled()[before..]));
            }
        }
        res
    }
}

impl<I: AsyncWrite + SendMore + Unpin> Watched<I> {
    /// The end of the last response, written with `MSG_MORE` ([`SendMore`]); `None` when
    /// this write is not that or the socket cannot take it now (the plain write then
    /// registers for writability).
    fn try_send_more(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<io::Result<usize>> {
        if !self.ctx.writing_the_end() {
            return None;
        }
        match self.inner.send_more(bufs)? {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            other => Some(other),
        }
    }
}

impl<I: AsyncWrite + SendMore + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.armed {
            this.look(Some(b), b.len());
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        if let Some(res) = this.try_send_more(&[io::IoSlice::new(b)]) {
            return Poll::Ready(res);
        }
        Pin::new(&mut this.inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.armed {
            let mut full = bufs.iter().filter(|b| !b.is_empty());
            let only = match (full.next(), full.next()) {
                (Some(b), None) => Some(&b[..]),
                _ => None,
            };
            this.look(only, bufs.iter().map(|b| b.len()).sum());
        }
        if this.replacing.is_some() {
            return this.poll_replace(cx);
        }
        if let Some(res) = this.try_send_more(bufs) {
            return Poll::Ready(res);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // hyper flushes after its buffer is empty: with no request in flight, the next
        // write starts a new answer.
        if this.replacing.is_none() && this.ctx.between_requests() {
            this.armed = true;
        }
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
