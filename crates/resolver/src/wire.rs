//! The few pieces of the DNS wire format (RFC 1035 §4, RFC 6891) the hot path needs, read
//! and written by hand without allocating: the query's header, its one question (the name
//! lowercased into a stack buffer, with label offsets for suffix matching) and its EDNS0 OPT
//! record, and the header, question echo and OPT record of a response.
//!
//! Why not `hickory_proto::op::Message` here: decoding one allocates a `Vec` per section
//! and a `Name` per label list, which alone would eat most of the per-query budget. hickory
//! is used where allocation does not matter (upstream answers, tests) and as the oracle the
//! fuzz target checks this parser against.

/// Length of the DNS header.
pub(crate) const HEADER: usize = 12;
/// Longest name on the wire, length bytes and root included (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME: usize = 255;
/// The UDP payload size we advertise (DNS flag day 2020: no fragmentation on common paths).
pub(crate) const EDNS_SIZE: u16 = 1232;
/// Without EDNS0, a UDP message is at most this long (RFC 1035 §4.2.1).
pub(crate) const CLASSIC_UDP: usize = 512;

/// Record types the resolver knows by number.
pub(crate) mod rtype {
    pub(crate) const A: u16 = 1;
    pub(crate) const NS: u16 = 2;
    pub(crate) const SOA: u16 = 6;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const SRV: u16 = 33;
    pub(crate) const OPT: u16 = 41;
    pub(crate) const IXFR: u16 = 251;
    pub(crate) const AXFR: u16 = 252;
    pub(crate) const ANY: u16 = 255;
}

/// Classes.
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_ANY: u16 = 255;

/// A response code, with the extended ones we may send (RFC 6891 BADVERS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rcode {
    /// 0: success (also NODATA).
    NoError,
    /// 1: the query could not be understood.
    FormErr,
    /// 2: forwarding failed.
    ServFail,
    /// 3: the name does not exist in the zone.
    NxDomain,
    /// 4: opcode other than QUERY.
    NotImp,
    /// 5: policy says no (outside the space, no upstreams, zone transfer).
    Refused,
    /// 16 (extended): EDNS version above 0.
    BadVers,
}

impl Rcode {
    /// Every code, in metric order.
    pub const ALL: [Self; 7] = [
        Self::NoError,
        Self::FormErr,
        Self::ServFail,
        Self::NxDomain,
        Self::NotImp,
        Self::Refused,
        Self::BadVers,
    ];

    /// The full 12-bit value.
    pub fn value(self) -> u16 {
        match self {
            Self::NoError => 0,
            Self::FormErr => 1,
            Self::ServFail => 2,
            Self::NxDomain => 3,
            Self::NotImp => 4,
            Self::Refused => 5,
            Self::BadVers => 16,
        }
    }

    /// The code from a header's low 4 bits (extended codes cannot be seen there).
    pub fn from_header(flags: u16) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.value() < 16 && r.value() == flags & 0xf)
    }

    /// The mnemonic, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::FormErr => "FORMERR",
            Self::ServFail => "SERVFAIL",
            Self::NxDomain => "NXDOMAIN",
            Self::NotImp => "NOTIMP",
            Self::Refused => "REFUSED",
            Self::BadVers => "BADVERS",
        }
    }
}

/// The client's EDNS0 OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    /// Its UDP payload size (the class field).
    pub(crate) udp_size: u16,
    /// Its EDNS version.
    pub(crate) version: u8,
}

/// A parsed query: everything the answer needs, borrowed from nowhere.
#[derive(Debug, Clone)]
pub(crate) struct Question {
    pub(crate) id: u16,
    /// Opcode and RD/CD bits, as they must be echoed.
    pub(crate) flags: u16,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// Offset just past the question in the query (header + name + type + class).
    pub(crate) end: usize,
    /// The name in wire form, ASCII-lowercased, root label included.
    name: [u8; MAX_NAME],
    name_len: usize,
    /// Offset of each label within `name` (the root label not counted).
    labels: [u8; 128],
    nlabels: usize,
    pub(crate) edns: Option<Edns>,
}

