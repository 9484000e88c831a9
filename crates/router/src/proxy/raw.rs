//! The dyno side of a request without a body on a raw connection (`dyno_h1`): a pooled
//! socket or a new one, the head written as is, the response head parsed, either into a
//! `HeaderMap` (hyper's server writes it) or as the client's head in bytes (`front`).

use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode, Version};
use tokio::time::Instant;
use tracing::debug;

use super::{Attempt, Outbound, Retry, client_head, error, ms_since, reset};
use crate::code::Code;
use crate::dyno_h1::body::{RawRelay, WrittenHead};
use crate::dyno_h1::{self, ForClient, HeadError, RawConn};
use crate::exchange::{Exchange, Outcome, SentTo};
use crate::relay::ResBody;
use crate::relay_end::{InFlight, RelayEnd};

impl Attempt<'_> {
    /// [`Attempt::try_dyno`] for a request without a body: a raw connection (see
    /// `dyno_h1`). A pooled connection the dyno had closed (no byte of response) is
    /// replaced and the request sent again when its method is idempotent. `t0` is the
    /// instant of the try.
    #[allow(clippy::manual_async_fn)] // see the `async` block below
    pub(super) fn try_dyno_raw(
        &self,
        mut ex: Exchange,
        head: Vec<u8>,
        method: http::Method,
        mut reply: Vec<u8>,
        dyno: InFlight,
        t0: Instant,
    ) -> impl Future<Output = Result<Response<ResBody>, Retry>> + '_ {
        // An `async` block, not an `async fn`: the arguments stay where it captured them,
        // instead of being moved into locals beside them, which made the future larger.
        async move {
            let t = self.view.policy.router.timeouts;
            let back = |head, method, reply| Outbound::Raw {
                head,
                method,
                reply,
            };
            let mut pooled = dyno.0.pool.checkout_raw(t0, t.pool_idle);
            // When the pooled connection in hand was taken: `t0`, then each send-again's
            // own instant, so that a request sent again gets its whole `response` time
            // again. The log's times still run from `t0`.
            let mut pooled_at = t0;
            loop {
                let (mut conn, fresh) = match pooled.take() {
                    Some(c) => (c, false),
                    // Boxed: a new connection is the rare case, and its future would
                    // otherwise make every request's future larger.
                    None => match Box::pin(RawConn::connect(dyno.0.addr, t.connect)).await {
                        Ok(c) => (c, true),
                        Err(e) => {
                            debug!(dyno.addr = %dyno.0.addr, error = %e, "dyno connect failed, quarantined");
                            ex.conn.shared.quarantine(&dyno.0);
                            return Err((ex, back(head, method, reply), e, ms_since(t0)));
                        }
                    },
                };
                let sent = if fresh { Instant::now() } else { t0 };
                let connect_ms = sent.saturating_duration_since(t0).as_millis() as u64;
                let base = |now: Instant| Outcome {
                    dyno: Some(&dyno.0.label),
                    connect_ms: Some(connect_ms),
                    service_ms: Some(now.saturating_duration_since(sent).as_millis() as u64),
                    ..Outcome::default()
                };
                if conn.send(&head).await.is_err() {
                    // Nothing was taken in: safe to send elsewhere.
                    if fresh {
                        ex.conn.shared.quarantine(&dyno.0);
                        let out = back(head, method, reply);
                        return Err((ex, out, reset(dyno.0.addr), ms_since(t0)));
                    }
                    pooled_at = Instant::now();
                    pooled = dyno.0.pool.checkout_raw(pooled_at, t.pool_idle);
                    continue;
                }
                ex.sent_to = Some(SentTo {
                    dyno: Arc::clone(&dyno.0),
                    connect_ms,
                    sent,
                });
                // From when it was sent: no clock read of its own.
                let went_out = if fresh { sent } else { pooled_at };
                let deadline = went_out
                    .checked_add(t.response)
                    .unwrap_or_else(|| ex.conn.shared.runtime.instant_at(u64::MAX));
                let read = tokio::time::timeout_at(deadline, async {
                    if !self.written {
                        return conn.read_head(&method).await.map(Got::Parts);
                    }
                    let mut out = std::mem::take(&mut reply);
                    out.clear();
                    let id = ex.request_id.as_bytes();
                    Ok(
                        match conn.read_head_for_client(&method, id, &mut out).await? {
                            ForClient::Written(w) => Got::Written(w, out),
                            ForClient::Parts(h) => Got::Parts(h),
                        },
                    )
                })
                .await;
                let code = match read {
                    Err(_) => Code::H12,
                    Ok(Ok(h)) if h.status() == StatusCode::SWITCHING_PROTOCOLS => Code::H25,
                    Ok(Ok(h)) => {
                        let s = RawSent {
                            dyno,
                            connect_ms,
                            sent,
                            idle: t.idle,
                        };
                        return Ok(respond_raw(ex, h, conn, s));
                    }
                    Ok(Err(HeadError::Empty)) if !fresh && method.is_idempotent() => {
                        pooled_at = Instant::now();
                        pooled = dyno.0.pool.checkout_raw(pooled_at, t.pool_idle);
                        continue;
                    }
                    Ok(Err(HeadError::Invalid(why))) => {
                        debug!(dyno.addr = %dyno.0.addr, error = why, "invalid dyno response");
                        Code::H25
                    }
                    Ok(Err(e)) => {
                        debug!(dyno.addr = %dyno.0.addr, error = %e, "dyno exchange failed");
                        Code::H13
                    }
                };
                return Ok(error(ex, code, base(Instant::now())));
            }
        }
    }
}

/// What a request sent on a raw connection carries into its response.
struct RawSent {
    dyno: InFlight,
    connect_ms: u64,
    sent: Instant,
    idle: Duration,
}

/// A dyno's response head from a raw connection.
enum Got {
    /// Parsed into a `HeaderMap`.
    Parts(dyno_h1::Head),
    /// Written for the client as bytes (the second value).
    Written(dyno_h1::Written, Vec<u8>),
}

impl Got {
    fn status(&self) -> StatusCode {
        match self {
            Self::Parts(h) => h.parts.status,
            Self::Written(w, _) => w.status,
        }
    }
}

/// The client's response from a dyno's head on a raw connection, headers rewritten; the
/// body follows from the socket.
fn respond_raw(ex: Exchange, got: Got, conn: RawConn, s: RawSent) -> Response<ResBody> {
    let (parts, framing, keep_alive, written) = match got {
        Got::Parts(h) => {
            let mut parts = h.parts;
            client_head(&mut parts, &ex);
            (parts, h.framing, h.keep_alive, None)
        }
        Got::Written(w, bytes) => {
            let head = WrittenHead {
                bytes,
                has_length: w.has_length,
                has_date: w.has_date,
            };
            let mut parts = Response::new(()).into_parts().0;
            parts.status = w.status;
            parts.version = Version::HTTP_11;
            (parts, w.framing, w.keep_alive, Some(head))
        }
    };
    let end = RelayEnd {
        exchange: ex,
        dyno: s.dyno,
        up: None,
        connect_ms: s.connect_ms,
        sent: s.sent,
        status: parts.status.as_u16(),
    };
    let mut body = RawRelay::new(conn, framing, keep_alive, s.idle, end);
    body.written = written;
    Response::from_parts(parts, ResBody::Raw(body))
}
