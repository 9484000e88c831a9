//! The proxy's own answers: an error with a plain-text body (as raw bytes for the first
//! request, which is read without hyper, and as a hyper response for later ones: both
//! say the same), and the graceful close after a refusal.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The challenge a 407 carries.
const CHALLENGE: &str = "Basic realm=\"spaced egress\"";

/// Writes an error response and closes gracefully: our half first, then what the client
/// still sends is read and dropped for a moment, so that closing with unread bytes does
/// not reset the connection and destroy the response before the client has read it.
pub(super) async fn refuse(stream: &mut TcpStream, response: &[u8]) {
    if stream.write_all(response).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    // On the heap: an array here would be part of every connection task's state (this
    // future is inlined into it), which the runtime moves when it spawns the task.
    let mut sink = vec![0u8; 4096];
    let drain = async {
        let mut total = 0usize;
        while total < 256 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A complete error response that closes the connection.
pub(super) fn error_response(status: u16, detail: &str) -> Vec<u8> {
    let reason = reason(status);
    let body = body(status, detail);
    let auth = if status == 407 {
        format!("Proxy-Authenticate: {CHALLENGE}\r\n")
    } else {
        String::new()
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// [`error_response`] for hyper (a request after the connection's first).
pub(super) fn error(status: u16, detail: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body(status, detail))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if status == 407 {
        h.insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
    }
    resp
}

fn body(status: u16, detail: &str) -> String {
    format!("{status} {}: {detail}\n", reason(status))
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses() {
        let r = String::from_utf8(error_response(407, "wrong egress credentials")).unwrap();
        assert!(r.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"));
        assert!(r.contains("Proxy-Authenticate: Basic"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let r = String::from_utf8(error_response(403, "x")).unwrap();
        assert!(!r.contains("Proxy-Authenticate"));
        for s in [400, 403, 407, 431, 501, 502, 503, 504, 505, 599] {
            assert!(!reason(s).is_empty());
        }
    }
}
