use bytes::BytesMut;
use http::{Method, StatusCode};

use super::{HeadError, encode_request, parse_head};
use crate::h1::chunked::{Chunked, Invalid, Step};
use crate::h1::framing::RecvFraming;
use crate::h1::limits::DYNO_MAX_HEAD;

fn head(raw: &[u8], method: &Method) -> Result<Option<super::Head>, HeadError> {
    parse_head(&mut BytesMut::from(raw), method)
}

#[test]
fn content_length_head_parses_and_keeps_the_body_in_the_buffer() {
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"[..]);
    let h = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
    assert_eq!(h.parts.status, StatusCode::OK);
    assert_eq!(h.parts.headers["x-a"], "b");
    assert!(matches!(h.framing, RecvFraming::Length(5)));
    assert!(h.keep_alive);
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn partial_head_asks_for_more() {
    assert!(
        head(b"HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
            .unwrap()
            .is_none()
    );
}

#[test]
fn framing_follows_rfc_9112() {
    let f = |raw: &[u8], m: &Method| head(raw, m).unwrap().unwrap();
    // HEAD, 204 and 304 have no body whatever the headers say.
    let h = f(
        b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
        &Method::HEAD,
    );
    assert!(matches!(h.framing, RecvFraming::Empty));
    assert_eq!(h.parts.headers["content-length"], "9");
    let h = f(b"HTTP/1.1 304 Not Modified\r\n\r\n", &Method::GET);
    assert!(matches!(h.framing, RecvFraming::Empty));
    // Chunked wins over Content-Length, which is dropped, and the socket is not reused.
    let h = f(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        &Method::GET,
    );
    assert!(matches!(h.framing, RecvFraming::Chunked(_)));
    assert!(!h.parts.headers.contains_key("content-length"));
    assert!(!h.keep_alive);
    // A coding that is not chunked runs until close.
    let h = f(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        &Method::GET,
    );
    assert!(matches!(h.framing, RecvFraming::Close) && !h.keep_alive);
    // No length at all: until close.
    let h = f(b"HTTP/1.1 200 OK\r\n\r\n", &Method::GET);
    assert!(matches!(h.framing, RecvFraming::Close) && !h.keep_alive);
    // Equal repeated lengths are one length.
    let h = f(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\ncontent-length: 2\r\n\r\n",
        &Method::GET,
    );
    assert!(matches!(h.framing, RecvFraming::Length(2)));
}

#[test]
fn keep_alive_by_version_and_connection() {
    let f = |raw: &[u8]| head(raw, &Method::GET).unwrap().unwrap().keep_alive;
    assert!(!f(
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    assert!(!f(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
    assert!(f(
        b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: Keep-Alive\r\n\r\n"
    ));
}

#[test]
fn invalid_heads_are_refused() {
    for raw in [
        &b"NOT HTTP\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        b"HTTP/1.1 999999 OK\r\n\r\n",
    ] {
        assert!(
            matches!(head(raw, &Method::GET), Err(HeadError::Invalid(_))),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..1001 {
        many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(
        head(&many, &Method::GET),
        Err(HeadError::Invalid(_))
    ));
    let huge = vec![b'a'; 500 * 1024];
    let mut raw = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
    raw.extend_from_slice(&huge);
    assert!(matches!(
        head(&raw, &Method::GET),
        Err(HeadError::Invalid(_))
    ));
    // The limit holds for a head that arrives whole too, and a head just under it passes.
    let whole = |filler: usize| {
        let mut raw = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n".to_vec();
        for line in vec![b'a'; filler].chunks(8000) {
            raw.extend_from_slice(b"x: ");
            raw.extend_from_slice(line);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw
    };
    let over = whole(DYNO_MAX_HEAD);
    assert!(matches!(
        head(&over, &Method::GET),
        Err(HeadError::Invalid("head too large"))
    ));
    let under = whole(DYNO_MAX_HEAD - 2048);
    assert!(under.len() <= DYNO_MAX_HEAD);
    assert!(head(&under, &Method::GET).unwrap().is_some());
}

#[test]
fn request_head_is_encoded_as_is() {
    let mut h = http::HeaderMap::new();
    h.insert("host", "api.test".parse().unwrap());
    h.append("x-a", "1".parse().unwrap());
    let mut out = Vec::new();
    encode_request(&mut out, &Method::GET, "/p?q=1", &h);
    assert_eq!(
        out,
        b"GET /p?q=1 HTTP/1.1\r\nhost: api.test\r\nx-a: 1\r\n\r\n"
    );
}

fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), Invalid> {
    let mut c = Chunked::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(split.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match c.step(&mut buf, 4)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::More => break,
                Step::Done => return Ok((out, true)),
            }
        }
    }
    Ok((out, false))
}

#[test]
fn chunked_decodes_in_any_split() {
    let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n";
    for split in [1, 2, 3, 7, body.len()] {
        let (out, done) = decode_all(body, split).unwrap();
        assert_eq!(out, b"hello world", "split {split}");
        assert!(done, "split {split}");
    }
}

#[test]
fn chunked_refuses_bad_coding() {
    for bad in [
        &b"x\r\n"[..],
        b"5\r\nhelloXX",
        b"5\nhello\r\n",
        b"1234567890abcdef0\r\n",
        b"5 junk\r\nhello\r\n",
    ] {
        assert!(
            decode_all(bad, 64).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // An endless size line is cut at the line limit.
    let long = vec![b'0'; 5000];
    assert!(decode_all(&long, 5000).is_err());
}

#[test]
fn client_head_written_as_bytes() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 201 Made\r\nX-A: 1\r\nConnection: keep-alive\r\nX-Request-Id: theirs\r\n\
           Content-Length: 2\r\nProxy-Thing: p\r\nDate: d\r\n\r\nok"[..],
    );
    let mut out = Vec::new();
    let got = super::parse_head_for_client(&mut buf, &Method::GET, b"ours", &mut out).unwrap();
    let Some(Some(super::ForClient::Written(w))) = got else {
        panic!("{got:?}");
    };
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 201 Made\r\nx-a: 1\r\nx-request-id: ours\r\ncontent-length: 2\r\ndate: d\r\n"
    );
    assert!(w.has_length && w.has_date && w.keep_alive);
    assert!(matches!(w.framing, RecvFraming::Length(2)));
    assert_eq!(&buf[..], b"ok");
    // Interim heads are consumed, and a Connection naming headers is left to the HeaderMap.
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: x-a\r\n\r\n"[..],
    );
    let mut out = Vec::new();
    let got = super::parse_head_for_client(&mut buf, &Method::GET, b"i", &mut out).unwrap();
    assert!(matches!(got, Some(None)));
    let got = super::parse_head_for_client(&mut buf, &Method::GET, b"i", &mut out).unwrap();
    assert!(matches!(got, Some(Some(super::ForClient::Parts(_)))));
}

mod props {
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "Content-Length",
        "content-length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Auth",
        "X-Request-Id",
        "x-request-id",
        "Date",
        "Set-Cookie",
        "X-A",
        "Via",
    ];
    const VALUES: &[&str] = &[
        "0",
        "5",
        "5, 5",
        "5, 6",
        "-1",
        "chunked",
        "gzip, chunked",
        "gzip",
        "close",
        "keep-alive",
        "x-a",
        "upgrade",
        "",
        "a b",
        "id-1",
        "\u{e9}",
    ];

    proptest! {
        /// Generated dyno heads: the head written as bytes says what the HeaderMap rewrite
        /// says (the `dyno_response` fuzz target's checks, on every CI run).
        #[test]
        fn both_rewrites_agree(
            status in prop::sample::select(vec![100u16, 101, 200, 204, 299, 304, 404, 499, 503]),
            reason in prop::sample::select(vec!["", "OK", "Custom Words", "Not Found"]),
            v10 in any::<bool>(),
            headers in proptest::collection::vec(
                (prop::sample::select(NAMES), prop::sample::select(VALUES)), 0..10),
            head_request in any::<bool>(),
            body in "[a-z0-9\r\n]{0,12}",
        ) {
            let mut raw = format!("HTTP/1.{} {status} {reason}\r\n", u8::from(!v10));
            for (n, v) in &headers {
                raw.push_str(&format!("{n}: {v}\r\n"));
            }
            raw.push_str("\r\n");
            raw.push_str(&body);
            super::super::fuzz::dyno_response(raw.as_bytes(), head_request, 3);
        }
    }
}
