//! Encoders, for tests and for sending a header to a dyno that wants one.

use std::net::{IpAddr, SocketAddr};

use super::header::{Command, V2_SIGNATURE, fold, to_v6};
use super::v2::{FIXED_LEN, TCP4, TCP4_LEN, TCP6, TCP6_LEN, UNSPEC};

/// A v1 header for a TCP connection from `src` to `dst`.
///
/// Both addresses are folded ([`crate::accept::canonical_addr`]); if both are then IPv4
/// the line says `TCP4`, otherwise `TCP6` with any IPv4 address written as mapped IPv6
/// (v1 has no way to mix families).
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = (fold(src), fold(dst));
    let line = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            format!("PROXY TCP4 {s} {d} {} {}\r\n", src.port(), dst.port())
        }
        (s, d) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            to_v6(s),
            to_v6(d),
            src.port(),
            dst.port()
        ),
    };
    line.into_bytes()
}

/// A v2 header. `Command::Local` writes a LOCAL header with the UNSPEC family and no
/// address (what HAProxy sends for its health checks; `src`/`dst` are ignored);
/// `Command::Proxy` writes TCP over IPv4 when both addresses fold to IPv4, else over IPv6.
pub fn encode_v2(command: Command, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + TCP6_LEN);
    out.extend_from_slice(&V2_SIGNATURE);
    let (src, dst) = (fold(src), fold(dst));
    match command {
        Command::Local => {
            out.extend_from_slice(&[0x20, UNSPEC, 0, 0]);
        }
        Command::Proxy => match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out.extend_from_slice(&[0x21, TCP4, 0, TCP4_LEN as u8]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
            }
            (s, d) => {
                out.extend_from_slice(&[0x21, TCP6, 0, TCP6_LEN as u8]);
                out.extend_from_slice(&to_v6(s).octets());
                out.extend_from_slice(&to_v6(d).octets());
            }
        },
    }
    if command == Command::Proxy {
        out.extend_from_slice(&src.port().to_be_bytes());
        out.extend_from_slice(&dst.port().to_be_bytes());
    }
    out
}
