//! Unit tests for the PROXY protocol parser and encoders.

use super::header::{fold, to_v6};
use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

fn complete(buf: &[u8]) -> (ProxyHeader, usize) {
    match parse(buf) {
        Ok(Parsed::Complete { header, len }) => (header, len),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn err(buf: &[u8]) -> ProxyError {
    match parse(buf) {
        Err(e) => e,
        ok => panic!("{:?} accepted: {ok:?}", String::from_utf8_lossy(buf)),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Every strict prefix of a valid header is `Incomplete` with a bound that is above the
/// prefix and never past the header: the property `read_header` relies on.
fn assert_prefixes(full: &[u8]) {
    for cut in 0..full.len() {
        match parse(&full[..cut]) {
            Ok(Parsed::Incomplete { need_at_least }) => assert!(
                cut < need_at_least && need_at_least <= full.len(),
                "{:?} cut {cut}: need {need_at_least}",
                String::from_utf8_lossy(full)
            ),
            other => panic!("{:?} cut {cut}: {other:?}", String::from_utf8_lossy(full)),
        }
    }
}

// === v1 ===

#[test]
fn v1_tcp4() {
    let buf = b"PROXY TCP4 192.0.2.1 198.51.100.22 56324 443\r\nGET /";
    let (h, len) = complete(buf);
    assert_eq!(len, buf.len() - 5);
    assert_eq!(h.command, Command::Proxy);
    assert_eq!(h.source, Some(sa("192.0.2.1:56324")));
    assert_eq!(h.destination, Some(sa("198.51.100.22:443")));
    assert_eq!(h.client(sa("10.0.0.1:1")), sa("192.0.2.1:56324"));
}

#[test]
fn v1_tcp6_and_edges() {
    let (h, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
    assert_eq!(h.source, Some(sa("[2001:db8::1]:0")));
    assert_eq!(h.destination, Some(sa("[::1]:65535")));
    let (h, _) = complete(b"PROXY TCP6 ::ffff:192.0.2.1 FE80::A 1 2\r\n");
    assert_eq!(h.source, Some(sa("[::ffff:192.0.2.1]:1")));
    let (h, _) = complete(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n");
    assert_eq!(h.destination, Some(sa("255.255.255.255:0")));
}

#[test]
fn v1_unknown() {
    for buf in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    ] {
        let (h, len) = complete(buf);
        assert_eq!(len, buf.len());
        assert_eq!(
            (h.command, h.source, h.destination),
            (Command::Proxy, None, None)
        );
        assert_eq!(h.client(sa("10.0.0.1:1")), sa("10.0.0.1:1"));
    }
}

#[test]
fn v1_longest_is_accepted_and_one_more_is_not() {
    let longest = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(longest.len(), V1_MAX_LEN);
    assert_eq!(complete(longest).1, V1_MAX_LEN);
    let mut long = longest[..V1_MAX_LEN - 2].to_vec();
    long.extend_from_slice(b"f\r\n");
    assert!(matches!(err(&long), ProxyError::V1TooLong));
    // No CRLF at all: refused at 107 bytes, not read on forever.
    let endless = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 200]].concat();
    assert!(matches!(err(&endless), ProxyError::V1TooLong));
    assert!(matches!(err(&endless[..V1_MAX_LEN]), ProxyError::V1TooLong));
    assert_prefixes(longest);
}

#[test]
fn v1_malformed() {
    let cases: &[&[u8]] = &[
        b"PROXY TCP4 192.0.2.1 198.51.100.22 56324 443\n", // bare LF
        b"PROXY TCP4 192.0.2.1 198.51.100.22 56324 443\r\r\n", // CR CR LF
        b"PROXY TCP4 192.0.2.1 198.51.100.22 56324\r\n",   // missing field
        b"PROXY TCP4 192.0.2.1 198.51.100.22 56324 443 1\r\n", // extra field
        b"PROXY TCP4 192.0.2.1 198.51.100.22 56324 443 \r\n", // trailing space
        b"PROXY TCP4  192.0.2.1 198.51.100.22 56324 443\r\n", // double space
        b"PROXY  TCP4 192.0.2.1 198.51.100.22 56324 443\r\n",
        b"PROXY TCP4 192.0.2.1\t198.51.100.22 56324 443\r\n", // tab
        b"PROXY TCP5 192.0.2.1 198.51.100.22 56324 443\r\n",  // protocol
        b"PROXY tcp4 192.0.2.1 198.51.100.22 56324 443\r\n",  // case
        b"PROXY UDP4 192.0.2.1 198.51.100.22 56324 443\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.22 56324 443\r\n", // v6 in TCP4
        b"PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n",     // v4 in TCP6
        b"PROXY TCP4 192.0.2.01 198.51.100.22 56324 443\r\n",  // leading zero octet
        b"PROXY TCP4 010.0.0.1 198.51.100.22 56324 443\r\n",
        b"PROXY TCP4 192.0.2 198.51.100.22 56324 443\r\n", // three octets
        b"PROXY TCP4 192.0.2.1.5 198.51.100.22 56324 443\r\n",
        b"PROXY TCP4 192.0.2.256 198.51.100.22 56324 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.22 65536 443\r\n", // port range
        b"PROXY TCP4 192.0.2.1 198.51.100.22 99999 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.22 100000 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.22 0443 443\r\n", // leading zero port
        b"PROXY TCP4 192.0.2.1 198.51.100.22 00 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.22 +443 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.22 -1 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.22 44a 443\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", // zone id
        b"PROXY TCP6 2001:db8:::1 ::1 1 2\r\n",
        b"PROXY TCP6 [::1] ::1 1 2\r\n",
        b"PROXY TCP4 \xc0\xa8.0.2.1 198.51.100.22 1 2\r\n", // non-ASCII
        b"PROXY UNKNOWN \xff\r\n",
        b"PROXY UNKNOWN\x00\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
        b"PROXY\r\n",
        b"PROXY TCP4\r\n",
        b"PROXY TCP4 \r\n",
    ];
    for case in cases {
        let e = err(case);
        assert!(e.is_malformed(), "{:?}: {e}", String::from_utf8_lossy(case));
    }
}

#[test]
fn v1_junk_is_refused_on_sight() {
    // A client that is not a proxy (or a typo) is refused on its first bad byte.
    for junk in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"G",
        b"\x16\x03\x01", // TLS ClientHello
        b"PROXZ",
        b"proxy ",
        b"PROXY X",
        b"PROXY TCP4 1.2.3.4  ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3",
        b"PROXY TCP4 ::1",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r",
        b"PROXY TCP4 1.2.3.4\r5",
        b"PROXY TCP4 1234567890123456",
    ] {
        assert!(parse(junk).is_err(), "{:?}", String::from_utf8_lossy(junk));
    }
    assert!(matches!(err(b"GET"), ProxyError::Signature));
}

#[test]
fn v1_prefixes_bound_the_length() {
    for full in [
        &b"PROXY TCP4 1.1.1.1 1.1.1.1 0 0\r\n"[..],
        b"PROXY TCP4 192.0.2.1 198.51.100.22 56324 443\r\n",
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        b"PROXY TCP6 :: :: 0 0\r\n",
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ::1 65535 1\r\n",
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN 1 2 3 4\r\n",
    ] {
        assert_prefixes(full);
    }
}

// === v2 ===

fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[ver_cmd, fam]);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

const TCP4_BODY: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 22, 0xdc, 0x04, 0x01, 0xbb];

