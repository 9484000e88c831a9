//! An idle keep-alive connection, parked: it waits for its next request outside the
//! future that serves requests.
//!
//! Why: [`super::serve`]'s future (the fast path, a request's exchange, its forward and
//! response write, hyper's connection) is kilobytes, boxed once per connection, and was
//! held (touched: it ran a request) for as long as the client idled, `keepalive`, minutes.
//! nginx holds a few hundred bytes per idle keep-alive connection (benches/README.md,
//! "Memory per idle connection"). Making that future smaller costs the hot path (boxing
//! its parts cost 5 % more instructions per request); leaving it is free: the fast path
//! returns the socket at the point where it already frees its buffers
//! ([`crate::front::idle`], the connection timer's wake-up finding nothing to read, which a
//! busy connection never reaches), the box is dropped, and this loop, small and in the
//! connection's task, waits for the socket to become readable. The read that ends the wait
//! goes to the stack ([`crate::front::idle::poll_wake_read`]); its bytes start a new box.
//!
//! What the timer loop ([`super::timer::drive`]) would have done to the connection, the
//! wait does the same way: `keepalive` counted from the end of the last request closes it
//! (FIN after shutting the stream down, TLS's close_notify first), and so does a client's
//! end of stream; when the router stops, the connection stays open for `client_header`, so
//! a request already on its way is answered (with `Connection: close`, by the new box,
//! which sees the stop), then it is dropped. Only HTTP/1 on the fast path parks: HTTP/2
//! and connections hyper serves stay in their future, as before.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use spaced_config::Timeouts;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use super::ctx::{ConnCtx, ms};
use super::send_more::SendMore;
use crate::front::idle::poll_wake_read;

/// Serves `io` ([`super::serve`], in a box of its own) and, each time the fast path parks
/// it, waits for its next bytes outside that box; returns when the connection ends.
pub(crate) async fn serve<I>(mut io: I, ctx: Arc<ConnCtx>, t: Timeouts)
where
    I: AsyncRead + AsyncWrite + SendMore + Unpin + Send + 'static,
{
    let mut initial = BytesMut::new();
    loop {
        let served = Box::pin(super::serve(io, initial, Arc::clone(&ctx), t)).await;
        // The box is gone here: a parked connection holds this loop, its socket and `ctx`.
        let Some(mut parked) = served else { return };
        match wait(&mut parked, &ctx, t).await {
            Woke::Bytes(bytes) => (io, initial) = (parked, bytes),
            Woke::Close => {
                // As the fast path closes after a last response: the stream shut down (a
                // FIN, not a reset), within `client_header`.
                let _ = tokio::time::timeout(t.client_header, parked.shutdown()).await;
                return;
            }
            Woke::Drop => return,
        }
    }
}

/// How a parked connection's wait ended.
enum Woke {
    /// The client sent these bytes: serve it again.
    Bytes(BytesMut),
    /// `keepalive` passed, or the client closed: close it.
    Close,
    /// The read failed, or the router stopped and `client_header` passed: drop it.
    Drop,
}

/// Waits for a parked connection's next bytes, its `keepalive`, or the router's stop.
async fn wait<I>(io: &mut I, ctx: &ConnCtx, t: Timeouts) -> Woke
where
    I: AsyncRead + Unpin,
{
    let runtime = &ctx.shared.runtime;
    let shutdown = &ctx.shared.shutdown;
    let idle_since = ctx.idle_since.load(Ordering::Relaxed);
    let deadline = tokio::time::sleep_until(
        runtime.instant_at(idle_since.saturating_add(ms(t.keepalive))),
    );
    tokio::pin!(deadline);
    let mut stopping = false;
    loop {
        tokio::select! {
            // Bytes first: a request that came with the deadline is served, as the timer
            // loop polls the connection before judging it.
            biased;
            read = std::future::poll_fn(|cx| poll_wake_read(io, cx)) => {
                return match read {
                    Ok(bytes) if !bytes.is_empty() => {
                        // Its `client_header` clock starts now, as a read in the fast path
                        // starts it.
                        ctx.on_read();
                        Woke::Bytes(bytes)
                    }
                    // The client closed: a FIN back, as the fast path does.
                    Ok(_) => Woke::Close,
                    Err(e) => {
                        debug!(client.addr = %ctx.peer, error = %e, "client connection ended");
                        Woke::Drop
                    }
                };
            }
            () = shutdown.cancelled(), if !stopping => {
                // As the timer loop treats an idle connection when the router stops: open
                // for `client_header` more, for a request already sent, then dropped.
                stopping = true;
                let by = runtime.now_ms().saturating_add(ms(t.client_header).max(1));
                deadline.as_mut().reset(runtime.instant_at(by));
            }
            () = deadline.as_mut() => return if stopping { Woke::Drop } else { Woke::Close },
        }
    }
}
