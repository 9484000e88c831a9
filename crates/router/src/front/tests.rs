use proptest::prelude::*;

use super::fuzz::client_head;
use super::head::{Kind, kind, scan};
use super::response::encode_head;
use crate::h1::framing::{BodyLen, SendFraming};

/// Names the rewrite treats specially, and some it does not.
const NAMES: &[&str] = &[
    "host",
    "Host",
    "HOST",
    "connection",
    "Connection",
    "keep-alive",
    "te",
    "trailer",
    "x-forwarded-for",
    "X-Forwarded-For",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-request-start",
    "x-request-id",
    "X-Request-Id",
    "via",
    "Via",
    "proxy-authorization",
    "Proxy-Foo",
    "proxy-",
    "accept",
    "x-custom",
    "cookie",
    "content-type",
    "upgrade",
    "expect",
    "content-length",
    "transfer-encoding",
    "x-te",
    "hostx",
];

fn header() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(NAMES).prop_map(str::to_string),
        prop_oneof![
            "[ -~]{0,24}",
            Just("close".to_string()),
            Just("keep-alive, close".to_string()),
            Just("api.test".to_string()),
            Just("api.test:8080".to_string()),
            Just("1.2.3.4, , 5.6.7.8".to_string()),
            Just("0".to_string()),
        ],
    )
}

proptest! {
    /// Generated heads, hostile ones among them: the dyno's head made from any the fast
    /// path takes keeps every invariant of the fuzz target.
    #[test]
    fn dyno_head_keeps_its_invariants(
        method in prop::sample::select(vec!["GET", "HEAD", "DELETE", "OPTIONS", "PURGE", "CONNECT"]),
        path in "/[a-z0-9/?=&%.-]{0,24}",
        headers in proptest::collection::vec(header(), 0..12),
        with_host in any::<bool>(),
    ) {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if with_host {
            head.push_str("host: api.test\r\n");
        }
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        client_head(head.as_bytes());
    }

    /// Any bytes: no panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        client_head(&data);
    }
}

fn parse(head: &[u8]) -> Option<bool> {
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut slots);
    req.parse(head).ok()?;
    Some(scan(&req).is_some())
}

#[test]
fn heads_hyper_keeps() {
    let takes = |h: &str| parse(format!("{h}\r\n").as_bytes());
    assert_eq!(takes("GET / HTTP/1.1\r\nhost: a\r\n"), Some(true));
    assert_eq!(
        takes("GET / HTTP/1.1\r\nhost: a\r\nconnection: Keep-Alive, close\r\n"),
        Some(true)
    );
    assert_eq!(
        takes("DELETE / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n"),
        Some(true)
    );
    // Each of these goes to hyper, whose answer the fast path must not guess.
    for h in [
        "GET / HTTP/1.0\r\nhost: a\r\n",
        "GET http://a/ HTTP/1.1\r\nhost: a\r\n",
        "OPTIONS * HTTP/1.1\r\nhost: a\r\n",
        "CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n",
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nhost: a\r\n",
        "GET / HTTP/1.1\r\nhost: a:b\r\n",
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\n",
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 00\r\n",
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\ncontent-length: 0\r\n",
        "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n",
        "GET / HTTP/1.1\r\nhost: a\r\nconnection: x-secret\r\n",
    ] {
        assert_eq!(takes(h), Some(false), "{h}");
    }
    let long = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-long: {}\r\n",
        "a".repeat(8190)
    );
    assert_eq!(takes(&long), Some(false));
}

#[test]
fn kinds_ignore_case() {
    assert_eq!(kind("HoSt"), Kind::Host);
    assert_eq!(kind("PROXY-Authorization"), Kind::Drop);
    assert_eq!(kind("proxy-"), Kind::Drop);
    assert_eq!(kind("proxy"), Kind::Keep);
    assert_eq!(kind("x-forwarded-host"), Kind::Keep);
    assert_eq!(kind("Transfer-Encoding"), Kind::Hyper);
}

fn head_of(
    status: u16,
    headers: &[(&str, &str)],
    head_request: bool,
    len: Option<u64>,
) -> (String, SendFraming) {
    let mut resp = http::Response::builder().status(status);
    for (n, v) in headers {
        resp = resp.header(*n, *v);
    }
    let (parts, ()) = resp.body(()).unwrap().into_parts();
    let mut out = Vec::new();
    let body = match len {
        Some(0) => BodyLen::Empty,
        Some(n) => BodyLen::Known(n),
        None => BodyLen::Unknown,
    };
    let framing = encode_head(&mut out, &parts, head_request, body, false);
    (String::from_utf8(out).unwrap(), framing)
}

