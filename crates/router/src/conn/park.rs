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
use tokio::net::TcpStream;
use tracing::debug;

use super::ctx::{ConnCtx, ms};
use super::lot::Tenant;
use super::send_more::SendMore;
use crate::front::idle::poll_wake_read;

/// Serves `io` ([`super::serve`], in a box of its own) and, each time the fast path parks
/// it, waits for its next bytes outside that box (a plain socket in the router's
/// [`super::lot`], with no task; a TLS one here); returns when the connection ends.
///
/// Not an `async fn` itself: its future would hold `run`'s and its arguments beside it.
pub(crate) fn serve<I>(io: I, ctx: Arc<ConnCtx>, t: Timeouts) -> impl Future<Output = ()>
where
    I: AsyncRead + AsyncWrite + SendMore + Park + Unpin + Send + 'static,
{
    run(io, ctx, t, false)
}

/// [`serve`] from the wait (`parked`) or from the first request.
async fn run<I>(mut io: I, ctx: Arc<ConnCtx>, t: Timeouts, mut parked: bool)
where
    I: AsyncRead + AsyncWrite + SendMore + Park + Unpin + Send + 'static,
{
    let mut initial = BytesMut::new();
    loop {
        if !parked {
            let served = Box::pin(super::serve(io, initial, Arc::clone(&ctx), t)).await;
            // The box is gone here: a parked connection holds this loop, its socket and
            // `ctx`, or, in the lot, only the socket and `ctx`.
            let Some(back) = served else { return };
            let Some(back) = back.to_lot(&ctx, &t) else {
                return;
            };
            io = back;
        }
        parked = false;
        match wait(&mut io, &ctx, &t).await {
            Woke::Bytes(bytes) => initial = bytes,
            Woke::Close => {
                // As the fast path closes after a last response: the stream shut down (a
                // FIN, not a reset), within `client_header`.
                let _ = tokio::time::timeout(t.client_header, io.shutdown()).await;
                return;
            }
            Woke::Drop => return,
        }
    }
}

/// A socket that can wait in the lot.
pub(crate) trait Park: Sized {
    /// Hands the parked socket to the lot (`None`: it is there, its task may end), or
    /// back when it waits in its task.
    fn to_lot(self, ctx: &Arc<ConnCtx>, t: &Timeouts) -> Option<Self>;
}

impl Park for TcpStream {
    fn to_lot(self, ctx: &Arc<ConnCtx>, t: &Timeouts) -> Option<Self> {
        let shared = &ctx.shared;
        let idle_since = ctx.idle_since.load(Ordering::Relaxed);
        let deadline = shared
            .runtime
            .instant_at(idle_since.saturating_add(ms(t.keepalive)))
            .into_std();
        // Out of tokio's reactor (deregistered), still non-blocking.
        let std = match self.into_std() {
            Ok(s) => s,
            Err(e) => {
                debug!(client.addr = %ctx.peer, error = %e, "client connection ended");
                return None;
            }
        };
        let tenant: Arc<dyn Tenant> = Arc::clone(ctx) as Arc<dyn Tenant>;
        match shared
            .lot
            .park(std, tenant, deadline, shared.shutdown.token())
        {
            Ok(()) => None,
            Err(std) => match Self::from_std(std) {
                Ok(s) => Some(s),
                Err(e) => {
                    debug!(client.addr = %ctx.peer, error = %e, "client connection ended");
                    None
                }
            },
        }
    }
}

impl<T> Park for tokio_rustls::server::TlsStream<T> {
    fn to_lot(self, _: &Arc<ConnCtx>, _: &Timeouts) -> Option<Self> {
        // The session's state is in the stream: it waits in its task.
        Some(self)
    }
}

