//! PROXY v1: `PROXY TCP4|TCP6|UNKNOWN <src> <dst> <sport> <dport>\r\n`, at most 107 bytes.
//!
//! Strict where the spec allows slack: single spaces, no empty fields, IPv4 dotted quads
//! without leading zeros (`010.0.0.1` is octal to some parsers and decimal to others, a
//! classic ACL bypass), ports as plain decimal 0-65535 without leading zeros, addresses of
//! the family the protocol names, and nothing but printable ASCII.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::header::{Command, Parsed, ProxyError, ProxyHeader, V1_MAX_LEN};

const PREFIX: &[u8] = b"PROXY ";

/// Which address family the protocol field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp4,
    Tcp6,
}

/// Field positions after the protocol.
const SRC: usize = 0;
const DST: usize = 1;
const SPORT: usize = 2;
const FIELDS: usize = 4;

pub(super) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let n = window.len().min(PREFIX.len());
    if window[..n] != PREFIX[..n] {
        return Err(ProxyError::Signature);
    }
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            // `lf >= 6`: the prefix check above rules out a '\n' in the first six bytes.
            let Some(line) = window[..lf].strip_suffix(b"\r") else {
                return Err(field("line ending"));
            };
            let header = parse_line(&line[PREFIX.len()..])?;
            Ok(Parsed::Complete {
                header,
                len: lf + 1,
            })
        }
        None if window.len() >= V1_MAX_LEN => Err(ProxyError::V1TooLong),
        None => check_prefix(window).map(|need| Parsed::Incomplete {
            need_at_least: need.clamp(window.len() + 1, V1_MAX_LEN),
        }),
    }
}

fn field(name: &'static str) -> ProxyError {
    ProxyError::V1Field { field: name }
}

/// Parses the line between `PROXY ` and CRLF.
fn parse_line(rest: &[u8]) -> Result<ProxyHeader, ProxyError> {
    let mut tokens = rest.split(|&b| b == b' ');
    let proto = tokens.next().unwrap_or_default();
    let proto = match proto {
        b"TCP4" => Proto::Tcp4,
        b"TCP6" => Proto::Tcp6,
        b"UNKNOWN" => {
            // The spec says to ignore what follows UNKNOWN; we still refuse control bytes
            // and non-ASCII, which no real proxy sends.
            if !rest.iter().all(|b| (0x20..0x7f).contains(b)) {
                return Err(field("character"));
            }
            return Ok(ProxyHeader {
                command: Command::Proxy,
                source: None,
                destination: None,
            });
        }
        _ => return Err(field("protocol")),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
    ) else {
        return Err(field("field count"));
    };
    let src_ip = parse_ip(proto, src, "source address")?;
    let dst_ip = parse_ip(proto, dst, "destination address")?;
    let sport = parse_port(sport, "source port")?;
    let dport = parse_port(dport, "destination port")?;
    Ok(ProxyHeader {
        command: Command::Proxy,
        source: Some(SocketAddr::new(src_ip, sport)),
        destination: Some(SocketAddr::new(dst_ip, dport)),
    })
}

fn parse_ip(proto: Proto, tok: &[u8], name: &'static str) -> Result<IpAddr, ProxyError> {
    if !tok.iter().all(|&b| allowed(proto, b)) {
        return Err(field(name));
    }
    // All bytes are ASCII here, so this cannot fail; the error arm is for the compiler.
    let text = std::str::from_utf8(tok).map_err(|_| field(name))?;
    match proto {
        Proto::Tcp4 => {
            if !strict_dotted_quad(tok) {
                return Err(field(name));
            }
            text.parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| field(name))
        }
        Proto::Tcp6 => text
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| field(name)),
    }
}

/// Four decimal octets of 1-3 digits, no leading zeros: `std` already refuses most
/// oddities, this states the rule where the attack is.
fn strict_dotted_quad(tok: &[u8]) -> bool {
    let mut parts = 0;
    for part in tok.split(|&b| b == b'.') {
        parts += 1;
        let ok = !part.is_empty()
            && part.len() <= 3
            && part.iter().all(u8::is_ascii_digit)
            && (part.len() == 1 || part[0] != b'0');
        if !ok {
            return false;
        }
    }
    parts == 4
}

fn parse_port(tok: &[u8], name: &'static str) -> Result<u16, ProxyError> {
    let canonical = !tok.is_empty()
        && tok.len() <= 5
        && tok.iter().all(u8::is_ascii_digit)
        && (tok.len() == 1 || tok[0] != b'0');
    if !canonical {
        return Err(field(name));
    }
    let value = tok
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    u16::try_from(value).map_err(|_| field(name))
}