#[test]
fn v2_tcp4_tcp6() {
    let mut buf = v2(0x21, 0x11, &TCP4_BODY);
    buf.extend_from_slice(b"GET /");
    let (h, len) = complete(&buf);
    assert_eq!(len, 28);
    assert_eq!(h.command, Command::Proxy);
    assert_eq!(h.source, Some(sa("192.0.2.1:56324")));
    assert_eq!(h.destination, Some(sa("198.51.100.22:443")));

    let mut body = Vec::new();
    body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0, 80, 1, 0]);
    let (h, len) = complete(&v2(0x21, 0x21, &body));
    assert_eq!(len, 52);
    assert_eq!(h.source, Some(sa("[2001:db8::1]:80")));
    assert_eq!(h.destination, Some(sa("[::1]:256")));
}

#[test]
fn v2_local_unspec_unix_have_no_address() {
    // LOCAL: the block is ignored whatever the family says (HAProxy health checks).
    for (ver_cmd, fam, body) in [
        (0x20, 0x00, Vec::new()),
        (0x20, 0x11, TCP4_BODY.to_vec()),
        (0x20, 0x12, vec![1, 2, 3]), // LOCAL ignores even odd families and junk
        (0x21, 0x00, Vec::new()),
        (0x21, 0x00, vec![0xde, 0xad]), // UNSPEC: ignore the block
        (0x21, 0x31, vec![0; 216]),
    ] {
        let (h, _) = complete(&v2(ver_cmd, fam, &body));
        assert_eq!(
            (h.source, h.destination),
            (None, None),
            "{ver_cmd:#x} {fam:#x}"
        );
        let want = if ver_cmd == 0x20 {
            Command::Local
        } else {
            Command::Proxy
        };
        assert_eq!(h.command, want);
        assert_eq!(h.client(sa("10.0.0.1:1")), sa("10.0.0.1:1"));
    }
}

