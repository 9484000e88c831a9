//! The client side of plain HTTP/1.1 requests without a body, without hyper's server: the
//! head is parsed with httparse, rewritten for the dyno straight from the read buffer, and
//! the response head written straight into one write buffer.
//!
//! Why: for such requests (nearly all proxied traffic: GET, HEAD, DELETE, OPTIONS) hyper's
//! server built a `HeaderMap` that the router then rewrote and serialised again, and its
//! dispatcher and buffers came on top; together about a third of the router's user-space
//! CPU per request (benches/README.md, Router). HAProxy and nginx rewrite the head as
//! bytes too.
//!
//! Only a head the router fully understands takes this path: HTTP/1.1, origin-form,
//! exactly one valid Host, at most [`FAST_MAX_HEADERS`] lines within the limits, no body (no
//! `Transfer-Encoding`, no `Content-Length` but a single `0`), and no `Upgrade`, `Expect`
//! or `Connection` naming other headers. Anything else, including a head httparse
//! refuses, hands the connection, with every byte read so far, to hyper for good
//! ([`crate::conn`] serves it with hyper), whose limits, error answers, bodies and upgrades then apply
//! exactly as before. So the fast path adds no rule of its own: it is a shortcut for heads
//! whose answer it knows to be the same. A connection that opens with the HTTP/2 preface
//! goes to hyper's HTTP/2 (prior knowledge).

pub(crate) mod fuzz;
mod head;
pub(crate) mod idle;
pub(crate) mod response;
#[cfg(test)]
mod tests;

use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use spaced_config::Timeouts;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::access;
use crate::code::Code;
use crate::conn::ctx::ConnCtx;
use crate::conn::send_more::SendMore;
use crate::conn::timer;
use crate::exchange::{Exchange, Outcome};
use crate::h1::framing::{BodyLen, SendFraming};
use crate::h1::limits::{FAST_MAX_HEAD, FAST_MAX_HEADERS};
use crate::headers;
use crate::proxy;
use crate::relay::ResBody;
use crate::state::View;

use idle::{MIN_READ, READ_BUF};
use spaced_net::Rewind;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the fast path left a connection.
pub(crate) enum Served<I> {
    /// hyper is to serve it from here, with every byte read and not consumed in front
    /// (HTTP/2 too: the preface came, and the context says so now).
    Hyper(Rewind<I>),
    /// Idle at the release point ([`idle`]) with nothing buffered and no request in
    /// flight: the caller waits for its next bytes outside this future
    /// ([`crate::conn::park`]) and serves it again with them.
    Parked(I),
    /// Closed or failed.
    Done,
}

/// Serves HTTP/1 on `io` while heads allow the fast path. `initial` is what a parked
/// connection's wait read (its next request's first bytes); a new connection has none.
pub(crate) async fn serve<I>(io: I, initial: BytesMut, ctx: &Arc<ConnCtx>, t: Timeouts) -> Served<I>
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin + Send + 'static,
{
    // No buffer until the first bytes come ([`idle`]); a parked connection's bytes come
    // in a buffer of working size, and its responses need the write buffer as a woken
    // wait would have allocated it.
    let resumed = !initial.is_empty();
    let mut front = Front {
        io,
        rbuf: initial,
        wbuf: if resumed {
            Vec::with_capacity(READ_BUF)
        } else {
            Vec::new()
        },
        ctx: Arc::clone(ctx),
        // Only a connection's first bytes may be the HTTP/2 preface; a parked one has
        // served a request.
        fresh: !resumed,
    };
    let closing = AtomicBool::new(false);
    let ended = timer::drive(front.run(&closing), ctx, t, |_| {
        closing.store(true, Ordering::Relaxed);
    })
    .await;
    match ended {
        Some(End::Hyper) => Served::Hyper(Rewind::new(front.rbuf.freeze(), front.io)),
        Some(End::H2) => {
            ctx.switch_to_h2();
            Served::Hyper(Rewind::new(front.rbuf.freeze(), front.io))
        }
        Some(End::Park) => Served::Parked(front.io),
        Some(End::Close) => {
            // As hyper does after a last response: a FIN, not a reset.
            let _ = tokio::time::timeout(t.client_header, front.io.shutdown()).await;
            Served::Done
        }
        Some(End::Gone) | None => Served::Done,
    }
}