impl Tenant for ConnCtx {
    fn resume(self: Arc<Self>, stream: std::net::TcpStream) {
        let shared = Arc::clone(&self.shared);
        shared.shutdown.spawn(async move {
            // The current policy's timeouts: a reload while it was parked applies.
            let t = self.shared.store.load().router.timeouts;
            match TcpStream::from_std(stream) {
                Ok(io) => run(io, self, t, true).await,
                Err(e) => debug!(client.addr = %self.peer, error = %e, "client connection ended"),
            }
        });
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
async fn wait<I>(io: &mut I, ctx: &ConnCtx, t: &Timeouts) -> Woke
where
    I: AsyncRead + Unpin,
{
    let runtime = &ctx.shared.runtime;
    let shutdown = &ctx.shared.shutdown;
    let idle_since = ctx.idle_since.load(Ordering::Relaxed);
    let deadline =
        tokio::time::sleep_until(runtime.instant_at(idle_since.saturating_add(ms(t.keepalive))));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spaced_config::Store;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::access::Listener;
    use crate::shared::Shared;

    /// A connection's context on a router with the test policy, and its timeouts with a
    /// short `client_header` (the release point comes within it) and `keepalive`.
    fn context(keepalive: Duration) -> (Arc<ConnCtx>, Timeouts) {
        let p = crate::access::tests::policy(crate::access::tests::BASE);
        let mut t = p.router.timeouts;
        t.client_header = Duration::from_millis(200);
        t.keepalive = keepalive;
        let store = Arc::new(Store::new(p, "one".into()));
        let shared = Shared::for_tests(store);
        let ctx = ConnCtx::new(
            shared,
            Listener::External,
            "127.0.0.1".parse().unwrap(),
            http::HeaderValue::from_static("80"),
            None,
            false,
            None,
        );
        (Arc::new(ctx), t)
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (server, client)
    }

    /// Reads one response head (the router's own answer: no dyno in the test policy).
    async fn answered(client: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// After a request, the fast path returns the socket once the timer finds it idle, and
    /// the wait hands back the next request's bytes; served again with them, it answers.
    #[tokio::test]
    async fn an_idle_connection_parks_and_resumes() {
        let (ctx, t) = context(Duration::from_secs(60));
        let (server, mut client) = pair().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: nowhere.test\r\n\r\n")
            .await
            .unwrap();
        let serving = tokio::spawn(super::super::serve(
            server,
            BytesMut::new(),
            Arc::clone(&ctx),
            t,
        ));
        assert!(answered(&mut client).await.starts_with("HTTP/1.1 "));
        let parked = tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("parks within a few client_header")
            .unwrap();
        let mut io = parked.expect("parked, not closed");
        assert!(ctx.between_requests());

        client
            .write_all(b"GET /again HTTP/1.1\r\nhost: nowhere.test\r\n\r\n")
            .await
            .unwrap();
        let Woke::Bytes(bytes) = wait(&mut io, &ctx, &t).await else {
            panic!("the wait did not end with the request's bytes");
        };
        assert!(bytes.starts_with(b"GET /again "));
        let serving = tokio::spawn(super::super::serve(io, bytes, Arc::clone(&ctx), t));
        assert!(answered(&mut client).await.starts_with("HTTP/1.1 "));
        drop(client);
        // The client left: served to the end, nothing parked.
        let ended = tokio::time::timeout(Duration::from_secs(10), serving).await;
        assert!(ended.unwrap().unwrap().is_none());
    }

    /// The wait ends at `keepalive` counted from the last request's end, and at the
    /// client's end of stream; the router's stop leaves it `client_header`, then drops it.
    #[tokio::test]
    async fn the_wait_ends_at_keepalive_eof_and_stop() {
        let (ctx, t) = context(Duration::from_millis(300));
        let (mut server, _client) = pair().await;
        assert!(matches!(wait(&mut server, &ctx, &t).await, Woke::Close));

        let (ctx, t) = context(Duration::from_secs(60));
        let (mut server, client) = pair().await;
        drop(client);
        assert!(matches!(wait(&mut server, &ctx, &t).await, Woke::Close));

        let (mut server, _client) = pair().await;
        ctx.shared.shutdown.cancel();
        assert!(matches!(wait(&mut server, &ctx, &t).await, Woke::Drop));
    }
}
