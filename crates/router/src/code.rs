//! The Heroku-style error codes of BEHAVIOR.md "Timeouts and error codes": status,
//! description for the log line, and the small HTML body every error response carries.

use bytes::Bytes;
use http::StatusCode;

/// One router error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// No first response byte within `timeouts.response`.
    H12,
    /// The dyno closed the connection without a response.
    H13,
    /// The app has no web dynos.
    H14,
    /// The dyno was idle for `timeouts.idle` during the response.
    H15,
    /// The dyno closed the connection mid-response.
    H18,
    /// Connect timeout, after retries.
    H19,
    /// Connection refused, after retries.
    H21,
    /// The dyno's response broke a limit or is not valid HTTP.
    H25,
    /// The request is malformed (400).
    H26,
    /// The request carried an unsupported `Expect` (417, logged as H26).
    H26Expect,
    /// The request's `Transfer-Encoding` names a coding other than chunked (501, logged
    /// as H26).
    H26Coding,
    /// An HTTP/2 connection's requests in flight hold more decoded header bytes than the
    /// router allows one connection (431, logged as H26).
    H26TooLarge,
    /// The client closed the connection before the response.
    H27,
    /// The client was idle for `timeouts.idle` while sending.
    H28,
    /// The client IP is not in the app's `trusted` ranges.
    S10,
    /// No such app on this listener.
    S11,
}

/// Every code, for metrics rendering.
pub const ALL: [Code; 16] = [
    Code::H12,
    Code::H13,
    Code::H14,
    Code::H15,
    Code::H18,
    Code::H19,
    Code::H21,
    Code::H25,
    Code::H26,
    Code::H26Expect,
    Code::H26Coding,
    Code::H26TooLarge,
    Code::H27,
    Code::H28,
    Code::S10,
    Code::S11,
];

/// Status 499: the client went away (H27/H28), as nginx logs it.
pub const CLIENT_CLOSED: u16 = 499;

impl Code {
    /// The code as logged (`H26` for both H26 variants).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::H12 => "H12",
            Self::H13 => "H13",
            Self::H14 => "H14",
            Self::H15 => "H15",
            Self::H18 => "H18",
            Self::H19 => "H19",
            Self::H21 => "H21",
            Self::H25 => "H25",
            Self::H26 | Self::H26Expect | Self::H26Coding | Self::H26TooLarge => "H26",
            Self::H27 => "H27",
            Self::H28 => "H28",
            Self::S10 => "S10",
            Self::S11 => "S11",
        }
    }

    /// The log line's `desc`.
    pub const fn desc(self) -> &'static str {
        match self {
            Self::H12 => "Request timeout",
            Self::H13 => "Connection closed without response",
            Self::H14 => "No web processes running",
            Self::H15 => "Idle connection",
            Self::H18 => "Server Request Interrupted",
            Self::H19 => "Backend connection timeout",
            Self::H21 => "Backend connection refused",
            Self::H25 => "HTTP Restriction",
            Self::H26 => "Request Error",
            Self::H26Expect => "Unsupported Expect",
            Self::H26Coding => "Unsupported transfer coding",
            Self::H26TooLarge => "Request header fields too large",
            Self::H27 => "Client Request Interrupted",
            Self::H28 => "Client Connection Idle",
            Self::S10 => "Forbidden by app trusted ranges",
            Self::S11 => "No such app",
        }
    }

    /// The status sent (or, for H15/H18/H27/H28, logged).
    pub const fn status(self) -> u16 {
        match self {
            Self::H25 => 502,
            Self::H26 => 400,
            Self::H26Expect => 417,
            Self::H26Coding => 501,
            Self::H26TooLarge => 431,
            Self::H27 | Self::H28 => CLIENT_CLOSED,
            Self::S10 => 403,
            Self::S11 => 404,
            _ => 503,
        }
    }

    /// Whether the line is a warning (the client's doing) rather than an error.
    pub const fn is_warning(self) -> bool {
        matches!(self, Self::H27 | Self::H28)
    }

    /// A dense index, for per-code counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The small HTML body of an error response: the status, the code and the request id.
pub fn html_body(code: Code, request_id: &[u8]) -> Bytes {
    html_page(code.status(), code, request_id)
}

/// [`html_body`] for a status other than the code's own (hyper's 414 and 431, logged H26).
pub(crate) fn html_page(status: u16, code: Code, request_id: &[u8]) -> Bytes {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let reason = status.canonical_reason().unwrap_or("Error");
    let id = String::from_utf8_lossy(request_id);
    let mut s = String::with_capacity(256);
    s.push_str("<!DOCTYPE html>\n<html><head><title>");
    s.push_str(reason);
    s.push_str("</title></head><body><h1>");
    s.push_str(status.as_str());
    s.push(' ');
    s.push_str(reason);
    s.push_str("</h1><p>");
    s.push_str(code.as_str());
    s.push_str(": ");
    s.push_str(code.desc());
    s.push_str("</p><p>Request ID: ");
    // The id is validated or generated ([A-Za-z0-9+/=-]), so it needs no escaping.
    s.push_str(&id);
    s.push_str("</p></body></html>\n");
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_table() {
        assert_eq!(Code::H12.status(), 503);
        assert_eq!(Code::H25.status(), 502);
        assert_eq!(Code::H26.status(), 400);
        assert_eq!(Code::H26Expect.status(), 417);
        assert_eq!(Code::H26Expect.as_str(), "H26");
        assert_eq!(Code::H27.status(), 499);
        assert_eq!(Code::S10.status(), 403);
        assert_eq!(Code::S11.status(), 404);
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn body_carries_id_and_code() {
        let b = html_body(Code::H12, b"abc-123");
        let s = std::str::from_utf8(&b).unwrap();
        assert!(s.contains("abc-123") && s.contains("H12") && s.contains("503"));
    }
}