/// Bytes that may appear in an address of `proto`.
fn allowed(proto: Proto, b: u8) -> bool {
    match proto {
        Proto::Tcp4 => b.is_ascii_digit() || b == b'.',
        Proto::Tcp6 => b.is_ascii_hexdigit() || b == b':' || b == b'.',
    }
}

/// The shortest text of each field (`1.1.1.1`, `::`, `0`) and the longest
/// (`255.255.255.255`, a v6 address with an embedded v4 part, `65535`).
fn min_len(proto: Proto, idx: usize) -> usize {
    match (proto, idx) {
        (Proto::Tcp4, SRC | DST) => 7,
        (Proto::Tcp6, SRC | DST) => 2,
        _ => 1,
    }
}

fn max_len(proto: Proto, idx: usize) -> usize {
    match (proto, idx) {
        (Proto::Tcp4, SRC | DST) => 15,
        (Proto::Tcp6, SRC | DST) => 45,
        _ => 5,
    }
}

fn field_name(idx: usize) -> &'static str {
    match idx {
        SRC => "source address",
        DST => "destination address",
        SPORT => "source port",
        // DPORT, the last field
        _ => "destination port",
    }
}

/// Validates an unterminated header (no `\n` yet, shorter than 107 bytes) and returns a
/// lower bound on its total length (the caller clamps it above the buffer length).
///
/// Rejecting early matters: a client that is not a proxy should be closed on its first
/// bytes, not after the deadline.
fn check_prefix(window: &[u8]) -> Result<usize, ProxyError> {
    let Some(rest) = window.get(PREFIX.len()..) else {
        return Ok(15);
    };
    // A trailing '\r' can only be the start of the CRLF, so the line must be whole.
    if let Some(line) = rest.strip_suffix(b"\r") {
        if line.contains(&b'\r') {
            return Err(field("character"));
        }
        parse_line(line)?;
        return Ok(window.len() + 1);
    }
    if rest.contains(&b'\r') {
        return Err(field("line ending"));
    }
    let mut tokens = rest.split(|&b| b == b' ');
    let proto_tok = tokens.next().unwrap_or_default();
    let proto_done = rest.len() > proto_tok.len();
    let proto = if proto_done {
        match proto_tok {
            b"TCP4" => Proto::Tcp4,
            b"TCP6" => Proto::Tcp6,
            b"UNKNOWN" => {
                if !rest.iter().all(|b| (0x20..0x7f).contains(b)) {
                    return Err(field("character"));
                }
                return Ok(window.len() + 2);
            }
            _ => return Err(field("protocol")),
        }
    } else {
        let is_prefix = |full: &[u8]| full.starts_with(proto_tok);
        return if is_prefix(b"UNKNOWN") {
            Ok(PREFIX.len() + 7 + 2)
        } else if is_prefix(b"TCP4") || is_prefix(b"TCP6") {
            // "PROXY TCP6 :: :: 0 0\r\n"
            Ok(22)
        } else {
            Err(field("protocol"))
        };
    };
    // At most FIELDS tokens; `proto_done` means at least one (maybe empty) field.
    let mut fields: [&[u8]; FIELDS] = [&[]; FIELDS];
    let mut count = 0;
    for tok in tokens {
        let Some(slot) = fields.get_mut(count) else {
            return Err(field("field count"));
        };
        *slot = tok;
        count += 1;
    }
    let last = count.saturating_sub(1);
    for (idx, tok) in fields[..count].iter().enumerate() {
        let name = field_name(idx);
        if idx < last {
            // A finished field: it must parse now.
            if idx <= DST {
                parse_ip(proto, tok, name)?;
            } else {
                parse_port(tok, name)?;
            }
        } else {
            let shape_ok = tok.len() <= max_len(proto, idx)
                && if idx <= DST {
                    tok.iter().all(|&b| allowed(proto, b))
                } else {
                    tok.iter().all(u8::is_ascii_digit) && !(tok.len() > 1 && tok[0] == b'0')
                };
            if !shape_ok {
                return Err(field(name));
            }
        }
    }
    let partial = fields[last].len();
    let remaining = min_len(proto, last).saturating_sub(partial)
        + (last + 1..FIELDS)
            .map(|idx| 1 + min_len(proto, idx))
            .sum::<usize>()
        + 2;
    Ok(window.len() + remaining)
}