/// How the fast path ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A head it does not take: hyper serves the connection from here on.
    Hyper,
    /// The HTTP/2 preface: hyper's HTTP/2 serves the connection.
    H2,
    /// Idle at the release point: parked outside this future ([`Served::Parked`]).
    Park,
    /// The client closed, asked to close, or the router is closing: shut down.
    Close,
    /// The socket failed: drop it.
    Gone,
}

/// One client connection on the fast path.
struct Front<I> {
    io: I,
    /// Bytes read and not yet consumed (a pipelined next head stays here).
    rbuf: BytesMut,
    /// The response being written.
    wbuf: Vec<u8>,
    ctx: Arc<ConnCtx>,
    /// No request was served yet (the HTTP/2 preface may come).
    fresh: bool,
}

/// What [`Front::fill`] came back with.
enum Fill {
    /// A read: its byte count (0 at end of stream) or its error.
    Read(io::Result<usize>),
    /// Closing for being idle, and no head begun.
    Closing,
    /// Idle at the release point: park the connection.
    Park,
}

/// A parsed head, ready to forward.
struct Prepared {
    ex: Exchange,
    /// The view and app index, or why the request is refused.
    routed: Result<(Arc<View>, usize), Code>,
    /// The dyno's head (empty when refused).
    head: Vec<u8>,
    /// `Connection: close`: the connection ends after this response.
    close: bool,
}

/// What the buffer holds.
// `Ready` is large, but a `Step` is returned once per request and taken apart at once:
// boxing it cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// An incomplete head: read more.
    More,
    /// A head for hyper.
    Hyper,
    /// The HTTP/2 preface.
    H2,
    /// A request to serve.
    Ready(Prepared),
}

