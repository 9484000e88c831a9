//! The entry point of the `dyno_response` fuzz target (`fuzz/`): a dyno's bytes are as
//! hostile as a client's, and this parser and decoder are ours, not hyper's.

use bytes::BytesMut;
use http::Method;

use super::chunked::{Chunked, Step};
use super::{Framing, MAX_HEAD, parse_head};

/// Parses `data` as a dyno's response to `GET` (or `HEAD` when `head_request`), and when
/// the body is chunked decodes the rest twice, whole and split at `split`, which must agree.
/// Panics on any broken invariant; that is the point.
pub fn dyno_response(data: &[u8], head_request: bool, split: usize) {
    let method = if head_request {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut buf = BytesMut::from(data);
    match parse_head(&mut buf, &method) {
        Ok(None) => assert!(data.len() <= MAX_HEAD, "asked for more past the limit"),
        Ok(Some(head)) => {
            assert!(buf.len() < data.len(), "a head consumed nothing");
            if head_request {
                assert!(matches!(head.framing, Framing::Empty));
            }
            if let Framing::Chunked(_) = head.framing {
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
