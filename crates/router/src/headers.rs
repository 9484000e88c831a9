//! Header rules of BEHAVIOR.md "Headers to the dyno": request limits, the request id, the
//! forwarding headers, and hop-by-hop removal in both directions. Pure functions over a
//! `HeaderMap`; they allocate only when a value must be built (an appended list, a new id).

use std::io::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Longest request line and header line, in bytes.
pub const MAX_LINE: usize = 8192;
/// Most header lines in a request.
pub const MAX_HEADERS: usize = 1000;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Request-Start`.
pub static X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Port`.
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub(crate) const VIA_SELF: &str = "1.1 spaced";

/// Why a request head is refused (all 400, code H26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The request line is longer than [`MAX_LINE`].
    #[error("request line longer than {MAX_LINE} bytes")]
    RequestLine,
    /// A header line is longer than [`MAX_LINE`].
    #[error("header line longer than {MAX_LINE} bytes")]
    HeaderLine,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// More than one Host header.
    #[error("more than one host header")]
    DuplicateHost,
    /// Content-Length values that disagree or do not parse.
    #[error("conflicting content-length")]
    ContentLength,
    /// A Host that is no `host[:port]` (RFC 9112 §3.2 asks for 400).
    #[error("invalid host header")]
    InvalidHost,
}

/// Checks the limits of a parsed request head. `request_line` is the length of the request
/// line as the client could have sent it (method, target, version).
///
/// # Errors
/// The first limit broken.
pub fn check_limits(request_line: usize, headers: &HeaderMap) -> Result<(), Malformed> {
    if request_line > MAX_LINE {
        return Err(Malformed::RequestLine);
    }
    if headers.len() > MAX_HEADERS {
        return Err(Malformed::TooManyHeaders);
    }
    for (name, value) in headers {
        // "name: value" without the CRLF.
        if name.as_str().len() + 2 + value.len() > MAX_LINE {
            return Err(Malformed::HeaderLine);
        }
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    if let Some(host) = hosts.next()
        && !valid_host(host.as_bytes())
    {
        return Err(Malformed::InvalidHost);
    }
    if hosts.next().is_some() {
        return Err(Malformed::DuplicateHost);
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let first = parse_content_length(first).ok_or(Malformed::ContentLength)?;
        for v in lengths {
            if parse_content_length(v) != Some(first) {
                return Err(Malformed::ContentLength);
            }
        }
    }
    Ok(())
}

/// Whether a Host value is `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a name
/// or IPv4 address of unreserved, sub-delim and `%` characters, or a bracketed IPv6
/// literal, then an optional port of digits. Empty is valid (a target without authority)
/// and routes nowhere. Anything else (`api.test:abc`, `a/b`, a space) would be routed by
/// the part before the colon while the dyno gets the whole value, so it is refused.
pub fn valid_host(v: &[u8]) -> bool {
    let port = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        match &rest[end + 1..] {
            [] => return true,
            [b':', port @ ..] => port,
            _ => return false,
        }
    } else {
        let (name, port) = match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &[][..]),
        };
        let name_char = |b: u8| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        };
        if !name.iter().all(|&b| name_char(b)) {
            return false;
        }
        port
    };
    port.iter().all(u8::is_ascii_digit)
}

fn parse_content_length(v: &HeaderValue) -> Option<u64> {
    let s = v.to_str().ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether a client's `X-Request-Id` is kept: 20–200 characters of `[A-Za-z0-9+/=-]`.
pub fn valid_request_id(v: &[u8]) -> bool {
    (20..=200).contains(&v.len())
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-'))
}

/// The request id for a request: the client's when valid, else a new UUID v4.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(v) if valid_request_id(v.as_bytes()) => v.clone(),
        _ => new_request_id(),
    }
}

/// A new UUID v4 as a header value.
pub fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let s = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(
        "00000000-0000-4000-8000-000000000000",
    ))
}

/// What `Expect` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No `Expect` header.
    None,
    /// `100-continue`: honoured by the server side when the body is first read.
    Continue,
    /// Anything else: 417.
    Unsupported,
}

/// Classifies the `Expect` header(s).
pub fn expect(headers: &HeaderMap) -> Expect {
    let mut out = Expect::None;
    for v in headers.get_all(header::EXPECT) {
        if v.as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"100-continue")
        {
            out = Expect::Continue;
        } else {
            return Expect::Unsupported;
        }
    }
    out
}

/// Whether the request asks for a protocol upgrade (`Upgrade` plus `Connection: upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