impl<I> Front<I>
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin,
{
    async fn run(&mut self, closing: &AtomicBool) -> End {
        loop {
            let p = loop {
                match self.step() {
                    Step::Ready(p) => break p,
                    Step::Hyper => return End::Hyper,
                    Step::H2 => return End::H2,
                    Step::More => {}
                }
                match self.fill(closing).await {
                    Fill::Read(Ok(0)) | Fill::Closing => return End::Close,
                    Fill::Read(Ok(_)) => self.ctx.on_read(),
                    Fill::Read(Err(_)) => return End::Gone,
                    Fill::Park => return End::Park,
                }
            };
            let Prepared {
                ex,
                routed,
                head,
                close,
            } = p;
            let method = ex.method.clone();
            let resp = match routed {
                Ok((view, index)) => {
                    let reply = std::mem::take(&mut self.wbuf);
                    let fwd = pin!(proxy::forward_raw(
                        ex,
                        &view,
                        index,
                        head,
                        method.clone(),
                        reply
                    ));
                    match self.unless_gone(fwd).await {
                        Some(resp) => resp,
                        // Dropping the request logs it (H27), naming the dyno it went to.
                        None => return End::Gone,
                    }
                }
                Err(code) => proxy::error(ex, code, Outcome::default()),
            };
            // Read after the response: a shutdown that came meanwhile ends the connection.
            let last = close || closing.load(Ordering::Relaxed);
            if let Err(e) = self.respond(resp, &method, last).await {
                tracing::debug!(client.addr = %self.ctx.peer, error = %e, "client connection ended");
                return End::Gone;
            }
            if last {
                return End::Close;
            }
            if !self.rbuf.is_empty() {
                // A pipelined head began while this request was served: its
                // `client_header` clock starts now.
                self.ctx.on_read();
            }
        }
    }

    /// Runs `fut` while watching the client: `None` when it closes or fails first (hyper
    /// drops a request whose client went away the same way). Bytes it pipelines meanwhile
    /// are kept, up to [`FAST_MAX_HEAD`].
    /// `fut` is pinned by the caller: a request's future is kilobytes, and moving it in
    /// would copy it once more.
    async fn unless_gone<F: Future>(&mut self, mut fut: Pin<&mut F>) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            while self.rbuf.len() < FAST_MAX_HEAD {
                self.make_room();
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Room for a read in the read buffer (which reuses its space once consumed).
    fn make_room(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < MIN_READ {
            self.rbuf.reserve(READ_BUF);
        }
    }

    /// Reads more of a head; [`Fill::Closing`] when the connection is closing for being
    /// idle and no head has begun, [`Fill::Park`] when it has just released its buffers
    /// ([`idle`]) with no request in flight and is not closing.
    ///
    /// A router that is stopping (SIGTERM, an upgrade) instead keeps reading: the client's
    /// next request is answered with `Connection: close`, so a keep-alive client moves to
    /// another process without a request sent into a closing socket. `timer::drive` still
    /// ends a connection that sends nothing within `client_header`.
    ///
    /// Waiting for a next request, the connection holds no buffer ([`idle`]).
    async fn fill(&mut self, closing: &AtomicBool) -> Fill {
        let mut waited = false;
        std::future::poll_fn(|cx| {
            let is_closing = closing.load(Ordering::Relaxed);
            if self.rbuf.is_empty() && is_closing && !self.ctx.shared.shutdown.is_cancelled() {
                return Poll::Ready(Fill::Closing);
            }
            let held = self.rbuf.capacity() > 0;
            let res = idle::poll_fill(
                &mut self.io,
                cx,
                &mut self.rbuf,
                &mut self.wbuf,
                &mut waited,
            );
            // The release point (the timer's wake-up found the connection idle): nothing
            // is buffered, so nothing of this future is needed until the client sends
            // again. A closing connection stays, to answer a last request as above.
            if res.is_pending()
                && held
                && self.rbuf.capacity() == 0
                && !is_closing
                && self.ctx.between_requests()
            {
                return Poll::Ready(Fill::Park);
            }
            res.map(Fill::Read)
        })
        .await
    }

    /// Parses the head at the front of the buffer and, when it is one for the fast path,
    /// consumes it and prepares its request.
    fn step(&mut self) -> Step {
        if self.rbuf.is_empty() {
            return Step::More;
        }
        // HTTP/2 with prior knowledge (RFC 9113 §3.3), as haproxy and Envoy accept it on
        // cleartext listeners: gRPC between apps over the internal listener, for one. Only
        // as a connection's first bytes.
        let n = self.rbuf.len().min(H2_PREFACE.len());
        if self.fresh && self.rbuf[..n] == H2_PREFACE[..n] {
            return if n == H2_PREFACE.len() {
                Step::H2
            } else {
                Step::More
            };
        }
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FAST_MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, &self.rbuf, &mut slots);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.rbuf.len() < FAST_MAX_HEAD => return Step::More,
            Err(httparse::Error::Version) if head::later_minor_as_11(&mut self.rbuf) => {
                return self.step();
            }
            Ok(httparse::Status::Partial) | Err(_) => return Step::Hyper,
        };
        let Some(p) = prepare(&self.ctx, &req) else {
            return Step::Hyper;
        };
        self.rbuf.advance(len);
        self.fresh = false;
        Step::Ready(p)
    }

    /// Writes `resp` to the client: head, then body, gathered into as few writes as the
    /// body allows; `last` ends the connection after it.
    async fn respond(
        &mut self,
        resp: http::Response<ResBody>,
        method: &Method,
        last: bool,
    ) -> io::Result<()> {
        use hyper::body::Body as _;

        let (parts, mut body) = resp.into_parts();
        let head_request = method == Method::HEAD;
        let length = BodyLen::of(&body);
        let written = match &mut body {
            ResBody::Raw(r) => r.written.take(),
            _ => None,
        };
        let mut framing = match written {
            Some(w) => {
                // The dyno's head, rewritten as bytes: only its end is left to write.
                self.wbuf = w.bytes;
                let said = response::Said {
                    length: w.has_length,
                    date: w.has_date,
                };
                response::finish_head(
                    &mut self.wbuf,
                    parts.status,
                    head_request,
                    length,
                    said,
                    last,
                )
            }
            None => {
                self.wbuf.clear();
                response::encode_head(&mut self.wbuf, &parts, head_request, length, last)
            }
        };
        while framing.has_body() && !body.is_end_stream() {
            let frame = match response::poll_once(&mut body) {
                Some(f) => f,
                None => {
                    // Nothing ready: what is gathered goes out before waiting, and the
                    // client is watched meanwhile, as hyper does: one that leaves ends
                    // the relay now, not at the next write or the dyno's idle timeout.
                    self.flush().await?;
                    match self
                        .unless_gone(pin!(response::next_frame(&mut body)))
                        .await
                    {
                        Some(frame) => frame,
                        None => return Err(io::ErrorKind::ConnectionAborted.into()),
                    }
                }
            };
            match frame {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.push_data(&mut framing, data).await?;
                    }
                }
                Some(Err(e)) => {
                    // The dyno failed mid-body (logged by the relay): what came is sent and
                    // the connection closed, so the client sees the response cut short.
                    self.flush().await?;
                    return Err(io::Error::other(e));
                }
            }
        }
        framing.finish(&mut self.wbuf);
        drop(body);
        if last {
            self.flush_last().await
        } else {
            self.flush().await
        }
    }

    /// Adds a body chunk; a large one is written at once behind what is gathered.
    async fn push_data(&mut self, framing: &mut SendFraming, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            // In chunked coding an empty chunk would end the body.
            return Ok(());
        }
        framing.chunk_prefix(&mut self.wbuf, data.len());
        if data.len() <= response::GATHER {
            self.wbuf.extend_from_slice(&data);
            if self.wbuf.len() >= response::GATHER {
                self.flush().await?;
            }
        } else {
            self.flush().await?;
            self.io.write_all(&data).await?;
        }
        framing.chunk_suffix(&mut self.wbuf);
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        // TLS: the record layer may hold what the socket did not take.
        self.io.flush().await
    }

    /// The connection's last bytes, held for the FIN that follows ([`SendMore`]).
    async fn flush_last(&mut self) -> io::Result<()> {
        let sent = match self.io.send_more(&[io::IoSlice::new(&self.wbuf)]) {
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => 0,
        };
        if sent < self.wbuf.len() {
            self.io.write_all(&self.wbuf[sent..]).await?;
        }
        self.wbuf.clear();
        self.io.flush().await
    }
}

