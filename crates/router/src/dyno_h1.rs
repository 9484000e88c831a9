//! The dyno side of a request without a body, without hyper's client: the rewritten head
//! is written straight to a pooled socket, the response head is parsed with httparse, and
//! the body is relayed from the socket by its framing (RFC 9112 §6.3, in [`body`]).
//!
//! Why: most proxied requests (GET, HEAD, DELETE, OPTIONS) carry no body, and for them
//! hyper's client machinery (a request channel, a response oneshot, a body channel, a
//! dispatcher per connection) was a fifth of the router's user-space CPU per request.
//! Requests with a body and upgrades keep the hyper client (`pool::Upstream`), which
//! streams uploads and hands over upgraded sockets.

pub(crate) mod body;
pub(crate) mod fuzz;
#[cfg(test)]
mod tests;

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::ext::ReasonPhrase;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::h1::chunked::Chunked;
use crate::h1::framing::RecvFraming;
use crate::h1::limits::{DYNO_MAX_HEAD, DYNO_MAX_HEADERS, DYNO_MAX_NAME};
use crate::h1::write::{push_line, push_request_line, push_status_line};

use crate::dial::{self, ConnectError};

/// Read buffer size, grown when a read would have less than [`MIN_READ`] room.
const READ_BUF: usize = 16 * 1024;
const MIN_READ: usize = 4 * 1024;
/// Bodies up to this size that are wholly buffered are copied out rather than split off,
/// so the read buffer stays unshared and is reused as is by the next exchange.
pub(crate) const COPY_MAX: usize = 4 * 1024;

/// One HTTP/1.1 connection to a dyno, between exchanges or in one.
#[derive(Debug)]
pub(crate) struct RawConn {
    io: TcpStream,
    /// Bytes read and not yet consumed; empty between exchanges.
    pub(crate) buf: BytesMut,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    /// Status, version and headers.
    pub parts: http::response::Parts,
    /// How the body is delimited.
    pub framing: RecvFraming,
    /// The dyno allows another request on the connection afterwards.
    pub keep_alive: bool,
}