/// Whether the client's connection ends after this request's response (RFC 9112 §9.3, as
/// hyper decides it): `Connection: close`, or HTTP/1.0 without `keep-alive`.
pub fn closes_connection(version: http::Version, headers: &HeaderMap) -> bool {
    match version {
        http::Version::HTTP_10 | http::Version::HTTP_09 => !connection_has(headers, "keep-alive"),
        http::Version::HTTP_11 => connection_has(headers, "close"),
        _ => false,
    }
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Removes hop-by-hop headers: those named by `Connection`, then `Connection`, Keep-Alive,
/// TE, Trailer, Transfer-Encoding, Proxy-*, and `Upgrade` unless `upgrade` (then
/// `Connection: upgrade` is set again, since the next hop needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the names (standard ones compare without hashing) finds which of the
    // fixed list are present, so only those pay a hashed removal; most heads have one
    // (`Connection: keep-alive`) or none.
    let mut present = Hop::default();
    for n in headers.keys() {
        present.note(n);
    }
    if present.connection {
        // The usual values name nothing beyond the fixed list; only collect otherwise.
        let only_usual = headers.get_all(header::CONNECTION).iter().all(|v| {
            v.as_bytes().split(|&b| b == b',').all(|t| {
                let t = t.trim_ascii();
                t.is_empty()
                    || t.eq_ignore_ascii_case(b"keep-alive")
                    || t.eq_ignore_ascii_case(b"close")
                    || t.eq_ignore_ascii_case(b"upgrade")
            })
        });
        if !only_usual {
            let named: Vec<HeaderName> = headers
                .get_all(header::CONNECTION)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
                .filter(|n| !is_end_to_end(n))
                .collect();
            for n in named {
                if !(upgrade && n == header::UPGRADE) {
                    headers.remove(n);
                }
            }
        }
        headers.remove(header::CONNECTION);
    }
    if present.keep_alive {
        headers.remove(&KEEP_ALIVE);
    }
    if present.te {
        headers.remove(header::TE);
    }
    if present.trailer {
        headers.remove(header::TRAILER);
    }
    if present.transfer_encoding {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if present.upgrade {
        headers.remove(header::UPGRADE);
    }
    if present.proxy {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_proxy_header(n))
            .cloned()
            .collect();
        for n in proxy {
            headers.remove(n);
        }
    }
}

/// Headers `Connection` may never name (issue 19): Host and Content-Length frame and route
/// the message, and the router's own forwarding headers are what the dyno relies on. A
/// client naming them would strip them after the router chose the app (the dyno then
/// falls back to its default virtual host) or after it appended to them. Kept whatever
/// `Connection` says, as Envoy does for Host and its own headers.
fn is_end_to_end(n: &HeaderName) -> bool {
    *n == header::HOST
        || *n == header::CONTENT_LENGTH
        || *n == header::VIA
        || *n == X_FORWARDED_FOR
        || *n == X_FORWARDED_PROTO
        || *n == X_FORWARDED_PORT
        || *n == X_REQUEST_ID
        || *n == X_REQUEST_START
}

/// The headers the router sets or relies on whose names have a `-` that an `_` can stand
/// for (lower-case). WSGI, Rack and CGI read `X_Forwarded_For` as `X-Forwarded-For`
/// (both become `HTTP_X_FORWARDED_FOR`), so a client's underscore look-alike would reach a
/// dyno as if the router had set it.
const LOOKALIKE_OF: [&str; 7] = [
    "x-request-id",
    "content-length",
    "x-forwarded-for",
    "x-request-start",
    "x-forwarded-port",
    "x-forwarded-proto",
    "transfer-encoding",
];

/// Whether `name` (any case) is an underscore look-alike of a header in
/// [`LOOKALIKE_OF`]: the same name with at least one `-` written `_`. Dropped from
/// requests on every path, as nginx drops every header with an underscore by default.
pub(crate) fn is_lookalike(name: &[u8]) -> bool {
    // Lengths first: most names end here without a byte compared.
    if !matches!(name.len(), 12 | 14..=17) || !name.contains(&b'_') {
        return false;
    }
    LOOKALIKE_OF.iter().any(|h| {
        h.len() == name.len()
            && h.bytes()
                .zip(name)
                .all(|(a, &b)| a == b.to_ascii_lowercase() || (a == b'-' && b == b'_'))
    })
}

/// Whether the request's `Transfer-Encoding` names a coding other than `chunked`
/// (`gzip, chunked`): the router would forward the body de-chunked but still coded, and
/// say nothing of the coding, so it answers 501 as RFC 9112 §6.1 suggests for a coding it
/// does not understand. (A coding list whose last is not `chunked` never gets here:
/// hyper's parser answers it 400, RFC 9112 §6.3.)
pub fn unsupported_coding(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| {
            let t = t.trim_ascii();
            !t.is_empty() && !t.eq_ignore_ascii_case(b"chunked")
        })
    })
}