/// The request of a head the fast path takes (`None` hands it to hyper): its exchange,
/// its route, and the dyno's head.
fn prepare(ctx: &Arc<ConnCtx>, req: &httparse::Request<'_, '_>) -> Option<Prepared> {
    let scan = head::scan(req)?;
    let host = HeaderValue::from_bytes(scan.host).ok()?;
    let pq = PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(scan.path.as_bytes())).ok()?;
    let request_id = match scan.request_id {
        Some(v) if headers::valid_request_id(v) => HeaderValue::from_bytes(v).ok()?,
        _ => headers::new_request_id(),
    };
    let mut ex = Exchange::new(
        Arc::clone(ctx),
        scan.method.clone(),
        Version::HTTP_11,
        request_id,
    );
    ex.path = Some(pq);
    ex.host = Some(host);
    let routed = proxy::route(&mut ex, |policy, peer| {
        access::client_from(policy, peer, scan.xff_values(req))
    });
    let mut dyno_head = Vec::new();
    if routed.is_ok() {
        let conn = &ex.conn;
        let fwd = head::ForwardBytes {
            peer: conn.peer_value.as_bytes(),
            https: conn.https,
            port: conn.port_value.as_bytes(),
            start_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            request_id: ex.request_id.as_bytes(),
        };
        head::dyno_head(&mut dyno_head, req, &scan, &fwd);
    }
    Some(Prepared {
        ex,
        routed,
        head: dyno_head,
        close: scan.close,
    })
}
