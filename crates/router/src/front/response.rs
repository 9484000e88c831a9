//! The client's response head and body framing, as hyper's server writes them (its
//! `role::Server::encode`): the status line with the dyno's reason phrase when it has its
//! own, the headers, `content-length` or `transfer-encoding: chunked` from what the body
//! knows, a cached `date` when the response has none, no body after HEAD, 1xx, 204, 304.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{StatusCode, header};
use hyper::body::{Body as _, Frame};
use hyper::ext::ReasonPhrase;

use crate::body::BodyError;
use crate::h1::framing::{BodyLen, SendFraming};
use crate::h1::write::{push_date, push_line, push_status_line, push_u64};
use crate::relay::ResBody;

/// Body chunks up to this size are gathered behind the head into one write; a write is
/// made once this much is gathered.
pub(crate) const GATHER: usize = 16 * 1024;

/// Writes the head of `parts` into `out`; `body` says what the body knows of its length,
/// `last` that the connection closes after it (`connection: close`, as hyper adds it).
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    head_request: bool,
    body: BodyLen,
    last: bool,
) -> SendFraming {
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
        push_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let said = Said {
        length: has_length,
        date: has_date,
    };
    finish_head(out, parts.status, head_request, body, said, last)
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
) -> SendFraming {
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
        SendFraming::None
    } else {
        SendFraming::Plain
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
                framing = SendFraming::Chunked;
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
