//! hyper serving a client connection: HTTP/2 (ALPN or prior knowledge), or HTTP/1 from
//! the first head the fast path ([`crate::front`]) does not take, for good. The socket is
//! [`Watched`]; the timer loop bounds it; each request goes to [`proxy::handle`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use spaced_config::Timeouts;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::ctx::ConnCtx;
use super::h2;
use super::send_more::SendMore;
use super::timer::drive;
use super::watched::{Watched, log_unparsed};
use crate::h1::limits::{HYPER_MAX_HEAD, HYPER_MAX_HEADERS};
use crate::proxy;

/// Serves HTTP with hyper on `io` until the client leaves, a deadline passes, or shutdown.
pub(super) async fn serve<I>(io: I, ctx: Arc<ConnCtx>, timeouts: Timeouts)
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched::new(io, Arc::clone(&ctx)));
    let svc_ctx = Arc::clone(&ctx);
    let svc = service_fn(move |req| proxy::handle(Arc::clone(&svc_ctx), req));
    if ctx.is_h2() {
        // The decoded header list is bounded per stream by the codec (its own bare 431
        // above it: HPACK makes a few wire bytes decode to many) and per connection by
        // `ctx::HeadBudget`; the router's limits (400, H26) decide below that.
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
            .max_buf_size(HYPER_MAX_HEAD)
            .max_headers(HYPER_MAX_HEADERS)
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

/// The error a hyper connection ended with, if any, logged.
fn ended(res: Option<Result<(), hyper::Error>>, ctx: &ConnCtx) -> Option<hyper::Error> {
    let e = res?.err()?;
    debug!(client.addr = %ctx.peer, error = %e, "client connection ended");
    Some(e)
}
