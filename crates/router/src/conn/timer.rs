//! The connection's timer loop: polls the connection (the fast path or hyper's) until it
//! ends, acting on the verdicts of [`ConnCtx`] (`client_header`, `keepalive`, a client
//! that stops reading) and on shutdown, which it turns into a graceful close.

use std::pin::Pin;
use std::sync::atomic::Ordering;

use spaced_config::Timeouts;
use tracing::debug;

use super::ctx::{ConnCtx, Progress, Verdict, ms};

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
