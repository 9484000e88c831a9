//! One request, from parsed head to response: limits, routing by Host through the current
//! policy (one store load per request), the dyno pick with retries after connect failures,
//! the header rewrite, and the response or error (BEHAVIOR.md "Router").

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use hyper::ext::ReasonPhrase;
use hyper::upgrade::OnUpgrade;
use spaced_config::Balance;
use tokio::time::Instant;
use tracing::debug;

use crate::access;
use crate::balance;
use crate::body::ReqBody;
use crate::code::Code;
use crate::conn::ctx::{ConnCtx, HeadBudget};
use crate::dial::ConnectError;
use crate::dyno_h1;
use crate::exchange::{Exchange, Outcome};
use crate::headers::{self, Expect, Forward, X_REQUEST_ID};
use crate::relay::ResBody;
use crate::relay_end::InFlight;
use crate::state::View;

mod hyper_path;
mod raw;

/// Most dynos one request is tried on, whatever `retries` says.
const MAX_TRIES: usize = 16;

/// Serves one request.
pub(crate) async fn handle(
    conn: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let on_client = upgrade.then(|| hyper::upgrade::on(&mut req));
    if !upgrade
        && req.body().is_end_stream()
        && headers::closes_connection(req.version(), req.headers())
    {
        conn.mark_last_request();
    }
    let (mut parts, body) = req.into_parts();
    let request_id = headers::request_id(&parts.headers);
    let mut ex = Exchange::new(conn, parts.method.clone(), parts.version, request_id);
    ex.path = parts.uri.path_and_query().cloned();
    let authority = || {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    };
    ex.host = match parts.headers.get(HOST) {
        // HTTP/2 names the target in `:authority` (RFC 9113 §8.3.1); a `host` header
        // beside it must not choose another app than the one the dyno is told about.
        _ if parts.version == Version::HTTP_2 && parts.uri.authority().is_some() => authority(),
        Some(h) => Some(h.clone()),
        None => authority(),
    };
    // HTTP/2: the connection's requests in flight hold a bounded share of decoded heads.
    // (Bound to a name: the share is held until the request is answered.)
    let Ok(_budget) = HeadBudget::take(&ex.conn, &parts.headers) else {
        return Ok(error(ex, Code::H26TooLarge, Outcome::default()));
    };
    let (view, index) = match admit(&mut ex, &parts) {
        Ok(routed) => routed,
        Err(code) => return Ok(error(ex, code, Outcome::default())),
    };
    dyno_head(&mut parts, &ex, upgrade);
    let t = view.policy.router.timeouts;
    let (body, fault) = ReqBody::client(body, t.idle);
    if matches!(body, ReqBody::Client(_))
        && body.size_hint().exact().is_none()
        && !parts.headers.contains_key(CONTENT_LENGTH)
    {
        // A body of unknown length (chunked, or HTTP/2 DATA without a length): hyper's
        // client would send none at all with a GET or HEAD unless the framing is set.
        parts
            .headers
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    let out = if !upgrade && matches!(body, ReqBody::Empty) {
        let target = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let mut head = Vec::with_capacity(512);
        dyno_h1::encode_request(&mut head, &parts.method, target, &parts.headers);
        Outbound::Raw {
            head,
            method: parts.method,
            reply: Vec::new(),
        }
    } else {
        Outbound::Hyper {
            req: Box::new(Request::from_parts(parts, body)),
            on_client,
        }
    };
    let attempt = Attempt {
        view: &view,
        index,
        upgrade,
        fault: fault.as_deref(),
        written: false,
    };
    Ok(attempt.forward(ex, out).await)
}

/// Forwards a request without a body whose dyno head is already written (`head`, see
/// [`dyno_h1::encode_request`]) to app `index` of `view`: the path of `front`, which
/// parsed and rewrote the client's head itself. The client's response head is written
/// into `reply` (`front`'s emptied write buffer, so that no response allocates one).
/// (A plain function: an `async fn` here would wrap the forward's future in one more, and
/// copy it once more per request.)
pub(crate) fn forward_raw(
    ex: Exchange,
    view: &View,
    index: usize,
    head: Vec<u8>,
    method: http::Method,
    reply: Vec<u8>,
) -> impl Future<Output = Response<ResBody>> + '_ {
    let attempt = Attempt {
        view,
        index,
        upgrade: false,
        fault: None,
        written: true,
    };
    attempt.forward(
        ex,
        Outbound::Raw {
            head,
            method,
            reply,
        },
    )
}

/// What goes to the dyno.
enum Outbound {
    /// A request without a body: its head, written once, sent on a raw connection; and
    /// where the client's response head is to be written, when `front` writes it.
    Raw {
        head: Vec<u8>,
        method: http::Method,
        reply: Vec<u8>,
    },
    /// A request with a body, or an upgrade: hyper's client.
    /// (Boxed: the request is large, and this path is the rarer one.)
    Hyper {
        req: Box<Request<ReqBody>>,
        on_client: Option<OnUpgrade>,
    },
}

