//! Upgraded connections (WebSocket and any other `Upgrade`): once the dyno answered 101 and
//! the client got it, bytes are relayed both ways until either side ends or nothing moves
//! for `timeouts.idle`.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use spaced_net::Shutdown;
use tracing::debug;

use crate::body::InFlight;

/// Relays an upgraded exchange as a tracked task; the dyno's in-flight slot is held until
/// the relay ends.
pub(crate) fn spawn_relay(
    shutdown: &Shutdown,
    client: OnUpgrade,
    dyno: OnUpgrade,
    idle: Duration,
    slot: InFlight,
) {
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let (client, dyno_io) = match tokio::try_join!(client, dyno) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(dyno.addr = %slot.0.addr, error = %e, "upgrade failed");
                return;
            }
        };
        // An upgraded connection is not a request: shutdown ends it rather than waiting out
        // the drain grace for a websocket that may never close.
        tokio::select! {
            res = spaced_net::relay(TokioIo::new(client), TokioIo::new(dyno_io), idle) => {
                debug!(dyno.addr = %slot.0.addr, result = ?res, "upgraded connection ended");
            }
            () = stop.cancelled() => {
                debug!(dyno.addr = %slot.0.addr, "upgraded connection closed by shutdown");
            }
        }
        drop(slot);
    });
}