#[test]
fn v2_tlvs_are_skipped_and_checked() {
    let mut body = TCP4_BODY.to_vec();
    body.extend_from_slice(&[0x04, 0, 3, 0, 0, 0]); // NOOP, 3 bytes
    body.extend_from_slice(&[0x05, 0, 0]); // UNIQUE_ID, empty
    let (h, len) = complete(&v2(0x21, 0x11, &body));
    assert_eq!(h.source, Some(sa("192.0.2.1:56324")));
    assert_eq!(len, 16 + body.len());
    for bad_tail in [&[0x04][..], &[0x04, 0], &[0x04, 0, 4, 0, 0, 0]] {
        let mut body = TCP4_BODY.to_vec();
        body.extend_from_slice(bad_tail);
        assert!(matches!(err(&v2(0x21, 0x11, &body)), ProxyError::V2Tlv));
    }
}

#[test]
fn crc32c_known_vector() {
    assert_eq!(!v2::crc32c(!0, b"123456789"), 0xe306_9283);
}

#[test]
fn v2_crc32c_tlv_is_checked() {
    let with_crc = |corrupt: bool| {
        let mut body = TCP4_BODY.to_vec();
        body.extend_from_slice(&[0x03, 0, 4, 0, 0, 0, 0]);
        let mut wire = v2(0x21, 0x11, &body);
        let crc = !v2::crc32c(!0, &wire);
        let at = wire.len() - 4;
        wire[at..].copy_from_slice(&crc.to_be_bytes());
        if corrupt {
            wire[17] ^= 1; // one bit of the source address
        }
        wire
    };
    let (h, _) = complete(&with_crc(false));
    assert_eq!(h.source, Some(sa("192.0.2.1:56324")));
    assert!(matches!(err(&with_crc(true)), ProxyError::V2Checksum));
    let mut body = TCP4_BODY.to_vec();
    body.extend_from_slice(&[0x03, 0, 2, 0, 0]); // a CRC TLV must be 4 bytes
    assert!(matches!(err(&v2(0x21, 0x11, &body)), ProxyError::V2Tlv));
}

#[test]
fn v2_malformed() {
    let short4 = v2(0x21, 0x11, &TCP4_BODY[..11]);
    assert!(matches!(
        err(&short4),
        ProxyError::V2AddressLength {
            family: 0x11,
            len: 11
        }
    ));
    let short6 = v2(0x21, 0x21, &[0; 35]);
    assert!(matches!(err(&short6), ProxyError::V2AddressLength { .. }));
    let short_unix = v2(0x21, 0x31, &[0; 215]);
    assert!(matches!(
        err(&short_unix),
        ProxyError::V2AddressLength { .. }
    ));
    assert!(matches!(
        err(&v2(0x11, 0x11, &TCP4_BODY)),
        ProxyError::V2Version(1)
    ));
    assert!(matches!(
        err(&v2(0x31, 0x11, &TCP4_BODY)),
        ProxyError::V2Version(3)
    ));
    assert!(matches!(
        err(&v2(0x22, 0x11, &TCP4_BODY)),
        ProxyError::V2Command(2)
    ));
    assert!(matches!(
        err(&v2(0x2f, 0x11, &TCP4_BODY)),
        ProxyError::V2Command(15)
    ));
    for fam in [0x12, 0x22, 0x32, 0x10, 0x01, 0x41, 0xff] {
        assert!(matches!(err(&v2(0x21, fam, &TCP4_BODY)), ProxyError::V2Family(f) if f == fam));
    }
    // Oversized: refused from the 16-byte prefix, before reading the body.
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11, 0x02, 0x09]); // 16 + 521 = 537
    assert!(matches!(err(&big), ProxyError::V2TooLong(537)));
    big.truncate(14);
    big.extend_from_slice(&[0xff, 0xff]);
    assert!(matches!(err(&big), ProxyError::V2TooLong(_)));
    let max_ok = v2(
        0x21,
        0x11,
        &[TCP4_BODY.as_slice(), &[0x04, 0x01, 0xf9], &[0; 505]].concat(),
    );
    assert_eq!(max_ok.len(), V2_MAX_LEN);
    assert_eq!(complete(&max_ok).1, V2_MAX_LEN);
    // Bad signature, at each byte.
    for i in 0..12 {
        let mut buf = v2(0x21, 0x11, &TCP4_BODY);
        buf[i] ^= 0x40;
        assert!(parse(&buf).is_err(), "flipped byte {i}");
        assert!(parse(&buf[..=i]).is_err(), "flipped byte {i}, prefix");
    }
}