/// The checks before any dyno is chosen, in order: request limits, method, Host, the
/// route (S10/S11), web dynos (H14), `Expect`. Returns the view and the app's index.
fn admit(ex: &mut Exchange, parts: &http::request::Parts) -> Result<(Arc<View>, usize), Code> {
    if let Err(e) = headers::check_limits(request_line_len(parts), &parts.headers) {
        debug!(client.addr = %ex.conn.peer, reason = %e, "malformed request");
        return Err(Code::H26);
    }
    if headers::unsupported_coding(&parts.headers) {
        return Err(Code::H26Coding);
    }
    if parts.method == http::Method::CONNECT {
        // A reverse proxy has no tunnel to offer; dynos are reached by Host.
        return Err(Code::H26);
    }
    if ex.host.is_none() && matches!(parts.version, Version::HTTP_11 | Version::HTTP_2) {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400; the same for
        // HTTP/2 with neither `:authority` nor `host` (RFC 9113 §8.3.1 asks for one).
        return Err(Code::H26);
    }
    let routed = route(ex, |policy, peer| {
        access::client(policy, peer, &parts.headers)
    })?;
    if headers::expect(&parts.headers) == Expect::Unsupported {
        return Err(Code::H26Expect);
    }
    Ok(routed)
}

/// The route of a request whose head passed the limits: the client (`client`, given the
/// policy and the peer), the app by Host (S10/S11), web dynos (H14). One store load.
/// Returns the view and the app's index.
pub(crate) fn route(
    ex: &mut Exchange,
    client: impl FnOnce(&spaced_config::Policy, std::net::IpAddr) -> access::Client,
) -> Result<(Arc<View>, usize), Code> {
    let shared = &ex.conn.shared;
    let view = shared.runtime.view(&shared.store);
    let policy = &view.policy;
    let client = client(policy, ex.conn.peer);
    ex.fwd = client.addr();
    let host = ex.host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
    let index = match access::route_client(policy, ex.conn.listener, host, client) {
        Ok(i) => i,
        Err(denied) => {
            debug!(client.addr = %ex.conn.peer, reason = %denied, "request refused");
            let metrics = &shared.metrics;
            if let access::Denied::ClientBlocked { .. } = denied {
                metrics.l7_denied_s10.inc();
                return Err(Code::S10);
            }
            if let access::Denied::AppNotTrusted { index, .. }
            | access::Denied::ClientUnknown { index, .. } = denied
            {
                // Counted under the app that refused it.
                ex.stats = view.apps.get(index).map(|a| Arc::clone(&a.stats));
                metrics.l7_denied_s10.inc();
                return Err(Code::S10);
            }
            metrics.l7_denied_s11.inc();
            return Err(Code::S11);
        }
    };
    let app = view.apps.get(index).ok_or(Code::S11)?;
    ex.stats = Some(Arc::clone(&app.stats));
    if app.dynos.is_empty() {
        return Err(Code::H14);
    }
    Ok((view, index))
}

/// Turns the client's head into the dyno's: HTTP/1.1, origin-form target, Host present,
/// headers rewritten (BEHAVIOR.md "Headers to the dyno").
fn dyno_head(parts: &mut http::request::Parts, ex: &Exchange, upgrade: bool) {
    // HTTP/2: the Host the dyno sees is the `:authority` the route was chosen by.
    if (parts.version == Version::HTTP_2 || parts.headers.get(HOST).is_none())
        && let Some(h) = &ex.host
    {
        parts.headers.insert(HOST, h.clone());
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::from(pq);
    }
    parts.version = Version::HTTP_11;
    let start_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    headers::rewrite_request(
        &mut parts.headers,
        &Forward {
            peer: &ex.conn.peer_value,
            https: ex.conn.https,
            port: &ex.conn.port_value,
            start_ms,
            request_id: &ex.request_id,
            upgrade,
        },
    );
}

/// What one routed request needs to be forwarded.
struct Attempt<'a> {
    view: &'a View,
    index: usize,
    upgrade: bool,
    /// What the client's upload reported (H27/H28), when it has a body.
    fault: Option<&'a AtomicU8>,
    /// A response from a raw connection has its client head written as bytes
    /// ([`dyno_h1::parse_head_for_client`]): for `front`, which writes it as it is.
    written: bool,
}

/// A try that failed before the request was sent: the request back, why, and how long the
/// connection attempt took (ms, for the log line's `connect`).
type Retry = (Exchange, Outbound, ConnectError, u64);

