//! The dyno side of a request with a body, or an upgrade: hyper's client on a pooled
//! connection (or a new one), the request sent under the H12 deadline, and the response
//! relayed, or for a 101 handed to a relay task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::Duration;

use http::header::CONNECTION;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::upgrade::OnUpgrade;
use tokio::time::Instant;
use tracing::debug;

use super::{Attempt, Outbound, Retry, client_head, error, ms_since, reset};
use crate::body::{self, ReqBody};
use crate::code::Code;
use crate::exchange::{Exchange, Outcome, SentTo};
use crate::headers;
use crate::pool::{self, Upstream};
use crate::relay::{Relay, ResBody};
use crate::relay_end::{InFlight, RelayEnd};
use crate::upgrade;

impl Attempt<'_> {
    /// One dyno: a pooled connection (or a new one when the pooled ones are dead), then the
    /// exchange. Connect failures quarantine the dyno and hand the request back.
    pub(super) async fn try_dyno(
        &self,
        mut ex: Exchange,
        mut req: Request<ReqBody>,
        mut on_client: Option<OnUpgrade>,
        dyno: InFlight,
    ) -> Result<Response<ResBody>, Retry> {
        let hyper = |req, on_client| Outbound::Hyper {
            req: Box::new(req),
            on_client,
        };
        let t = self.view.policy.router.timeouts;
        let t0 = Instant::now();
        // An upgrade needs a connection of its own (its socket outlives the request).
        let mut pooled = if self.upgrade {
            None
        } else {
            dyno.0.pool.checkout(t0, t.pool_idle)
        };
        loop {
            let (mut up, fresh) = match pooled.take() {
                Some(up) => (up, false),
                None => match pool::connect(dyno.0.addr, t.connect, self.upgrade).await {
                    Ok(up) => (up, true),
                    Err(e) => {
                        debug!(dyno.addr = %dyno.0.addr, error = %e, "dyno connect failed, quarantined");
                        ex.conn.shared.quarantine(&dyno.0);
                        return Err((ex, hyper(req, on_client), e, ms_since(t0)));
                    }
                },
            };
            if up.ready().await {
                let connect_ms = t0.elapsed().as_millis() as u64;
                let sent = Instant::now();
                ex.sent_to = Some(SentTo {
                    dyno: Arc::clone(&dyno.0),
                    connect_ms,
                    sent,
                });
                let res = send(&mut up, req, t.response, self.fault).await;
                let base = Outcome {
                    dyno: Some(&dyno.0.label),
                    connect_ms: Some(connect_ms),
                    service_ms: Some(sent.elapsed().as_millis() as u64),
                    ..Outcome::default()
                };
                match res {
                    Err(()) => return Ok(error(ex, Code::H12, base)),
                    Ok(Ok(resp)) => {
                        let sent_at = Sent {
                            dyno,
                            up,
                            connect_ms,
                            sent,
                            idle: t.idle,
                        };
                        return Ok(respond(ex, resp, sent_at, &mut on_client));
                    }
                    Ok(Err(mut e)) => {
                        let Some(back) = e.take_message() else {
                            let code = send_failure(e.error(), self.fault);
                            debug!(dyno.addr = %dyno.0.addr, error = %e.error(), code = code.as_str(), "dyno exchange failed");
                            let mut resp = error(ex, code, base);
                            if code == Code::H26 {
                                // The client's body lost its framing: nothing after it can be
                                // read as a request, and hyper closes; say so.
                                resp.headers_mut()
                                    .insert(CONNECTION, HeaderValue::from_static("close"));
                            }
                            return Ok(resp);
                        };
                        req = back;
                    }
                }
            }
            // The connection died before a byte of the request was written: safe to send
            // again. A new connection that dies at once counts against the dyno; a pooled one
            // the dyno closed is replaced (the next pooled one, else a new one).
            if fresh {
                ex.conn.shared.quarantine(&dyno.0);
                let out = hyper(req, on_client);
                return Err((ex, out, reset(dyno.0.addr), ms_since(t0)));
            }
            pooled = dyno.0.pool.checkout(Instant::now(), t.pool_idle);
        }
    }
}

