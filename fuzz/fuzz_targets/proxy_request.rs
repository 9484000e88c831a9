//! Fuzzes the egress proxy's request-head parser (`spaced_egress::parse_request_head`) on
//! arbitrary bytes: it never panics, stays within its limits, reports a head length that
//! ends at the blank line, ignores whatever follows the head, and only hands out targets
//! the dialler can use (lowercase host names without blanks or colons, non-zero ports for
//! CONNECT).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spaced_egress::head::{self, Head, HeadError, Host, Target};

fn check_host(host: &Host) {
    if let Host::Name(n) = host {
        assert!(!n.is_empty() && n.len() <= 253);
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')));
    }
}

fuzz_target!(|data: &[u8]| {
    let len = head::head_len(data);
    match head::parse_request_head(data) {
        Ok(Head { len: n, ref target, ref headers, minor, ref method }) => {
            assert_eq!(len, Ok(Some(n)));
            assert!(n <= data.len() && n <= head::MAX_HEAD);
            assert_eq!(&data[n - 4..n], b"\r\n\r\n");
            assert!(headers.len() <= head::MAX_HEADERS);
            assert!(minor <= 1);
            assert!(!method.is_empty());
            for (name, value) in headers {
                assert!(!name.is_empty() && !name.contains([' ', ':', '\r', '\n']));
                assert!(!value.contains(&b'\r') && !value.contains(&b'\n'));
            }
            match target {
                Target::Authority { host, port } => {
                    assert!(*port > 0);
                    check_host(host);
                }
                Target::Absolute { host, path, .. } => {
                    check_host(host);
                    assert!(path.starts_with('/'));
                }
                Target::Origin(p) => assert!(p.starts_with('/')),
                Target::Asterisk => {}
            }
            // What follows the head does not change it.
            let again = head::parse_request_head(&data[..n]).expect("the head alone parses");
            assert_eq!(&again.target, target);
            assert_eq!(again.len, n);
        }
        Err(HeadError::Incomplete) => assert_eq!(len, Ok(None)),
        Err(e) => {
            // 501: a well-formed request for a scheme the proxy does not serve (https://…).
            assert!(matches!(e.status(), 400 | 431 | 501 | 505));
            assert_eq!(e.status() == 501, matches!(e, HeadError::Https | HeadError::Scheme));
        }
    }
});
