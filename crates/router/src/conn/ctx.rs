//! What every request of one connection shares ([`ConnCtx`]): who the client is, what
//! is in flight, when the connection last went idle or began a head; and the timer's
//! verdicts on those timestamps. Requests, bodies and the fast path update it; only the
//! timer loop ([`super::timer`]) acts on the verdicts.
//!
//! Both deadlines are watched by one timer per connection rather than per request: reads
//! and request boundaries only store timestamps; the timer recomputes its deadline when it
//! fires. The same timer cuts a client that stops reading a response: a relayed body that
//! nobody polls for `timeouts.idle` means the client takes no more bytes (its socket or,
//! over HTTP/2, its flow-control window is full), and the dyno behind it would be held for
//! ever; HAProxy's `timeout client` and nginx's `send_timeout` bound the same case.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};
use spaced_config::Timeouts;

use super::h2;
use crate::access::Listener;
use crate::shared::{Shared, Slot};

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
    pub(super) in_flight: AtomicU32,
    /// Router-clock ms when it last became idle.
    pub(super) idle_since: AtomicU64,
    /// Router-clock ms + 1 when the first byte of a request head arrived; 0 when none.
    head_since: AtomicU64,
    /// HTTP/2: heads are framed, `client_header` does not apply per request. Set at the
    /// start (ALPN) or when a cleartext connection opens with the HTTP/2 preface.
    h2: AtomicBool,
    /// Handed to an upgrade relay: the socket carries the relay's bytes now.
    upgraded: AtomicBool,
    /// An unparsable head was answered with our page (and logged) in place of hyper's.
    pub(super) head_answered: AtomicBool,
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
pub(super) enum Verdict {
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
pub(super) struct Progress {
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

    /// The request just parsed is the connection's last (see [`super::send_more::SendMore`]).
    pub(crate) fn mark_last_request(&self) {
        self.last_request.store(true, Ordering::Relaxed);
    }

    /// Whether what hyper writes now ends the connection's last response: hyper shuts the
    /// socket down right after it.
    #[inline]
    pub(super) fn writing_the_end(&self) -> bool {
        self.last_request.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.upgraded.load(Ordering::Relaxed)
    }

    /// Whether hyper may be writing its own answer to an unparsable head: HTTP/1, no
    /// request in flight, not upgraded.
    #[inline]
    pub(crate) fn between_requests(&self) -> bool {
        !self.is_h2()
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !self.upgraded.load(Ordering::Relaxed)
    }

    /// Whether the connection speaks HTTP/2.
    #[inline]
    pub(super) fn is_h2(&self) -> bool {
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
    pub(super) fn on_h2_block(&self, block: h2::Block) {
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

    pub(super) fn verdict(&self, now: u64, t: &Timeouts, seen: &mut Progress) -> Verdict {
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
    pub(super) fn relay_verdict(
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
pub(super) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The share of [`h2::CONN_HEAD_BUDGET`] one request holds while it is served.
#[derive(Debug)]
pub(crate) struct HeadBudget {
    ctx: Arc<ConnCtx>,
    bytes: u64,
}

impl HeadBudget {
    /// Takes the head's share of its connection's budget: `Ok(None)` on HTTP/1 (whose
    /// heads hyper's buffer bounds), `Err(())` when the connection's budget is spent.
    pub(crate) fn take(ctx: &Arc<ConnCtx>, headers: &HeaderMap) -> Result<Option<Self>, ()> {
        if !ctx.is_h2() {
            return Ok(None);
        }
        let bytes: u64 = headers
            .iter()
            .map(|(n, v)| (n.as_str().len() + v.len() + 32) as u64)
            .sum();
        let before = ctx.h2_head_bytes.fetch_add(bytes, Ordering::Relaxed);
        let budget = Self {
            ctx: Arc::clone(ctx),
            bytes,
        };
        if before.saturating_add(bytes) > h2::CONN_HEAD_BUDGET {
            // Dropping gives the share back.
            return Err(());
        }
        Ok(Some(budget))
    }
}

impl Drop for HeadBudget {
    fn drop(&mut self) {
        self.ctx
            .h2_head_bytes
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}
