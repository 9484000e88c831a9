//! PROXY v2: a 12-byte signature, version/command, family/transport, a big-endian length,
//! then addresses and TLVs. We take TCP over IPv4/IPv6, UNSPEC and UNIX (no address), and
//! LOCAL with anything; TLVs are walked for well-formedness and otherwise ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::header::{Command, Parsed, ProxyError, ProxyHeader, V2_MAX_LEN, V2_SIGNATURE};

/// Signature, version/command, family, 2-byte length.
pub(super) const FIXED_LEN: usize = 16;

/// Family/transport bytes (spec section 2.2, byte 14).
pub(super) const UNSPEC: u8 = 0x00;
pub(super) const TCP4: u8 = 0x11;
pub(super) const TCP6: u8 = 0x21;
pub(super) const UNIX_STREAM: u8 = 0x31;

/// Address block sizes for each family.
pub(super) const TCP4_LEN: usize = 12;
pub(super) const TCP6_LEN: usize = 36;
const UNIX_LEN: usize = 216;

pub(super) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::Signature);
    }
    // Check each fixed byte as soon as it arrives, so junk is refused early.
    let ver_cmd = buf.get(12).copied();
    let command = match ver_cmd {
        None => None,
        Some(b) if b >> 4 != 2 => return Err(ProxyError::V2Version(b >> 4)),
        Some(b) => match b & 0x0f {
            0 => Some(Command::Local),
            1 => Some(Command::Proxy),
            other => return Err(ProxyError::V2Command(other)),
        },
    };
    let family = buf.get(13).copied();
    if let (Some(Command::Proxy), Some(fam)) = (command, family)
        && !matches!(fam, UNSPEC | TCP4 | TCP6 | UNIX_STREAM)
    {
        return Err(ProxyError::V2Family(fam));
    }
    let (Some(command), Some(family), Some(&[hi, lo])) = (command, family, buf.get(14..16)) else {
        return Ok(Parsed::Incomplete {
            need_at_least: FIXED_LEN,
        });
    };
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    let total = FIXED_LEN + body_len;
    if total > V2_MAX_LEN {
        return Err(ProxyError::V2TooLong(total));
    }
    let addr_len = match (command, family) {
        (Command::Local, _) | (_, UNSPEC) => 0,
        (_, TCP4) => TCP4_LEN,
        (_, TCP6) => TCP6_LEN,
        _ => UNIX_LEN,
    };
    if body_len < addr_len {
        return Err(ProxyError::V2AddressLength {
            family,
            len: body_len,
        });
    }
    let Some(body) = buf.get(FIXED_LEN..total) else {
        return Ok(Parsed::Incomplete {
            need_at_least: total,
        });
    };
    let (addrs, tlvs) = body.split_at(addr_len);
    // For LOCAL and UNSPEC the spec says to ignore the whole block (it may hold addresses
    // we do not decode), so only a decoded address block is followed by checked TLVs.
    if addr_len > 0 {
        check_tlvs(&buf[..total], total - tlvs.len())?;
    }
    let (source, destination) = match (command, family) {
        (Command::Proxy, TCP4) => {
            let ip = |at: usize| Ipv4Addr::from(octets::<4>(addrs, at));
            (
                Some(SocketAddr::new(IpAddr::V4(ip(0)), port(addrs, 8))),
                Some(SocketAddr::new(IpAddr::V4(ip(4)), port(addrs, 10))),
            )
        }
        (Command::Proxy, TCP6) => {
            let ip = |at: usize| Ipv6Addr::from(octets::<16>(addrs, at));
            (
                Some(SocketAddr::new(IpAddr::V6(ip(0)), port(addrs, 32))),
                Some(SocketAddr::new(IpAddr::V6(ip(16)), port(addrs, 34))),
            )
        }
        // LOCAL, UNSPEC, UNIX: the connection's own endpoints stand.
        _ => (None, None),
    };
    Ok(Parsed::Complete {
        header: ProxyHeader {
            command,
            source,
            destination,
        },
        len: total,
    })
}

/// `N` bytes at `at`; the address block length was checked, so the zero fallback is never
/// taken (it only spares a panic path).
fn octets<const N: usize>(block: &[u8], at: usize) -> [u8; N] {
    block
        .get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

fn port(block: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(octets::<2>(block, at))
}

/// TLV type of the header's CRC32c (spec section 2.2.5).
const PP2_TYPE_CRC32C: u8 = 0x03;

/// Each TLV is type (1), big-endian length (2), value; they must tile `header[start..]`
/// exactly. A CRC32c TLV, when present, must be 4 bytes and match: the spec requires a
/// receiver that supports it to check it, and refusing a corrupted header is cheap.
fn check_tlvs(header: &[u8], start: usize) -> Result<(), ProxyError> {
    let mut at = start;
    while at < header.len() {
        let Some(&[kind, hi, lo]) = header.get(at..at + 3) else {
            return Err(ProxyError::V2Tlv);
        };
        let value = at + 3;
        let end = value + usize::from(u16::from_be_bytes([hi, lo]));
        let Some(bytes) = header.get(value..end) else {
            return Err(ProxyError::V2Tlv);
        };
        if kind == PP2_TYPE_CRC32C {
            let Ok(sent) = <[u8; 4]>::try_from(bytes) else {
                return Err(ProxyError::V2Tlv);
            };
            // The checksum covers the whole header with its own value zeroed.
            let crc = crc32c(
                crc32c(crc32c(!0, &header[..value]), &[0; 4]),
                &header[end..],
            );
            if !crc != u32::from_be_bytes(sent) {
                return Err(ProxyError::V2Checksum);
            }
        }
        at = end;
    }
    Ok(())
}

/// CRC-32C (Castagnoli), bitwise: headers are at most 536 bytes, so a table buys nothing.
/// `crc` is the running register (start with `!0`, finish with `!`).
pub(super) fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    crc
}
