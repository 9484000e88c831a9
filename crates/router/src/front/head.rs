//! The client's head on the fast path, as bytes: which heads the fast path takes
//! ([`scan`]) and the dyno's head made from one ([`dyno_head`]), by the rules of
//! BEHAVIOR.md "Headers to the dyno" that `headers::rewrite_request` applies to a
//! `HeaderMap` on hyper's path. `tests/component/front.rs` checks that both give a dyno the same head.

use http::Method;

use crate::h1::limits::FAST_MAX_HEADERS;
use crate::h1::write::{push_line, push_request_line, push_u64};
use crate::headers::{self, MAX_LINE};

// One bit per header line in `Scan`'s masks.
const _: () = assert!(FAST_MAX_HEADERS <= 64);

/// What a head the fast path takes says.
#[derive(Debug)]
pub(crate) struct Scan<'b> {
    pub method: Method,
    /// The origin-form target.
    pub path: &'b str,
    /// The one Host, valid.
    pub host: &'b [u8],
    /// The first `X-Request-Id`, unchecked.
    pub request_id: Option<&'b [u8]>,
    /// `Connection: close`.
    pub close: bool,
    /// Which header lines go to the dyno as they are, by index (one bit each: a head on
    /// the fast path has at most 64 lines), so that writing the dyno's head classifies
    /// nothing again.
    kept: u64,
    /// Which lines are `X-Forwarded-For`.
    xff: u64,
    /// Which lines are `Via`.
    via: u64,
}

impl<'b> Scan<'b> {
    /// The `X-Forwarded-For` values of `req` (the head scanned), in order.
    pub(crate) fn xff_values<'a>(
        &self,
        req: &'a httparse::Request<'_, 'b>,
    ) -> impl DoubleEndedIterator<Item = &'b [u8]> + 'a {
        lines(req, self.xff)
    }
}

/// The values of the lines of `req` whose bits are set in `mask`, in order.
fn lines<'a, 'b>(
    req: &'a httparse::Request<'_, 'b>,
    mask: u64,
) -> impl DoubleEndedIterator<Item = &'b [u8]> + 'a {
    req.headers
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask >> i & 1 == 1)
        .map(|(_, h)| h.value)
}

/// How the router treats a request header on the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Sent to the dyno as is.
    Keep,
    /// Dropped (hop-by-hop) or replaced by the router's own.
    Drop,
    /// Host: kept, and counted.
    Host,
    /// `X-Request-Id`: replaced, its value maybe kept.
    RequestId,
    /// `X-Forwarded-For`: its values are joined into the router's own.
    Xff,
    /// `Via`: the same.
    Via,
    /// `Connection`: dropped; its tokens decide keep-alive.
    Connection,
    /// `Content-Length`: sent as is when it is one `0` (no body, as many clients say
    /// on GET or DELETE); anything else is a body, for hyper.
    Length,
    /// Anything that needs hyper: a body, an upgrade, `Expect`.
    Hyper,
}

/// The kind of header `name` is (case-insensitive).
pub(crate) fn kind(name: &str) -> Kind {
    let n = name.as_bytes();
    let is = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
    match n.len() {
        3 if is("via") => Kind::Via,
        4 if is("host") => Kind::Host,
        6 if is("expect") => Kind::Hyper,
        7 if is("upgrade") => Kind::Hyper,
        10 if is("connection") => Kind::Connection,
        12 if is("x-request-id") => Kind::RequestId,
        14 if is("content-length") => Kind::Length,
        15 if is("x-forwarded-for") => Kind::Xff,
        15 if is("x-request-start") => Kind::Drop,
        16 if is("x-forwarded-port") => Kind::Drop,
        17 if is("x-forwarded-proto") => Kind::Drop,
        17 if is("transfer-encoding") => Kind::Hyper,
        // The rest of the fixed hop-by-hop list (TE, Trailer, Keep-Alive, Proxy-*).
        _ if headers::is_hop_by_hop_name(n) => Kind::Drop,
        // `X_Forwarded_For` and the like, as `headers::rewrite_request` drops them.
        _ if headers::is_lookalike(n) => Kind::Drop,
        _ => Kind::Keep,
    }
}