#[test]
fn v2_prefixes_bound_the_length() {
    assert_prefixes(&v2(0x21, 0x11, &TCP4_BODY));
    assert_prefixes(&v2(0x20, 0x00, &[]));
    assert_prefixes(&v2(0x21, 0x21, &[0; 36]));
    assert_prefixes(&encode_v2(Command::Proxy, sa("[::1]:1"), sa("[::2]:2")));
}

// === encoders ===

#[test]
fn encoders_round_trip_and_fold_families() {
    let v4 = sa("192.0.2.1:5000");
    let v6 = sa("[2001:db8::2]:443");
    let mapped = SocketAddr::new(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped().into(), 80);
    assert_eq!(
        encode_v1(v4, mapped),
        b"PROXY TCP4 192.0.2.1 198.51.100.7 5000 80\r\n"
    );
    assert_eq!(
        encode_v1(v4, v6),
        b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 5000 443\r\n"
    );
    let v2_mixed = encode_v2(Command::Proxy, v4, v6);
    let (h, _) = complete(&v2_mixed);
    assert_eq!(h.source, Some(sa("[::ffff:192.0.2.1]:5000")));
    let local = encode_v2(Command::Local, v4, v6);
    assert_eq!(local.len(), 16);
    assert_eq!(complete(&local).0.command, Command::Local);
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

proptest! {
    #[test]
    fn round_trip(src in any_addr(), dst in any_addr(), tail in proptest::collection::vec(any::<u8>(), 0..32)) {
        let same_family = fold(src).is_ipv4() == fold(dst).is_ipv4();
        for (wire, version) in [(encode_v1(src, dst), 1), (encode_v2(Command::Proxy, src, dst), 2)] {
            assert_prefixes(&wire);
            let mut buf = wire.clone();
            buf.extend_from_slice(&tail);
            let Ok(Parsed::Complete { header, len }) = parse(&buf) else {
                panic!("v{version} {wire:?} refused");
            };
            prop_assert_eq!(len, wire.len());
            prop_assert_eq!(header.command, Command::Proxy);
            let (s, d) = (header.source.unwrap(), header.destination.unwrap());
            if same_family {
                prop_assert_eq!(fold(s), fold(src));
                prop_assert_eq!(fold(d), fold(dst));
            } else {
                prop_assert_eq!(s, SocketAddr::new(to_v6(src.ip()).into(), src.port()));
                prop_assert_eq!(d, SocketAddr::new(to_v6(dst.ip()).into(), dst.port()));
            }
        }
    }

    #[test]
    fn never_panics_and_len_is_bounded(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(Parsed::Complete { len, .. }) = parse(&buf) {
            prop_assert!(len <= buf.len() && len <= MAX_HEADER_LEN);
        }
        if let Ok(Parsed::Incomplete { need_at_least }) = parse(&buf) {
            prop_assert!(need_at_least > buf.len() && need_at_least <= MAX_HEADER_LEN);
        }
    }

    #[test]
    fn mutated_headers_never_panic(idx in 0usize..60, byte in any::<u8>(), v in 1u8..3) {
        let mut wire = if v == 1 {
            encode_v1(sa("192.0.2.1:5000"), sa("198.51.100.2:443"))
        } else {
            encode_v2(Command::Proxy, sa("[2001:db8::1]:5000"), sa("[2001:db8::2]:443"))
        };
        let i = idx % wire.len();
        wire[i] = byte;
        if let Ok(Parsed::Complete { len, .. }) = parse(&wire) {
            prop_assert!(len <= wire.len());
        }
    }
}
