//! Fuzzes the PROXY protocol parser: it never panics, never claims a header longer than
//! its input or the bound, asks for more only within the bound, and a header it accepts
//! re-parses identically after re-encoding its addresses (when it carries any).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spaced_net::proxy_protocol::{Command, MAX_HEADER_LEN, Parsed, encode_v1, encode_v2, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Complete { header, len }) => {
            assert!(len <= data.len() && len <= MAX_HEADER_LEN);
            // The header alone parses to the same thing: nothing after it was looked at.
            match parse(&data[..len]) {
                Ok(Parsed::Complete {
                    header: again,
                    len: again_len,
                }) => {
                    assert_eq!((again, again_len), (header, len));
                }
                other => panic!("header alone re-parsed as {other:?}"),
            }
            if let (Command::Proxy, Some(src), Some(dst)) =
                (header.command, header.source, header.destination)
            {
                for wire in [encode_v1(src, dst), encode_v2(Command::Proxy, src, dst)] {
                    assert!(
                        matches!(parse(&wire), Ok(Parsed::Complete { len, .. }) if len == wire.len())
                    );
                }
            }
        }
        Ok(Parsed::Incomplete { need_at_least }) => {
            assert!(need_at_least > data.len() && need_at_least <= MAX_HEADER_LEN);
        }
        Err(_) => {}
    }
});