impl Attempt<'_> {
    /// Picks dynos and tries them until one answers, a request is sent and fails, or the
    /// tries run out (`retries` + 1, at most [`MAX_TRIES`]).
    #[allow(clippy::manual_async_fn)] // see the `async` block below
    fn forward(
        self,
        mut ex: Exchange,
        mut out: Outbound,
    ) -> impl Future<Output = Response<ResBody>> {
        // An `async` block, as in `try_dyno_raw`: a smaller future.
        async move {
            let policy = &self.view.policy;
            let app = &self.view.apps[self.index];
            let tries = (policy.router.retries as usize)
                .saturating_add(1)
                .min(MAX_TRIES);
            let mut tried = [usize::MAX; MAX_TRIES];
            let mut n_tried = 0;
            let mut last: Option<(ConnectError, u64)> = None;
            while n_tried < tries {
                // The first try goes out microseconds after the head was parsed: its instant
                // serves (a clock read costs more than routing in a VM).
                let now = if n_tried == 0 {
                    ex.arrived
                } else {
                    Instant::now()
                };
                let now_ms = ex.conn.shared.runtime.ms_at(now);
                let excluded = &tried[..n_tried];
                let cursor = match policy.router.balance {
                    Balance::RoundRobin => app.stats.rr.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                let Some((i, _)) = balance::pick(
                    policy.router.balance,
                    app.dynos.len(),
                    |i| app.candidate(i, now_ms, excluded),
                    cursor,
                    |k| fastrand::usize(..k),
                ) else {
                    break;
                };
                tried[n_tried] = i;
                n_tried += 1;
                let dyno = InFlight::new(Arc::clone(&app.dynos[i]));
                let tried = match out {
                    Outbound::Raw {
                        head,
                        method,
                        reply,
                    } => self.try_dyno_raw(ex, head, method, reply, dyno, now).await,
                    // Boxed: its future is larger than the raw path's, which would otherwise
                    // carry (and copy, at every move) that size for every request.
                    Outbound::Hyper { req, on_client } => {
                        Box::pin(self.try_dyno(ex, *req, on_client, dyno)).await
                    }
                };
                match tried {
                    Ok(resp) => return resp,
                    Err((back_ex, back, e, connect_ms)) => {
                        ex = back_ex;
                        out = back;
                        last = Some((e, connect_ms));
                    }
                }
            }
            match last {
                // H19/H21 name the last dyno tried and its connect time, as Heroku's lines do.
                Some((e, connect_ms)) => {
                    let dyno = tried[..n_tried]
                        .last()
                        .and_then(|&i| app.dynos.get(i))
                        .map(|d| &*d.label);
                    let base = Outcome {
                        dyno,
                        connect_ms: Some(connect_ms),
                        ..Outcome::default()
                    };
                    error(ex, e.code(), base)
                }
                None => error(ex, Code::H21, Outcome::default()),
            }
        }
    }
}

/// A dyno's response head made the client's: headers rewritten, the client's version.
fn client_head(parts: &mut http::response::Parts, ex: &Exchange) {
    headers::rewrite_response(&mut parts.headers, &ex.request_id, false);
    parts.version = if ex.version == Version::HTTP_2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
}

/// A connection failure that is not an OS error of its own (the socket died at once).
fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

fn reset(addr: std::net::SocketAddr) -> ConnectError {
    ConnectError::Io {
        addr,
        source: std::io::ErrorKind::ConnectionReset.into(),
    }
}

/// The length of the request line the client sent (or would have, for HTTP/2).
fn request_line_len(parts: &http::request::Parts) -> usize {
    let uri = &parts.uri;
    let mut target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    if let Some(a) = uri.authority() {
        target += a.as_str().len();
    }
    if let Some(s) = uri.scheme() {
        target += s.as_str().len() + 3;
    }
    parts.method.as_str().len() + 1 + target + " HTTP/1.1".len()
}

/// An error response with its log line: the small HTML body, `Content-Type: text/html`,
/// the request id.
pub(crate) fn error(mut ex: Exchange, code: Code, base: Outcome<'_>) -> Response<ResBody> {
    let body = crate::code::html_body(code, ex.request_id.as_bytes());
    let status = code.status();
    ex.finish(Outcome {
        code: Some(code),
        status,
        // H27: the client is gone, and the page will reach no one.
        bytes: if code == Code::H27 {
            0
        } else {
            body.len() as u64
        },
        ..base
    });
    let request_id = ex.request_id.clone();
    let mut resp = Response::new(ResBody::Full {
        data: Some(body),
        _exchange: Some(ex),
    });
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if status == crate::code::CLIENT_CLOSED {
        // 499 has no standard name; hyper would write `<none>`. nginx's name for it.
        resp.extensions_mut()
            .insert(ReasonPhrase::from_static(b"Client Closed Request"));
    }
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    h.insert(X_REQUEST_ID.clone(), request_id);
    resp
}
