use super::*;

fn msg(name: &[u8], extra: &[u8], ar: u16) -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
    m.extend_from_slice(&ar.to_be_bytes());
    m.extend_from_slice(name);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(extra);
    m
}

const OPT: [u8; 11] = [0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0];

#[test]
fn parses_name_lowercase_with_labels() {
    let m = msg(b"\x03WeB\x03api\x00", &[], 0);
    let q = parse(&m).unwrap();
    assert_eq!(q.id, 0xabcd);
    assert_eq!(q.name(), b"\x03web\x03api\x00");
    assert_eq!(q.label_count(), 2);
    assert_eq!(q.suffix(1), b"\x03api\x00");
    assert_eq!(q.suffix(2), b"\x00");
    assert_eq!(q.label_offset(1), HEADER + 4);
    assert_eq!((q.qtype, q.qclass, q.end), (1, 1, m.len()));
    assert_eq!(q.edns, None);
}

#[test]
fn root_name() {
    let q = parse(&msg(b"\x00", &[], 0)).unwrap();
    assert_eq!(q.label_count(), 0);
    assert_eq!(q.name(), b"\x00");
}

#[test]
fn reads_edns() {
    let q = parse(&msg(b"\x01a\x00", &OPT, 1)).unwrap();
    assert_eq!(
        q.edns,
        Some(Edns {
            udp_size: 4096,
            version: 0
        })
    );
}

fn rcode_of(m: &[u8]) -> Option<Rcode> {
    match parse(m) {
        Err(Malformed::Reply { rcode, .. }) => Some(rcode),
        _ => None,
    }
}

#[test]
fn rejects_what_it_must() {
    assert_eq!(parse(&[0; 11]).unwrap_err(), Malformed::Drop);
    let mut resp = msg(b"\x01a\x00", &[], 0);
    resp[2] |= 0x80;
    assert_eq!(parse(&resp).unwrap_err(), Malformed::Drop);
    // Two OPT records.
    let mut two = OPT.to_vec();
    two.extend_from_slice(&OPT);
    assert_eq!(rcode_of(&msg(b"\x01a\x00", &two, 2)), Some(Rcode::FormErr));
    // OPT not owned by the root.
    let bad_owner = [1, b'x', 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        rcode_of(&msg(b"\x01a\x00", &bad_owner, 1)),
        Some(Rcode::FormErr)
    );
    // A pointer in the question, an obsolete label type, a label past the end.
    assert_eq!(rcode_of(&msg(b"\xc0\x0c", &[], 0)), Some(Rcode::FormErr));
    assert_eq!(rcode_of(&msg(b"\x41a\x00", &[], 0)), Some(Rcode::FormErr));
    let mut short = msg(b"\x3fab", &[], 0);
    short.truncate(16);
    assert_eq!(rcode_of(&short), Some(Rcode::FormErr));
    // A name over 255 bytes.
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.push(0);
    assert_eq!(rcode_of(&msg(&long, &[], 0)), Some(Rcode::FormErr));
    // Additional record count past the end.
    assert_eq!(rcode_of(&msg(b"\x01a\x00", &[], 1)), Some(Rcode::FormErr));
    // QTYPE OPT.
    let mut m = msg(b"\x01a\x00", &[], 0);
    let at = m.len() - 4;
    m[at + 1] = 41;
    assert_eq!(rcode_of(&m), Some(Rcode::FormErr));
    // Opcode NOTIFY.
    let mut m = msg(b"\x01a\x00", &[], 0);
    m[2] = 0x20;
    assert_eq!(rcode_of(&m), Some(Rcode::NotImp));
}

#[test]
fn skips_other_additional_records() {
    // A record owned by a compressed name, then the OPT.
    let mut extra = vec![0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4];
    extra.extend_from_slice(&OPT);
    let q = parse(&msg(b"\x01a\x00", &extra, 2)).unwrap();
    assert!(q.edns.is_some());
}

#[test]
fn encodes_names() {
    assert_eq!(
        encode_name("App.Localspace").unwrap(),
        b"\x03app\x0alocalspace\x00"
    );
    assert_eq!(encode_name("").unwrap(), b"\x00");
    assert!(encode_name("a..b").is_none());
    assert_eq!(label_count(b"\x03app\x0alocalspace\x00"), 2);
}

#[test]
fn rcodes_round_trip() {
    for r in Rcode::ALL {
        if r.value() < 16 {
            assert_eq!(Rcode::from_header(0x8000 | r.value()), Some(r));
        }
    }
}