/// Whether the fast path takes `req`, and what it says; `None` leaves it to hyper:
/// not HTTP/1.1, not origin-form, CONNECT, a line over the limit, a body (any
/// `Transfer-Encoding`, a `Content-Length` but one `0`), an upgrade,
/// `Expect`, a `Connection` naming headers, not exactly one valid Host.
pub(crate) fn scan<'b>(req: &httparse::Request<'_, 'b>) -> Option<Scan<'b>> {
    if req.version != Some(1) {
        return None;
    }
    let method = req.method?;
    // A fragment is no part of a request target (RFC 9112 §3.2); hyper's `Uri` drops it,
    // and so does this path, so that the dyno gets the path the log line shows.
    let path = req.path?.split('#').next()?;
    if !path.starts_with('/') || method.len() + path.len() + " HTTP/1.1".len() + 1 > MAX_LINE {
        return None;
    }
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    if method == Method::CONNECT || req.headers.len() > FAST_MAX_HEADERS {
        return None;
    }
    let (mut host, mut hosts, mut lengths) = (None, 0, 0);
    let mut s = Scan {
        method,
        path,
        host: b"",
        request_id: None,
        close: false,
        kept: 0,
        xff: 0,
        via: 0,
    };
    for (i, h) in req.headers.iter().enumerate() {
        let bit = 1u64 << i;
        if h.name.len() + 2 + h.value.len() > MAX_LINE {
            return None;
        }
        match kind(h.name) {
            Kind::Keep => s.kept |= bit,
            Kind::Host => {
                s.kept |= bit;
                hosts += 1;
                host = Some(h.value);
            }
            // The first one counts, as `HeaderMap::get` has it on hyper's path.
            Kind::RequestId if s.request_id.is_none() => s.request_id = Some(h.value),
            Kind::Xff => s.xff |= bit,
            Kind::Via => s.via |= bit,
            Kind::Connection => {
                for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if t.eq_ignore_ascii_case(b"close") {
                        s.close = true;
                    } else if !(t.is_empty() || t.eq_ignore_ascii_case(b"keep-alive")) {
                        // Names headers to drop, or asks for an upgrade: hyper's path.
                        return None;
                    }
                }
            }
            Kind::Length => {
                if lengths > 0 || h.value != b"0" {
                    return None;
                }
                lengths += 1;
                s.kept |= bit;
            }
            Kind::Hyper => return None,
            Kind::RequestId | Kind::Drop => {}
        }
    }
    s.host = host.filter(|h| hosts == 1 && headers::valid_host(h))?;
    Some(s)
}

/// What the router adds to a request for the dyno, as bytes (the fast path's
/// [`headers::Forward`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardBytes<'a> {
    /// The peer address (appended to X-Forwarded-For).
    pub peer: &'a [u8],
    /// Came over TLS.
    pub https: bool,
    /// The listener's port.
    pub port: &'a [u8],
    /// Unix time in ms when the request arrived.
    pub start_ms: u64,
    /// The request id.
    pub request_id: &'a [u8],
}

/// Writes the dyno's head for a scanned request into `out`: the request line, the
/// client's headers but the hop-by-hop ones and those the router sets, then the router's.
pub(crate) fn dyno_head(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    scan: &Scan<'_>,
    f: &ForwardBytes<'_>,
) {
    out.reserve(512 + req.headers.len() * 32);
    push_request_line(out, &scan.method, scan.path.as_bytes());
    for (i, h) in req.headers.iter().enumerate() {
        if scan.kept >> i & 1 == 1 {
            push_line(out, h.name.as_bytes(), h.value);
        }
    }
    let xff = (scan.xff != 0).then(|| lines(req, scan.xff));
    push_list(out, b"x-forwarded-for", xff, f.peer);
    let proto: &[u8] = if f.https { b"https" } else { b"http" };
    push_line(out, b"x-forwarded-proto", proto);
    push_line(out, b"x-forwarded-port", f.port);
    out.extend_from_slice(b"x-request-start: ");
    push_u64(out, f.start_ms);
    out.extend_from_slice(b"\r\n");
    push_line(out, b"x-request-id", f.request_id);
    let via = (scan.via != 0).then(|| lines(req, scan.via));
    push_list(out, b"via", via, headers::VIA_SELF.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `name: ` every non-empty value (trimmed) joined by `, `, then `item`: the rule of
/// `headers::rewrite_request` for X-Forwarded-For and Via.
fn push_list<'a>(
    out: &mut Vec<u8>,
    name: &[u8],
    values: Option<impl Iterator<Item = &'a [u8]>>,
    item: &[u8],
) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for v in values.into_iter().flatten() {
        let v = v.trim_ascii();
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(item);
    out.extend_from_slice(b"\r\n");
}

/// RFC 9112 §2.3: a request of a later HTTP/1 minor version (`HTTP/1.2`) is served as
/// HTTP/1.1, the highest this router speaks, as nginx and haproxy serve it; it used to be
/// refused as unparsable (400). httparse knows only 1.0 and 1.1, so the digit is rewritten in the
/// buffer itself: both paths (hyper too, should it take the connection) then read 1.1.
/// Returns whether the request line, complete or not, ended in such a version.
pub(crate) fn later_minor_as_11(buf: &mut [u8]) -> bool {
    const VERSION: &[u8] = b" HTTP/1.";
    // The request line, after the empty lines httparse skips, up to its end or the buffer's.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let mut end = buf[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |i| start + i);
    if end > start && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let Some(digit) = end.checked_sub(1) else {
        return false;
    };
    let later = (b'2'..=b'9').contains(&buf[digit])
        && digit > start + VERSION.len()
        && &buf[digit - VERSION.len()..digit] == VERSION;
    if later {
        buf[digit] = b'1';
    }
    later
}