/// Which hop-by-hop headers a head has.
#[derive(Default)]
struct Hop {
    connection: bool,
    keep_alive: bool,
    te: bool,
    trailer: bool,
    transfer_encoding: bool,
    upgrade: bool,
    proxy: bool,
}

impl Hop {
    fn note(&mut self, n: &HeaderName) {
        if *n == header::CONNECTION {
            self.connection = true;
        } else if *n == header::TE {
            self.te = true;
        } else if *n == header::TRAILER {
            self.trailer = true;
        } else if *n == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if *n == header::UPGRADE {
            self.upgrade = true;
        } else if *n == KEEP_ALIVE {
            self.keep_alive = true;
        } else if is_proxy_header(n) {
            self.proxy = true;
        }
    }
}

/// Whether a header named `name` (any case) is hop-by-hop whatever `Connection` names:
/// the fixed list of [`strip_hop_by_hop`], for heads rewritten as bytes.
pub(crate) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let fixed = match name.len() {
        2 => is("te"),
        7 => is("upgrade") || is("trailer"),
        10 => is("connection") || is("keep-alive"),
        17 => is("transfer-encoding"),
        _ => false,
    };
    fixed || (name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"proxy-"))
}

fn is_proxy_header(n: &HeaderName) -> bool {
    n.as_str().starts_with("proxy-")
}

/// What the router adds to a request for the dyno.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    /// The peer address as a header value (appended to X-Forwarded-For).
    pub peer: &'a HeaderValue,
    /// `true` on TLS listeners.
    pub https: bool,
    /// The listener's port as a header value.
    pub port: &'a HeaderValue,
    /// Unix time in ms when the request arrived.
    pub start_ms: u64,
    /// The request id.
    pub request_id: &'a HeaderValue,
    /// The request is an upgrade.
    pub upgrade: bool,
}

/// Rewrites a client's request headers for the dyno (hop-by-hop removal, underscore
/// look-alikes of the router's headers, forwarding headers, request id, Via). `Expect` is
/// removed: the router itself answers it.
pub fn rewrite_request(headers: &mut HeaderMap, f: &Forward<'_>) {
    strip_hop_by_hop(headers, f.upgrade);
    if headers.keys().any(|n| is_lookalike(n.as_str().as_bytes())) {
        let lookalikes: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_lookalike(n.as_str().as_bytes()))
            .cloned()
            .collect();
        for n in lookalikes {
            headers.remove(n);
        }
    }
    headers.remove(header::EXPECT);
    // Usually absent: then the per-connection value is shared, not copied.
    let xff = if headers.contains_key(&X_FORWARDED_FOR) {
        append_list(headers, &X_FORWARDED_FOR, f.peer.as_bytes())
    } else {
        f.peer.clone()
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    let proto = if f.https { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    headers.insert(X_FORWARDED_PORT.clone(), f.port.clone());
    headers.insert(X_REQUEST_START.clone(), HeaderValue::from(f.start_ms));
    headers.insert(X_REQUEST_ID.clone(), f.request_id.clone());
    let via = append_list(headers, &header::VIA, VIA_SELF.as_bytes());
    headers.insert(header::VIA, via);
}

/// Rewrites a dyno's response headers for the client.
pub fn rewrite_response(headers: &mut HeaderMap, request_id: &HeaderValue, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

/// Every value of `name` joined by `, `, then `item` appended; a fresh value when absent.
fn append_list(headers: &HeaderMap, name: &HeaderName, item: &[u8]) -> HeaderValue {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return HeaderValue::from_maybe_shared(Bytes::copy_from_slice(item))
            .unwrap_or(HeaderValue::from_static(""));
    }
    let mut buf = Vec::with_capacity(64 + item.len());
    for v in values {
        let v = v.as_bytes().trim_ascii();
        if v.is_empty() {
            continue;
        }
        buf.extend_from_slice(v);
        buf.extend_from_slice(b", ");
    }
    buf.extend_from_slice(item);
    HeaderValue::from_maybe_shared(Bytes::from(buf)).unwrap_or(HeaderValue::from_static(""))
}

/// An address as a header value (computed once per connection).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    let mut buf = Vec::with_capacity(46);
    let _ = write!(buf, "{ip}");
    HeaderValue::from_maybe_shared(Bytes::from(buf)).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests;
