//! Upgraded connections (WebSocket and any other `Upgrade`): once the dyno answered 101 and
//! the client got it, bytes are relayed both ways until either side ends or nothing moves
//! for `timeouts.idle`.
//!
//! An upgraded connection counts as in-flight work: shutdown (and the removal of its
//! listener by a reload) does not cut it; the daemon's drain waits for it up to the grace
//! period, as HAProxy's soft-stop does until `hard-stop-after`. A second signal, or the end
//! of the grace period, ends the process and with it the relay.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use spaced_net::Shutdown;
use tracing::debug;

use crate::relay_end::InFlight;

/// Relays an upgraded exchange as a tracked task; the dyno's in-flight slot is held until
/// the relay ends.
pub(crate) fn spawn_relay(
    shutdown: &Shutdown,
    client: OnUpgrade,
    dyno: OnUpgrade,
    idle: Duration,
    slot: InFlight,
) {
    shutdown.spawn(async move {
        let (client, dyno_io) = match tokio::try_join!(client, dyno) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(dyno.addr = %slot.0.addr, error = %e, "upgrade failed");
                return;
            }
        };
        let res = spaced_net::relay(TokioIo::new(client), TokioIo::new(dyno_io), idle).await;
        debug!(dyno.addr = %slot.0.addr, result = ?res, "upgraded connection ended");
        drop(slot);
    });
}