/// Why no response head could be had. Only [`HeadError::Empty`] may be retried, and only
/// on a reused connection with a method that is safe to send twice.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    /// Closed or reset before a single byte of response (a stale keep-alive connection).
    #[error("dyno closed the connection without a response")]
    Empty,
    /// Closed or failed after part of a head.
    #[error("dyno closed the connection mid-head")]
    Incomplete(#[source] Option<io::Error>),
    /// Not valid HTTP/1.x, or over a limit.
    #[error("invalid response head: {0}")]
    Invalid(&'static str),
}

impl RawConn {
    /// Opens a connection to `addr` within `timeout`.
    pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, ConnectError> {
        let io = dial::tcp(addr, timeout).await?;
        Ok(Self {
            io,
            buf: BytesMut::with_capacity(READ_BUF),
        })
    }

    /// Whether an idle connection may carry a request: nothing unread and no close seen.
    /// Costs no syscall unless the reactor has seen the socket become readable.
    pub(crate) fn idle_ok(&self) -> bool {
        let mut probe = [0u8; 1];
        self.buf.is_empty()
            && matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes a whole request head.
    pub(crate) async fn send(&mut self, head: &[u8]) -> io::Result<()> {
        self.io.write_all(head).await
    }

    /// Reads more bytes into the buffer once the socket is readable; `Ok(0)` at EOF.
    /// Through `AsyncRead` on purpose: tokio clears the socket's readiness after a short
    /// read, so the next exchange does not begin with a read that finds nothing.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            self.buf.reserve(READ_BUF);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Reads the response head, skipping interim (1xx other than 101) responses.
    pub(crate) async fn read_head(&mut self, method: &Method) -> Result<Head, HeadError> {
        self.read_with(|buf| {
            Ok(parse_head(buf, method)?.map(|h| (!is_interim(h.parts.status)).then_some(h)))
        })
        .await
    }

    /// [`RawConn::read_head`] with the client's head written into `out` as bytes
    /// ([`parse_head_for_client`]).
    pub(crate) async fn read_head_for_client(
        &mut self,
        method: &Method,
        request_id: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<ForClient, HeadError> {
        self.read_with(|buf| parse_head_for_client(buf, method, request_id, out))
            .await
    }

    /// Reads until `parse` has a head: it returns `None` for more bytes, `Some(None)` when
    /// it consumed an interim response.
    async fn read_with<T>(
        &mut self,
        mut parse: impl FnMut(&mut BytesMut) -> Result<Option<Option<T>>, HeadError>,
    ) -> Result<T, HeadError> {
        let mut seen_any = false;
        loop {
            if !self.buf.is_empty() {
                seen_any = true;
                match parse(&mut self.buf)? {
                    Some(Some(head)) => return Ok(head),
                    Some(None) => continue,
                    None => {}
                }
            }
            match std::future::poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(0) if !seen_any => return Err(HeadError::Empty),
                Ok(0) => return Err(HeadError::Incomplete(None)),
                Ok(_) => {}
                Err(_) if !seen_any => return Err(HeadError::Empty),
                Err(e) => return Err(HeadError::Incomplete(Some(e))),
            }
        }
    }
}

/// Writes the request head for a dyno: request line, then every header as is.
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
) {
    push_request_line(out, method, target.as_bytes());
    for (name, value) in headers {
        push_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses a response head at the front of `buf` with httparse: its length, status and
/// version; `None` when more bytes are needed.
fn parse_status<'h, 'b>(
    buf: &'b [u8],
    resp: &mut httparse::Response<'h, 'b>,
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(usize, StatusCode, Version)>, HeadError> {
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(resp, buf, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len > DYNO_MAX_HEAD => {
            return Err(HeadError::Invalid("head too large"));
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > DYNO_MAX_HEAD => {
            return Err(HeadError::Invalid("head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::Invalid("too many headers")),
        Err(_) => return Err(HeadError::Invalid("not HTTP/1.x")),
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Invalid("status"))?;
    let version = if resp.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    Ok(Some((len, status, version)))
}

/// Parses one response head from the front of `buf`, consuming it; `None` when more bytes
/// are needed.
pub(crate) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; DYNO_MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let Some((len, status, version)) = parse_status(buf, &mut resp, &mut slots)? else {
        return Ok(None);
    };
    let (framing, reusable) = framing(method, status, resp.headers)?;
    let keep_alive = reusable && keep_alive(version, resp.headers);
    // One copy of the head, shared by every header value, leaves `buf` unshared.
    let head = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Invalid("header name"))?;
        let start = h.value.as_ptr() as usize - base;
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + h.value.len()))
            .map_err(|_| HeadError::Invalid("header value"))?;
        headers.append(name, value);
    }
    // The dyno's own reason phrase goes on to the client, as hyper's client path does;
    // without it hyper writes `<none>` for a status it has no name for (499, 299).
    // Rare, so the copy does not matter.
    let reason = resp
        .reason
        .filter(|r| !r.is_empty() && status.canonical_reason() != Some(*r))
        .and_then(|r| ReasonPhrase::try_from(r.as_bytes()).ok());
    bytes::Buf::advance(buf, len);
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // The coding decides the length; a Content-Length beside it must not reach the
        // client, whose framing hyper derives from the headers (RFC 9112 §6.1).
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut parts = http::Response::new(()).into_parts().0;
    if let Some(r) = reason {
        parts.extensions.insert(r);
    }
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
    }))
}

/// A 1xx response other than 101: skipped, the final one follows.
fn is_interim(status: StatusCode) -> bool {
    status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
}

/// A dyno's head written for the client by [`parse_head_for_client`].
#[derive(Debug)]
pub(crate) struct Written {
    pub status: StatusCode,
    pub framing: RecvFraming,
    /// The dyno allows another request on the connection afterwards.
    pub keep_alive: bool,
    /// The written head has a `content-length`.
    pub has_length: bool,
    /// The written head has a `date`.
    pub has_date: bool,
}

/// What [`parse_head_for_client`] made of a head.
#[derive(Debug)]
pub(crate) enum ForClient {
    /// The client's head is in the buffer given.
    Written(Written),
    /// A head whose `Connection` names other headers, parsed for `headers::rewrite_response`.
    Parts(Head),
}

