//! [`IdleTimer`], the rolling idle deadline both relays (and egress's forwarded requests)
//! end on; a leaf that the generic relay and `splice` use.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// `from + idle`, saturating: an absurd configured timeout means "about never", not a
/// panic on `Instant` overflow.
fn after(from: Instant, idle: Duration) -> Instant {
    from.checked_add(idle)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 86_400))
}

/// A rolling idle deadline: the relay's, shared by both directions, and any other stream
/// that must end when nothing moves (egress's forwarded requests). The timer is only
/// re-armed when it fires (to `last activity + idle`), so busy streams do not touch the
/// timer wheel per chunk.
#[derive(Debug)]
pub struct IdleTimer {
    idle: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    /// A deadline `idle` from now.
    pub fn new(idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            idle,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(after(now, idle))),
        }
    }

    /// `Ready(true)` once `idle` has passed since the last progress; else registers the
    /// waker and returns `Pending`.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, progressed: bool) -> Poll<bool> {
        if progressed {
            self.last = Instant::now();
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            let deadline = after(self.last, self.idle);
            if deadline <= Instant::now() {
                return Poll::Ready(true);
            }
            self.sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}
