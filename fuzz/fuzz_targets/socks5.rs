//! Fuzzes the egress gateway's SOCKS5 handshake parsers (`spaced_egress::socks5`) on
//! arbitrary bytes: they never panic, never consume more than they were given, answer
//! "incomplete" (never an error) for every prefix of a message they accept, and a UDP
//! header they encode parses back to the same address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spaced_egress::socks5::{self, Address};

/// A message accepted whole must read as "incomplete" when cut short: the parser may not
/// fail on a prefix of something it would accept, or a slow client would be refused.
fn check<T>(data: &[u8], parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, socks5::SocksError>) {
    if let Ok(Some((_, n))) = parse(data) {
        assert!(n > 0 && n <= data.len());
        assert!(n <= socks5::MAX_MESSAGE);
        for cut in 0..n {
            assert!(matches!(parse(&data[..cut]), Ok(None)), "prefix {cut} of {n} not incomplete");
        }
        // Trailing bytes do not change what was parsed.
        let again = parse(&data[..n]);
        assert!(matches!(again, Ok(Some((_, m))) if m == n));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, socks5::parse_greeting);
    check(data, socks5::parse_credentials);
    check(data, socks5::parse_request);
    if let Ok(Some((req, _))) = socks5::parse_request(data) {
        if let Address::Domain(name, _) = &req.address {
            assert!(!name.is_empty() && name.len() <= 255);
            assert!(!name.bytes().any(|b| b.is_ascii_uppercase() || b == b' '));
        }
        if let Some(code) = socks5::parse_request(&data[..data.len().min(3)]).err().and_then(|e| e.reply_code()) {
            assert_ne!(code, socks5::Reply::Succeeded);
        }
    }
    match socks5::parse_udp(data) {
        Ok((addr, payload)) => {
            assert!(payload.len() < data.len());
            if let Address::Ip(sa) = addr {
                let mut enc = Vec::new();
                socks5::encode_udp_header(sa, &mut enc);
                enc.extend_from_slice(payload);
                let (back, p2) = socks5::parse_udp(&enc).expect("own encoding parses");
                assert_eq!(p2, payload);
                let want = std::net::SocketAddr::new(spaced_config::canonical(sa.ip()), sa.port());
                assert_eq!(back, Address::Ip(want));
            }
        }
        Err(e) => {
            let _ = e.reply_code();
        }
    }
});
