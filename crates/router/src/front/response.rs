//! The client's response head and body framing, as hyper's server writes them (its
//! `role::Server::encode`): the status line with the dyno's reason phrase when it has its
//! own, the headers, `content-length` or `transfer-encoding: chunked` from what the body
//! knows, a cached `date` when the response has none, no body after HEAD, 1xx, 204, 304.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::{StatusCode, header};
use hyper::body::{Body as _, Frame};
use hyper::ext::ReasonPhrase;

use crate::body::{BodyError, ResBody};

/// Body chunks up to this size are gathered behind the head into one write; a write is
/// made once this much is gathered.
pub(crate) const GATHER: usize = 16 * 1024;

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// None is sent (HEAD, 1xx, 204, 304).
    None,
    /// As it comes: `content-length` says where it ends.
    Plain,
    /// Chunked coding.
    Chunked,
}

impl Framing {
    pub(crate) fn has_body(self) -> bool {
        self != Self::None
    }

    pub(crate) fn chunk_prefix(self, out: &mut Vec<u8>, len: usize) {
        if self == Self::Chunked && len > 0 {
            push_hex(out, len);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub(crate) fn chunk_suffix(self, out: &mut Vec<u8>) {
        if self == Self::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The end of the body.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        if self == Self::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
}

/// What a response body says of its length, as hyper's server asks it: over already (or
/// empty), an exact length, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLen {
    /// Nothing to send (`is_end_stream`).
    Empty,
    /// Exactly this many bytes.
    Known(u64),
    /// Unknown: chunked coding.
    Unknown,
}

impl BodyLen {
    /// The length of `body`.
    pub(crate) fn of(body: &ResBody) -> Self {
        if body.is_end_stream() {
            return Self::Empty;
        }
        body.size_hint().exact().map_or(Self::Unknown, Self::Known)
    }

    /// Whether the head's first `content-length` goes on, as hyper's server decides: not
    /// when the body is empty and the request not HEAD (the length is then said after,
    /// as `0`, where the status allows one). Later ones never do: one length is enough,
    /// and a repeated one is refused by strict clients (llhttp).
    pub(crate) fn keeps_length(self, head_request: bool) -> bool {
        head_request || self != Self::Empty
    }
}

/// Writes the head of `parts` into `out`; `body` says what the body knows of its length,
/// `last` that the connection closes after it (`connection: close`, as hyper adds it).
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    head_request: bool,
    body: BodyLen,
    last: bool,
) -> Framing {
    let reason = parts.extensions.get::<ReasonPhrase>();
    push_status_line(out, parts.status, reason.map(ReasonPhrase::as_bytes));
    let keep_length = body.keeps_length(head_request);
    let mut has_length = false;
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            if has_length || !keep_length {
                continue;
            }
            has_length = true;
        } else if name == header::DATE {
            has_date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let said = Said {
        length: has_length,
        date: has_date,
    };
    finish_head(out, parts.status, head_request, body, said, last)
}

/// `HTTP/1.1 <status> <reason>`: the given reason phrase, else the status's own (hyper
/// writes `<none>` for a status without one).
pub(crate) fn push_status_line(out: &mut Vec<u8>, status: StatusCode, reason: Option<&[u8]>) {
    if status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match reason {
        Some(r) => out.extend_from_slice(r),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// What a head's own headers already say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Said {
    /// `content-length`.
    pub length: bool,
    /// `date`.
    pub date: bool,
}

/// Ends a head whose status line and headers are in `out`: `connection: close` when
/// `last`, the body's length or chunked coding unless the head `said` one, a `date`
/// unless it said one, the blank line. Returns how the body goes on the wire.
pub(crate) fn finish_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    head_request: bool,
    body: BodyLen,
    said: Said,
    last: bool,
) -> Framing {
    if last {
        // The router's headers never include `connection` (hop-by-hop, stripped).
        out.extend_from_slice(b"connection: close\r\n");
    }
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // 1xx, 204 and 304 never say a length; a HEAD response says the GET's when it knows it.
    let may_say_length = !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    let mut framing = if bodiless {
        Framing::None
    } else {
        Framing::Plain
    };
    if !said.length {
        let length = match body {
            BodyLen::Empty => Some(0),
            BodyLen::Known(n) => Some(n),
            BodyLen::Unknown => None,
        };
        match length {
            Some(n) if may_say_length && !(n == 0 && head_request) => {
                out.extend_from_slice(b"content-length: ");
                push_u64(out, n);
                out.extend_from_slice(b"\r\n");
            }
            Some(_) => {}
            None if bodiless => {}
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                framing = Framing::Chunked;
            }
        }
    }
    if !said.date {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// The body's next frame if it is ready now; `None` when it would wait.
pub(crate) fn poll_once(body: &mut ResBody) -> Option<Option<Result<Frame<Bytes>, BodyError>>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(f) => Some(f),
        Poll::Pending => None,
    }
}

/// The body's next frame.
pub(crate) async fn next_frame(body: &mut ResBody) -> Option<Result<Frame<Bytes>, BodyError>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_hex(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        // Upper case, as hyper writes chunk sizes.
        digits[i] = b"0123456789ABCDEF"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

thread_local! {
    /// The `date` value of the current second, per worker thread (as hyper caches it).
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [b' '; 29])) };
}

/// Appends the current time as an IMF-fixdate (RFC 9110 §5.6.7).
fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let Ok(mut d) = cell.try_borrow_mut() else {
            out.extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            return;
        };
        if d.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if let Ok(bytes) = <[u8; 29]>::try_from(text.as_bytes()) {
                *d = (secs, bytes);
            } else {
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&d.1);
    });
}
