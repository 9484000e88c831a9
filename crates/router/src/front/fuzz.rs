//! The entry point of the `client_head` fuzz target (`fuzz/`) and of the property test
//! beside it: a client's head is hostile, and on the fast path the router rewrites it as
//! bytes, not through hyper's `HeaderMap`.

use std::mem::MaybeUninit;

use super::head::{self, ForwardBytes, Kind};
use crate::h1::limits::FAST_MAX_HEADERS;

/// Parses `data` as a client's request head (a later HTTP/1 minor version read as 1.1, as
/// the fast path reads it); when the fast path takes it, checks the
/// dyno's head made from it. Panics on any broken invariant; that is the point:
/// - it is one complete HTTP/1.1 head, nothing after it, with the client's method and
///   target;
/// - no hop-by-hop header, none that asks for a body or an upgrade, and the router's own
///   forwarding headers exactly once each, with the router's values last;
/// - the client's other headers in their order, the one Host among them.
pub fn client_head(data: &[u8]) {
    // As `Front::step` does: a later HTTP/1 minor version is read as 1.1.
    let mut buf = data.to_vec();
    {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FAST_MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, &buf, &mut slots);
        if matches!(parsed, Err(httparse::Error::Version)) && !head::later_minor_as_11(&mut buf) {
            return;
        }
    }
    let data = &buf[..];
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FAST_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, data, &mut slots);
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        return;
    }
    let Some(scan) = head::scan(&req) else {
        return;
    };
    let fwd = ForwardBytes {
        peer: b"192.0.2.1",
        https: false,
        port: b"80",
        start_ms: 1_700_000_000_000,
        request_id: b"00000000-0000-4000-8000-000000000000",
    };
    let mut out = Vec::new();
    head::dyno_head(&mut out, &req, &scan, &fwd);

    let mut slots2 =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FAST_MAX_HEADERS + 8];
    let mut got = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut got,
        &out,
        &mut slots2,
    );
    assert_eq!(
        parsed.ok(),
        Some(httparse::Status::Complete(out.len())),
        "not one complete head: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(got.version, Some(1));
    assert_eq!(got.method, req.method);
    assert_eq!(got.path, req.path.and_then(|p| p.split('#').next()));
    let kept: Vec<_> = req
        .headers
        .iter()
        .filter(|h| matches!(head::kind(h.name), Kind::Keep | Kind::Host | Kind::Length))
        .map(|h| (h.name, h.value))
        .collect();
    let (theirs, ours) = got.headers.split_at(kept.len());
    let theirs: Vec<_> = theirs.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(theirs, kept, "the client's headers changed");
    let hosts: Vec<_> = theirs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .collect();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].1, scan.host);
    let names: Vec<_> = ours.iter().map(|h| h.name).collect();
    assert_eq!(
        names,
        [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-port",
            "x-request-start",
            "x-request-id",
            "via"
        ]
    );
    assert!(ours[0].value.ends_with(fwd.peer), "x-forwarded-for");
    assert!(ours[5].value.ends_with(b"1.1 spaced"), "via");
    same_as_header_map(&req, &got, &fwd);
    for h in theirs.iter() {
        assert!(
            matches!(head::kind(h.0), Kind::Keep | Kind::Host | Kind::Length),
            "{} reached the dyno",
            h.0
        );
    }
}

/// The dyno's head `got` says what `headers::rewrite_request` makes of the same head as a
/// `HeaderMap` (hyper's path): the same headers, as a multiset of lowercase names.
fn same_as_header_map(
    req: &httparse::Request<'_, '_>,
    got: &httparse::Request<'_, '_>,
    f: &ForwardBytes<'_>,
) {
    let mut map = http::HeaderMap::new();
    for h in req.headers.iter() {
        let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) else {
            return;
        };
        map.append(n, v);
    }
    let value =
        |b: &[u8]| http::HeaderValue::from_bytes(b).unwrap_or(http::HeaderValue::from_static(""));
    let (peer, port, id) = (value(f.peer), value(f.port), value(f.request_id));
    crate::headers::rewrite_request(
        &mut map,
        &crate::headers::Forward {
            peer: &peer,
            https: f.https,
            port: &port,
            start_ms: f.start_ms,
            request_id: &id,
            upgrade: false,
        },
    );
    let mut expected: Vec<(String, Vec<u8>)> = map
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let mut ours: Vec<(String, Vec<u8>)> = got
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    expected.sort();
    ours.sort();
    assert_eq!(ours, expected, "the HeaderMap rewrite says otherwise");
}

/// For the criterion bench (`benches/request.rs`): the fast path's work on a client's head
/// (parse, scan, the dyno's head as bytes) into `out`; `false` when it would go to hyper.
pub fn request_head_bytes(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FAST_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, raw, &mut slots);
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        return false;
    }
    let Some(scan) = head::scan(&req) else {
        return false;
    };
    out.clear();
    // As the real path does (`front.rs`): the client's id when valid, else a new UUID, so
    // the criterion comparison with `rewrite_request` counts the id's cost on both sides.
    let id = match scan.request_id {
        Some(v) if crate::headers::valid_request_id(v) => None,
        _ => Some(crate::headers::new_request_id()),
    };
    let fwd = ForwardBytes {
        peer: b"127.0.0.1",
        https: false,
        port: b"8080",
        start_ms: 1_700_000_000_000,
        request_id: match &id {
            Some(new) => new.as_bytes(),
            None => scan.request_id.unwrap_or_default(),
        },
    };
    head::dyno_head(out, &req, &scan, &fwd);
    true
}

/// For the criterion bench: the fast path's work on a dyno's response head (parse, the
/// client's head as bytes, its end) into `out`.
pub fn response_head_bytes(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let mut buf = bytes::BytesMut::from(raw);
    let Ok(Some(Some(crate::dyno_h1::ForClient::Written(w)))) =
        crate::dyno_h1::parse_head_for_client(&mut buf, &http::Method::GET, b"id", out)
    else {
        return false;
    };
    let said = super::response::Said {
        length: w.has_length,
        date: w.has_date,
    };
    super::response::finish_head(out, w.status, false, w.framing.body_len(), said, false);
    true
}

/// For the criterion bench: hyper's path for the same response head without hyper: parse
/// into a `HeaderMap`, rewrite, encode.
pub fn response_head_map(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let mut buf = bytes::BytesMut::from(raw);
    let Ok(Some(mut head)) = crate::dyno_h1::parse_head(&mut buf, &http::Method::GET) else {
        return false;
    };
    let id = http::HeaderValue::from_static("id");
    crate::headers::rewrite_response(&mut head.parts.headers, &id, false);
    out.clear();
    super::response::encode_head(out, &head.parts, false, head.framing.body_len(), false);
    true
}
