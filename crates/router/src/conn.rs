//! One client connection, after the listener admitted it (and TLS, if any): served by
//! the HTTP/1 fast path ([`crate::front`]) while its heads allow, then by hyper
//! ([`by_hyper`]); HTTP/2 by hyper from the start. Bounded by `client_header` (a request head
//! must be complete within it) and `keepalive` (an idle connection is closed after it),
//! and shut down gracefully when the router stops.
//!
//! By concern: [`ctx`], what the requests of a connection share and the timer's verdicts
//! on it, a leaf that requests, bodies and the fast path import; [`timer`], the loop that
//! acts on them; [`watched`], the socket hyper reads and writes; [`by_hyper`], hyper's
//! serving; [`h2`], HTTP/2's bounds; [`send_more`], the last response's `MSG_MORE`;
//! [`park`], the wait of an idle connection outside [`serve`]'s future.

use std::sync::Arc;

use bytes::BytesMut;
use spaced_config::Timeouts;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::front::Served;
use ctx::ConnCtx;
use send_more::SendMore;

mod by_hyper;
pub(crate) mod ctx;
pub(crate) mod h2;
pub(crate) mod lot;
pub(crate) mod park;
pub(crate) mod send_more;
pub(crate) mod timer;
mod watched;

/// Serves HTTP on `io` until the client leaves, a deadline passes, or shutdown: HTTP/1
/// through the fast path ([`crate::front`]), which hands what it does not take to hyper.
/// Returns the socket when the fast path parked it, idle ([`park`] waits for its next
/// bytes, `initial` of the next call).
pub(crate) async fn serve<I>(
    io: I,
    initial: BytesMut,
    ctx: Arc<ConnCtx>,
    timeouts: Timeouts,
) -> Option<I>
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin + Send + 'static,
{
    if ctx.is_h2() {
        by_hyper::serve(io, ctx, timeouts).await;
        return None;
    }
    match crate::front::serve(io, initial, &ctx, timeouts).await {
        Served::Hyper(rest) => by_hyper::serve(rest, ctx, timeouts).await,
        Served::Parked(io) => return Some(io),
        Served::Done => {}
    }
    None
}