/// Why a query cannot be answered normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Not even a header, or a response: no reply at all.
    Drop,
    /// A header could be read: reply with this code, echoing id and opcode.
    Reply {
        /// The query id.
        id: u16,
        /// Opcode and RD as sent.
        flags: u16,
        /// FORMERR or NOTIMP.
        rcode: Rcode,
    },
}

const QR: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;

impl Question {
    /// The lowercase wire name, root label included.
    pub(crate) fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// How many labels (root not counted).
    pub(crate) fn label_count(&self) -> usize {
        self.nlabels
    }

    /// The wire name from label `i` on (the suffix of `label_count() - i` labels).
    pub(crate) fn suffix(&self, i: usize) -> &[u8] {
        let start = if i >= self.nlabels {
            self.name_len - 1
        } else {
            usize::from(self.labels[i])
        };
        &self.name[start..self.name_len]
    }

    /// Offset in the message of label `i` (for compression pointers into the question).
    pub(crate) fn label_offset(&self, i: usize) -> usize {
        HEADER
            + if i >= self.nlabels {
                self.name_len - 1
            } else {
                usize::from(self.labels[i])
            }
    }
}

/// Parses a query. Only the question and the additional section's OPT are interpreted;
/// answer and authority records make it malformed (no standard query carries them).
pub(crate) fn parse(msg: &[u8]) -> Result<Question, Malformed> {
    if msg.len() < HEADER {
        return Err(Malformed::Drop);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let raw_flags = u16::from_be_bytes([msg[2], msg[3]]);
    if raw_flags & QR != 0 {
        // Answering a response could loop two servers into each other.
        return Err(Malformed::Drop);
    }
    let flags = raw_flags & (OPCODE_MASK | RD | CD);
    let form = |rcode| Malformed::Reply { id, flags, rcode };
    if raw_flags & OPCODE_MASK != 0 {
        return Err(form(Rcode::NotImp));
    }
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    if qd != 1 || an != 0 || ns != 0 {
        return Err(form(Rcode::FormErr));
    }
    let mut q = Question {
        id,
        flags,
        qtype: 0,
        qclass: 0,
        end: 0,
        name: [0; MAX_NAME],
        name_len: 0,
        labels: [0; 128],
        nlabels: 0,
        edns: None,
    };
    let mut pos = HEADER;
    loop {
        let len = usize::from(*msg.get(pos).ok_or(form(Rcode::FormErr))?);
        if len & 0xc0 != 0 {
            // The question is the first name: a pointer could only point backwards into the
            // header, and the 0x40/0x80 label types are obsolete.
            return Err(form(Rcode::FormErr));
        }
        if q.name_len + 1 + len > MAX_NAME || pos + 1 + len > msg.len() {
            return Err(form(Rcode::FormErr));
        }
        if len == 0 {
            q.name[q.name_len] = 0;
            q.name_len += 1;
            pos += 1;
            break;
        }
        // At most 127 labels fit in 255 bytes, so `labels` cannot overflow.
        q.labels[q.nlabels] = q.name_len as u8;
        q.nlabels += 1;
        q.name[q.name_len] = len as u8;
        let dst = &mut q.name[q.name_len + 1..q.name_len + 1 + len];
        dst.copy_from_slice(&msg[pos + 1..pos + 1 + len]);
        dst.make_ascii_lowercase();
        q.name_len += 1 + len;
        pos += 1 + len;
    }
    if pos + 4 > msg.len() {
        return Err(form(Rcode::FormErr));
    }
    q.qtype = count(pos);
    q.qclass = count(pos + 2);
    pos += 4;
    q.end = pos;
    if q.qtype == rtype::OPT {
        return Err(form(Rcode::FormErr));
    }
    for _ in 0..ar {
        let (rr_type, next) = skip_rr_header(msg, pos).ok_or(form(Rcode::FormErr))?;
        if rr_type == rtype::OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root.
            if q.edns.is_some() || msg[pos] != 0 {
                return Err(form(Rcode::FormErr));
            }
            let class = count(next - 8);
            q.edns = Some(Edns {
                udp_size: class,
                version: msg[next - 5],
            });
        }
        let rdlen = usize::from(count(next - 2));
        pos = next + rdlen;
        if pos > msg.len() {
            return Err(form(Rcode::FormErr));
        }
    }
    Ok(q)
}

