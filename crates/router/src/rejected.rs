//! Request heads hyper refuses itself. hyper answers a head it cannot parse (bad syntax,
//! conflicting `Content-Length`, a head over the buffer) before any request reaches the
//! router, with an empty body and no request id, and offers no hook to change that. The
//! spec wants every error response to carry the small HTML page and the request id, so the
//! client socket's wrapper ([`crate::conn`]) recognises that automatic answer on its way out
//! and sends ours in its place. Ours is always H26's 400: the spec's table gives a broken
//! limit that status, whether hyper noticed it (414, 431) or the router did (400).
//!
//! Recognising it is safe because of when hyper writes it: only while no request is in
//! flight and after everything before it was flushed (hyper parses the next head only once
//! the previous response has left), and only in its fixed shape (a status line of 400, 414
//! or 431 and no header besides `content-length: 0`, `date` and `connection`). Every
//! response of the router carries `x-request-id`, so none of them has that shape; bytes of
//! an upgraded connection are never looked at.

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

use crate::code::Code;

/// Longest head hyper's automatic answer can have (status line, length, date, connection).
const MAX_AUTO_HEAD: usize = 256;

/// The status of hyper's automatic answer to an unparsable head, if `out` is exactly that.
pub(crate) fn auto_status(out: &[u8]) -> Option<u16> {
    if out.len() > MAX_AUTO_HEAD || !out.ends_with(b"\r\n\r\n") {
        return None;
    }
    let rest = out
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| out.strip_prefix(b"HTTP/1.0 "))?;
    let status = match rest.get(..4)? {
        b"400 " => 400,
        b"414 " => 414,
        b"431 " => 431,
        _ => return None,
    };
    // Every line, the status line too, ends with CRLF; the head's final CRLF is dropped.
    let mut lines = rest[..rest.len() - 2].split_inclusive(|&b| b == b'\n');
    lines.next()?.strip_suffix(b"\r\n")?;
    lines.try_for_each(|line| {
        let line = line.strip_suffix(b"\r\n")?;
        let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
        let value = value[1..].trim_ascii();
        let allowed = match name.to_ascii_lowercase().as_slice() {
            b"content-length" => value == b"0",
            b"date" | b"connection" => true,
            _ => false,
        };
        allowed.then_some(())
    })?;
    Some(status)
}

/// Our answer in place of hyper's `auto` (whose HTTP version and `date` it keeps): 400 with
/// the HTML page and the request id, and `connection: close`, as hyper closes after it.
/// Returns the bytes to send and the body's length (for the log line).
pub(crate) fn replacement(auto: &[u8], request_id: &HeaderValue) -> (Bytes, u64) {
    let body = crate::code::html_body(Code::H26, request_id.as_bytes());
    let mut out = BytesMut::with_capacity(auto.len() + body.len() + 128);
    let mut lines = auto.split_inclusive(|&b| b == b'\n');
    let version = match lines.next() {
        Some(line) if line.starts_with(b"HTTP/1.0 ") => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    out.put_slice(version.as_bytes());
    out.put_slice(b" 400 Bad Request\r\n");
    out.put_slice(b"content-type: text/html\r\ncontent-length: ");
    out.put_slice(body.len().to_string().as_bytes());
    out.put_slice(b"\r\nx-request-id: ");
    out.put_slice(request_id.as_bytes());
    out.put_slice(b"\r\nconnection: close\r\n");
    for line in lines {
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"date:") {
            out.put_slice(line);
        }
    }
    out.put_slice(b"\r\n");
    out.put_slice(&body);
    (out.freeze(), body.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 07:00:00 GMT\r\n\r\n";

    #[test]
    fn recognises_only_the_automatic_shape() {
        assert_eq!(auto_status(HYPER_400), Some(400));
        assert_eq!(
            auto_status(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            ),
            Some(431)
        );
        assert_eq!(
            auto_status(
                b"HTTP/1.0 414 URI Too Long\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"
            ),
            Some(414)
        );
        for other in [
            // Ours: always an id, a type, a body.
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\nx-request-id: abc\r\ncontent-length: 9\r\n\r\n".as_slice(),
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nno-colon\r\n\r\n",
            b"HTTP/1.1 400",
            b"",
        ] {
            assert_eq!(auto_status(other), None, "{}", String::from_utf8_lossy(other));
        }
        let long = [HYPER_400, &[b' '; MAX_AUTO_HEAD]].concat();
        assert_eq!(auto_status(&long), None);
    }

    #[test]
    fn replacement_is_400_with_the_date_and_the_page() {
        let id = HeaderValue::from_static("0b0e2a3c-5d4e-4f60-8a9b-0c1d2e3f4a5b");
        let (out, body_len) = replacement(HYPER_400, &id);
        let text = std::str::from_utf8(&out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: text/html\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\ncontent-length: {body_len}\r\n")),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nx-request-id: {}\r\n", id.to_str().unwrap())));
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(
            head.ends_with("\r\ndate: Sun, 29 Nov 2026 07:00:00 GMT"),
            "{head}"
        );
        assert_eq!(body.len() as u64, body_len);
        assert!(
            body.contains("H26") && body.contains(id.to_str().unwrap()),
            "{body}"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes: no panic, and a match always has one of the three statuses.
            #[test]
            fn arbitrary_output_never_panics(out in proptest::collection::vec(any::<u8>(), 0..300)) {
                if let Some(status) = auto_status(&out) {
                    prop_assert!([400, 414, 431].contains(&status));
                }
            }

            /// Whatever hyper's answer looks like (version, status, date, connection), ours
            /// parses as one complete 400 response of that version, with its length right.
            #[test]
            fn replacement_is_one_valid_response(
                v10 in any::<bool>(),
                status in prop::sample::select(vec![400u16, 414, 431]),
                date in "[A-Za-z0-9 ,:]{0,40}",
                close in any::<bool>(),
            ) {
                let reason = match status { 400 => "Bad Request", 414 => "URI Too Long", _ => "Too Large" };
                let mut auto = format!("HTTP/1.{} {status} {reason}\r\ncontent-length: 0\r\n", u8::from(!v10));
                if close {
                    auto.push_str("connection: close\r\n");
                }
                auto.push_str(&format!("date: {date}\r\n\r\n"));
                prop_assert_eq!(auto_status(auto.as_bytes()), Some(status));
                let id = crate::headers::new_request_id();
                let (out, body_len) = replacement(auto.as_bytes(), &id);
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut resp = httparse::Response::new(&mut headers);
                let head_len = match resp.parse(&out) {
                    Ok(httparse::Status::Complete(n)) => n,
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                prop_assert_eq!(resp.code, Some(400));
                prop_assert_eq!(resp.version, Some(u8::from(!v10)));
                let length = resp.headers.iter().find(|h| h.name == "content-length").map(|h| h.value);
                let want = body_len.to_string();
                prop_assert_eq!(length, Some(want.as_bytes()));
                prop_assert_eq!((out.len() - head_len) as u64, body_len);
                prop_assert!(resp.headers.iter().any(|h| h.name == "x-request-id" && h.value == id.as_bytes()));
            }
        }
    }
}