#[test]
fn response_heads_frame_as_hyper_does() {
    let (h, f) = head_of(200, &[("date", "x")], false, Some(3));
    assert_eq!(h, "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 3\r\n\r\n");
    assert_eq!(f, SendFraming::Plain);
    let (h, f) = head_of(200, &[("date", "x")], false, None);
    assert_eq!(
        h,
        "HTTP/1.1 200 OK\r\ndate: x\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    assert_eq!(f, SendFraming::Chunked);
    // HEAD: the GET's length when the dyno said it, no body either way.
    let (h, f) = head_of(
        200,
        &[("content-length", "9"), ("date", "x")],
        true,
        Some(0),
    );
    assert_eq!(h, "HTTP/1.1 200 OK\r\ncontent-length: 9\r\ndate: x\r\n\r\n");
    assert_eq!(f, SendFraming::None);
    let (h, _) = head_of(200, &[("date", "x")], true, None);
    assert_eq!(h, "HTTP/1.1 200 OK\r\ndate: x\r\n\r\n");
    // 204 and 304 say no length and carry no body.
    for s in [204, 304] {
        let (h, f) = head_of(s, &[("date", "x")], false, Some(0));
        assert!(!h.contains("content-length"), "{h}");
        assert_eq!(f, SendFraming::None);
    }
    // As hyper writes them: one Content-Length of several; none on a 204 or 304, or for
    // an empty body but as the `0` said after.
    let (h, _) = head_of(
        200,
        &[
            ("content-length", "2"),
            ("content-length", "2"),
            ("date", "x"),
        ],
        false,
        Some(2),
    );
    assert_eq!(h, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: x\r\n\r\n");
    let (h, _) = head_of(
        204,
        &[("content-length", "5"), ("date", "x")],
        false,
        Some(0),
    );
    assert_eq!(h, "HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n");
    let (h, _) = head_of(
        304,
        &[("content-length", "100"), ("date", "x")],
        false,
        Some(0),
    );
    assert_eq!(h, "HTTP/1.1 304 Not Modified\r\ndate: x\r\n\r\n");
    let (h, _) = head_of(
        200,
        &[("content-length", "0"), ("date", "x")],
        false,
        Some(0),
    );
    assert_eq!(h, "HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 0\r\n\r\n");
    let (h, _) = head_of(503, &[("date", "x")], false, Some(0));
    assert_eq!(
        h,
        "HTTP/1.1 503 Service Unavailable\r\ndate: x\r\ncontent-length: 0\r\n\r\n"
    );
    // Without a date, the current one.
    let (h, _) = head_of(200, &[], false, Some(0));
    assert!(
        h.contains("\r\ndate: ") && h.ends_with(" GMT\r\n\r\n"),
        "{h}"
    );
}

#[test]
fn a_later_http1_minor_version_is_read_as_1_1() {
    use super::head::later_minor_as_11;
    let cases: &[(&[u8], Option<&[u8]>)] = &[
        (
            b"GET / HTTP/1.2\r\nhost: a\r\n\r\n",
            Some(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"),
        ),
        (b"\r\nGET / HTTP/1.9\r\n", Some(b"\r\nGET / HTTP/1.1\r\n")),
        // Not yet at its line's end.
        (b"GET / HTTP/1.2", Some(b"GET / HTTP/1.1")),
        (b"GET / HTTP/1.2\r", Some(b"GET / HTTP/1.1\r")),
        (b"GET / HTTP/1.2\n", Some(b"GET / HTTP/1.1\n")),
        // Not a later HTTP/1 minor version: left for hyper's answer.
        (b"GET / HTTP/2.0\r\n", None),
        (b"GET / HTTP/1.x\r\n", None),
        (b"GET / HTTP/1.10\r\n", None),
        (b"GET / http/1.2\r\n", None),
        (b"GET /HTTP/1.2\r\n", None),
        (b"HTTP/1.2\r\n", None),
        (b" HTTP/1.2\r\n", None),
        (b"GET / HTTP/1.1\r\nx: HTTP/1.2\r\n", None),
        (b"", None),
        (b"\r\n\r\n", None),
        (b"2", None),
    ];
    for (input, want) in cases {
        let mut buf = input.to_vec();
        let changed = later_minor_as_11(&mut buf);
        match want {
            Some(w) => assert_eq!((changed, &buf[..]), (true, *w), "{input:?}"),
            None => assert_eq!((changed, &buf[..]), (false, *input), "{input:?}"),
        }
    }
}