/// Skips a record's owner name and fixed fields; returns its type and the offset of its
/// RDATA (so the class is at `-8`, the TTL at `-6`, the RDLENGTH at `-2`).
fn skip_rr_header(msg: &[u8], mut pos: usize) -> Option<(u16, usize)> {
    // A name ends at the root label or at its first pointer; at most 128 labels.
    for _ in 0..128 {
        let len = usize::from(*msg.get(pos)?);
        match len & 0xc0 {
            0x00 if len == 0 => {
                pos += 1;
                return fixed(msg, pos);
            }
            0x00 => pos += 1 + len,
            0xc0 => {
                pos += 2;
                return fixed(msg, pos);
            }
            _ => return None,
        }
    }
    None
}

fn fixed(msg: &[u8], pos: usize) -> Option<(u16, usize)> {
    if pos + 10 > msg.len() {
        return None;
    }
    Some((u16::from_be_bytes([msg[pos], msg[pos + 1]]), pos + 10))
}

/// Writes a response header.
pub(crate) fn put_header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// Response flags from the query's echoed bits.
pub(crate) fn response_flags(query_flags: u16, aa: bool, ra: bool, rcode: Rcode) -> u16 {
    let mut f = QR | (query_flags & (OPCODE_MASK | RD | CD)) | (rcode.value() & 0xf);
    if aa {
        f |= 0x0400;
    }
    if ra {
        f |= 0x0080;
    }
    f
}

/// Sets the TC bit of a message written to `out`.
pub(crate) fn set_tc(out: &mut [u8]) {
    if let Some(b) = out.get_mut(2) {
        *b |= 0x02;
    }
}

/// Overwrites one of the four section counts (0 = question … 3 = additional).
pub(crate) fn set_count(out: &mut [u8], section: usize, n: u16) {
    let at = 4 + 2 * section;
    if let Some(dst) = out.get_mut(at..at + 2) {
        dst.copy_from_slice(&n.to_be_bytes());
    }
}

/// Appends our OPT record: payload size [`EDNS_SIZE`], the extended rcode bits, version 0,
/// no DO bit (we sign nothing), no options.
pub(crate) fn put_opt(out: &mut Vec<u8>, rcode: Rcode) {
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_SIZE.to_be_bytes());
    out.push((rcode.value() >> 4) as u8);
    out.extend_from_slice(&[0, 0, 0, 0, 0]);
}

/// Appends a compression pointer to `offset`.
pub(crate) fn put_pointer(out: &mut Vec<u8>, offset: usize) {
    debug_assert!(offset < 0x4000, "pointers reach 14 bits");
    out.extend_from_slice(&(0xc000 | offset as u16).to_be_bytes());
}

/// Converts a dotted name (no trailing dot) into lowercase wire form with the root label;
/// `None` when a label is empty or too long, or the name too long.
pub(crate) fn encode_name(dotted: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(dotted.len() + 2);
    if !dotted.is_empty() {
        for label in dotted.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME).then_some(out)
}

/// How many labels a wire name has (root not counted).
pub(crate) fn label_count(wire: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        n += 1;
        pos += 1 + usize::from(len);
    }
    n
}

#[cfg(test)]
#[path = "wire/tests.rs"]
mod tests;
