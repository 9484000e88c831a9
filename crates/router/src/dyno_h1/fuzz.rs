//! The entry point of the `dyno_response` fuzz target (`fuzz/`): a dyno's bytes are as
//! hostile as a client's, and this parser and decoder are ours, not hyper's.

use bytes::BytesMut;
use http::Method;

use super::{ForClient, parse_head, parse_head_for_client};
use crate::h1::chunked::{Chunked, Step};
use crate::h1::framing::RecvFraming;
use crate::h1::limits::DYNO_MAX_HEAD;
use crate::h1::write::push_status_line;

/// Parses `data` as a dyno's response to `GET` (or `HEAD` when `head_request`), and when
/// the body is chunked decodes the rest twice, whole and split at `split`, which must agree.
/// Panics on any broken invariant; that is the point.
pub fn dyno_response(data: &[u8], head_request: bool, split: usize) {
    let method = if head_request {
        Method::HEAD
    } else {
        Method::GET
    };
    same_head_both_ways(data, &method);
    let mut buf = BytesMut::from(data);
    match parse_head(&mut buf, &method) {
        Ok(None) => assert!(data.len() <= DYNO_MAX_HEAD, "asked for more past the limit"),
        Ok(Some(head)) => {
            assert!(buf.len() < data.len(), "a head consumed nothing");
            if head_request {
                assert!(matches!(head.framing, RecvFraming::Empty));
            }
            if let RecvFraming::Chunked(_) = head.framing {
                let whole = decode(&[&buf[..]]);
                let cut = split % (buf.len() + 1);
                let parts = decode(&[&buf[..cut], &buf[cut..]]);
                assert_eq!(whole, parts, "decoding depends on how the bytes arrive");
            }
        }
        Err(_) => {}
    }
}

/// What a decode came to: the body bytes, and how it ended (`Some(true)` done,
/// `Some(false)` invalid, `None` wanting more).
type Decoded = (Vec<u8>, Option<bool>);

/// Feeds `pieces` one after the other to a fresh decoder, as reads would.
fn decode(pieces: &[&[u8]]) -> Decoded {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut dec = Chunked::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        // Every step consumes input or stops, so steps are bounded by the bytes.
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps <= total + 2, "a step consumed nothing");
            match dec.step(&mut buf, 4096) {
                Ok(Step::Data(d)) => {
                    assert!(!d.is_empty(), "empty data step");
                    body.extend_from_slice(&d);
                }
                Ok(Step::More) => break,
                Ok(Step::Done) => return (body, Some(true)),
                Err(_) => return (body, Some(false)),
            }
        }
        assert!(body.len() <= total, "more body than bytes");
    }
    (body, None)
}

/// The client's head written as bytes ([`parse_head_for_client`], the fast path) says what
/// the `HeaderMap` rewrite says (`headers::rewrite_response`, hyper's path): the same
/// outcome, bytes consumed, status line, framing and headers (as a multiset: a
/// `HeaderMap` groups repeated names).
fn same_head_both_ways(data: &[u8], method: &Method) {
    const ID: &[u8] = b"fuzz-request-id-0123456789";
    let mut by_map = BytesMut::from(data);
    let mut by_bytes = BytesMut::from(data);
    let mut out = Vec::new();
    let map = parse_head(&mut by_map, method);
    let bytes = parse_head_for_client(&mut by_bytes, method, ID, &mut out);
    let (mut head, w) = match (map, bytes) {
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => return,
        (Ok(Some(h)), Ok(Some(None))) => {
            assert!(
                h.parts.status.is_informational(),
                "only interim heads are skipped"
            );
            return;
        }
        (Ok(Some(_)), Ok(Some(Some(ForClient::Parts(_))))) => return,
        (Ok(Some(h)), Ok(Some(Some(ForClient::Written(w))))) => (h, w),
        (map, bytes) => panic!("the paths disagree: {map:?} / {bytes:?}"),
    };
    assert_eq!(by_map.len(), by_bytes.len(), "consumed differently");
    assert_eq!(head.parts.status, w.status);
    assert_eq!(
        std::mem::discriminant(&head.framing),
        std::mem::discriminant(&w.framing)
    );
    assert_eq!(head.keep_alive, w.keep_alive);
    let id = http::HeaderValue::from_static("fuzz-request-id-0123456789");
    crate::headers::rewrite_response(&mut head.parts.headers, &id, false);
    let mut line = Vec::new();
    let reason = head.parts.extensions.get::<hyper::ext::ReasonPhrase>();
    push_status_line(&mut line, w.status, reason.map(|r| r.as_bytes()));
    assert!(out.starts_with(&line), "status line");
    // The first Content-Length only, and none where hyper's server would write none.
    let keep_length = head
        .framing
        .body_len()
        .keeps_length(*method == Method::HEAD);
    let mut lengths = 0;
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = head
        .parts
        .headers
        .iter()
        .filter(|(n, _)| {
            if *n != http::header::CONTENT_LENGTH {
                return true;
            }
            lengths += 1;
            keep_length && lengths == 1
        })
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = out[line.len()..]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let at = l.windows(2).position(|p| p == b": ").unwrap_or(l.len());
            (
                l[..at].to_vec(),
                l.get(at + 2..).unwrap_or_default().to_vec(),
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "headers differ");
    assert_eq!(
        w.has_length,
        keep_length
            && head
                .parts
                .headers
                .contains_key(http::header::CONTENT_LENGTH)
    );
    assert_eq!(
        w.has_date,
        head.parts.headers.contains_key(http::header::DATE)
    );
}
