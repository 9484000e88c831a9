//! How an HTTP/1.1 body is delimited: [`SendFraming`] as the client side writes a response,
//! [`RecvFraming`] as the dyno side reads one, and [`BodyLen`], what a body says of its
//! length, which both sides turn into a head's `content-length` the way hyper's server
//! does.

use hyper::body::Body;

use super::chunked::Chunked;
use super::write::push_hex;

/// How a body goes on the wire, as the sender writes it (the client side's; the dyno
/// side reads with [`RecvFraming`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFraming {
    /// None is sent (HEAD, 1xx, 204, 304).
    None,
    /// As it comes: `content-length` says where it ends.
    Plain,
    /// Chunked coding.
    Chunked,
}

impl SendFraming {
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
    pub(crate) fn of<B: Body>(body: &B) -> Self {
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

/// How a received response body is delimited (RFC 9112 §6.3), as the reader follows it
/// (the dyno side's; the client side writes with [`SendFraming`]).
#[derive(Debug)]
pub(crate) enum RecvFraming {
    /// No body: a response to HEAD, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// Until the dyno closes the connection (then not reusable).
    Close,
}

impl RecvFraming {
    /// What a body of this framing says of its length (as `RawRelay` reports it).
    pub(crate) fn body_len(&self) -> BodyLen {
        match self {
            Self::Empty | Self::Length(0) => BodyLen::Empty,
            Self::Length(n) => BodyLen::Known(*n),
            Self::Chunked(_) | Self::Close => BodyLen::Unknown,
        }
    }
}