/// What a sent request carries into its response.
struct Sent {
    dyno: InFlight,
    up: Upstream,
    connect_ms: u64,
    sent: Instant,
    idle: Duration,
}

/// The client's response: the dyno's relayed (headers rewritten), or for a 101 the
/// upgrade handed to a relay task.
fn respond(
    mut ex: Exchange,
    mut resp: Response<Incoming>,
    s: Sent,
    on_client: &mut Option<OnUpgrade>,
) -> Response<ResBody> {
    let status = resp.status();
    let base = Outcome {
        dyno: Some(&s.dyno.0.label),
        connect_ms: Some(s.connect_ms),
        service_ms: Some(s.sent.elapsed().as_millis() as u64),
        ..Outcome::default()
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(on_client) = on_client.take() else {
            // 101 to a request that asked for no upgrade: not valid HTTP.
            return error(ex, Code::H25, base);
        };
        let on_dyno = hyper::upgrade::on(&mut resp);
        ex.conn.mark_upgraded();
        let (mut rparts, _) = resp.into_parts();
        headers::rewrite_response(&mut rparts.headers, &ex.request_id, true);
        ex.finish(Outcome {
            status: status.as_u16(),
            ..base
        });
        let shutdown = ex.conn.shared.shutdown.clone();
        upgrade::spawn_relay(&shutdown, on_client, on_dyno, s.idle, s.dyno);
        let body = ResBody::Full {
            data: None,
            _exchange: Some(ex),
        };
        return Response::from_parts(rparts, body);
    }
    let (mut rparts, rbody) = resp.into_parts();
    client_head(&mut rparts, &ex);
    let end = RelayEnd {
        exchange: ex,
        dyno: s.dyno,
        up: Some(s.up),
        connect_ms: s.connect_ms,
        sent: s.sent,
        status: status.as_u16(),
    };
    Response::from_parts(rparts, ResBody::Relay(Relay::new(rbody, s.idle, end)))
}

/// Sends `request` and waits for the response head. The `response` deadline (H12) counts
/// from the moment the request is fully sent: while a client is still uploading, its own
/// idle timeout (H28) is what applies. `Err(())` is the H12 timeout.
async fn send(
    up: &mut Upstream,
    request: Request<ReqBody>,
    response: Duration,
    upload: Option<&AtomicU8>,
) -> Result<Result<Response<Incoming>, TrySendError<Request<ReqBody>>>, ()> {
    let (tx, mut hook) = up.split();
    let fut = tx.try_send_request(request);
    tokio::pin!(fut);
    let deadline = tokio::time::sleep(response);
    tokio::pin!(deadline);
    std::future::poll_fn(|cx| {
        // Drive the connection first: it writes the request and reads the response head.
        hook.drive(cx);
        if let Poll::Ready(res) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(res));
        }
        while deadline.as_mut().poll(cx).is_ready() {
            let uploading = upload.is_some_and(|f| f.load(Ordering::Relaxed) == body::CLIENT_OK);
            if !uploading {
                return Poll::Ready(Err(()));
            }
            deadline.as_mut().reset(Instant::now() + response);
        }
        Poll::Pending
    })
    .await
}

/// The code for an exchange that failed after the request was (partly) written.
fn send_failure(e: &hyper::Error, fault: Option<&AtomicU8>) -> Code {
    match fault.map(|f| f.load(Ordering::Relaxed)) {
        Some(body::CLIENT_IDLE) => return Code::H28,
        Some(body::CLIENT_GONE) => return Code::H27,
        Some(body::CLIENT_MALFORMED) => return Code::H26,
        _ => {}
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        Code::H25
    } else {
        Code::H13
    }
}