/// Parses one response head from the front of `buf` like [`parse_head`], but writes the
/// client's head into `out` as bytes, without a `HeaderMap`: the status line, the dyno's
/// headers (names lowercased) but the hop-by-hop ones, and `x-request-id: request_id` in
/// place of the dyno's own; not the framing headers, `date` or the final CRLF, which the
/// client side adds (`front::response::finish_head`). These are the rules of
/// `headers::rewrite_response`, which still rewrites the rare head whose `Connection`
/// names other headers ([`ForClient::Parts`]). `Some(None)`: an interim response was
/// consumed; `None`: more bytes are needed.
pub(crate) fn parse_head_for_client(
    buf: &mut BytesMut,
    method: &Method,
    request_id: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<Option<ForClient>>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; DYNO_MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let Some((len, status, version)) = parse_status(buf, &mut resp, &mut slots)? else {
        return Ok(None);
    };
    if is_interim(status) {
        bytes::Buf::advance(buf, len);
        return Ok(Some(None));
    }
    let names_others = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| {
            !(t.is_empty()
                || t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"close")
                || t.eq_ignore_ascii_case(b"upgrade"))
        });
    if names_others {
        return Ok(parse_head(buf, method)?.map(|h| Some(ForClient::Parts(h))));
    }
    let (framing, reusable) = framing(method, status, resp.headers)?;
    let keep_alive = reusable && keep_alive(version, resp.headers);
    let coded = resp
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    // The coding decides the length (RFC 9112 §6.1); else the first Content-Length goes
    // on as hyper's server writes it (`BodyLen::keeps_length`).
    let keep_length = !coded && framing.body_len().keeps_length(method == Method::HEAD);
    // The dyno's own reason phrase goes on, as on the `HeaderMap` path.
    let reason = resp
        .reason
        .filter(|r| !r.is_empty() && status.canonical_reason() != Some(*r));
    out.clear();
    push_status_line(out, status, reason.map(str::as_bytes));
    let (mut has_length, mut has_date, mut id_written) = (false, false, false);
    for h in resp.headers.iter() {
        if h.name.len() >= DYNO_MAX_NAME {
            return Err(HeadError::Invalid("header name"));
        }
        let name = h.name.as_bytes();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if crate::headers::is_hop_by_hop_name(name) {
            continue;
        }
        if is("x-request-id") {
            // Ours, where the dyno's first one was (as `HeaderMap::insert` puts it).
            if !id_written {
                id_written = true;
                push_line(out, b"x-request-id", request_id);
            }
            continue;
        }
        if is("content-length") {
            if has_length || !keep_length {
                continue;
            }
            has_length = true;
        } else if is("date") {
            has_date = true;
        }
        let at = out.len();
        out.extend_from_slice(name);
        out[at..].make_ascii_lowercase();
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if !id_written {
        push_line(out, b"x-request-id", request_id);
    }
    bytes::Buf::advance(buf, len);
    Ok(Some(Some(ForClient::Written(Written {
        status,
        framing,
        keep_alive,
        has_length,
        has_date,
    }))))
}

/// The body's framing, and whether the connection can be reused after it (RFC 9112 §6.3).
fn framing(
    method: &Method,
    status: StatusCode,
    headers: &[httparse::Header<'_>],
) -> Result<(RecvFraming, bool), HeadError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((RecvFraming::Empty, true));
    }
    // One pass: the last Transfer-Encoding, and the Content-Length values, whose errors
    // count only when no coding overrides them.
    let (mut coding, mut has_length) = (None, false);
    let mut length: Result<Option<u64>, HeadError> = Ok(None);
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coding = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            has_length = true;
            if let Ok(seen) = length {
                length = content_length(seen, h.value);
            }
        }
    }
    if let Some(last) = coding {
        // Chunked must be the last coding; anything else runs until close. A
        // Content-Length beside it is ignored, and the connection is not reused.
        let last = last.rsplit(|&b| b == b',').next().map(<[u8]>::trim_ascii);
        let chunked = last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            (RecvFraming::Chunked(Chunked::default()), !has_length)
        } else {
            (RecvFraming::Close, false)
        });
    }
    let length = length?;
    Ok(match length {
        Some(0) => (RecvFraming::Empty, true),
        Some(n) => (RecvFraming::Length(n), true),
        None => (RecvFraming::Close, false),
    })
}

/// The length so far (`seen`) with one more Content-Length value, a list of equal
/// numbers (RFC 9110 §8.6).
fn content_length(mut seen: Option<u64>, value: &[u8]) -> Result<Option<u64>, HeadError> {
    for item in value.split(|&b| b == b',') {
        let n = parse_length(item.trim_ascii()).ok_or(HeadError::Invalid("content-length"))?;
        if seen.is_some_and(|l| l != n) {
            return Err(HeadError::Invalid("conflicting content-length"));
        }
        seen = Some(n);
    }
    Ok(seen)
}

fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Whether the dyno keeps the connection open: HTTP/1.1 unless `Connection: close`,
/// HTTP/1.0 only with `Connection: keep-alive`.
fn keep_alive(version: Version, headers: &[httparse::Header<'_>]) -> bool {
    let has = |token: &[u8]| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .any(|h| {
                h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
            })
    };
    if version == Version::HTTP_11 {
        !has(b"close")
    } else {
        has(b"keep-alive")
    }
}
