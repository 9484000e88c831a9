//! The SOCKS5 wire format, sans-io: the messages, the `parse_*` functions (whose contract
//! the parent module states) and the reply and UDP-header encoders.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use crate::address::Address;

/// The protocol version byte.
pub const VERSION: u8 = 5;
/// The user/password sub-negotiation version byte (RFC 1929).
pub const AUTH_VERSION: u8 = 1;
/// Method: no authentication.
pub const METHOD_NONE: u8 = 0x00;
/// Method: user/password.
pub const METHOD_USER_PASS: u8 = 0x02;
/// Method reply: no acceptable method.
pub const METHOD_UNACCEPTABLE: u8 = 0xff;
/// The longest message a client sends in a handshake: user/password with a 255-byte user
/// and password (a request with a 255-byte domain is 262 bytes).
pub const MAX_MESSAGE: usize = 1 + 1 + 255 + 1 + 255;

/// A SOCKS5 reply code (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// 0x00: succeeded.
    Succeeded = 0x00,
    /// 0x01: general SOCKS server failure.
    GeneralFailure = 0x01,
    /// 0x02: connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// 0x03: network unreachable.
    NetworkUnreachable = 0x03,
    /// 0x04: host unreachable.
    HostUnreachable = 0x04,
    /// 0x05: connection refused.
    ConnectionRefused = 0x05,
    /// 0x06: TTL expired (used for a connect timeout).
    TtlExpired = 0x06,
    /// 0x07: command not supported.
    CommandNotSupported = 0x07,
    /// 0x08: address type not supported.
    AddressTypeNotSupported = 0x08,
}

/// A handshake message that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    /// The first byte is not 5 (or 1 in the user/password sub-negotiation).
    #[error("unsupported SOCKS version {0}")]
    Version(u8),
    /// A greeting that offers no method at all.
    #[error("greeting offers no method")]
    NoMethods,
    /// The reserved byte of a request is not zero.
    #[error("reserved byte is {0:#04x}, not zero")]
    Reserved(u8),
    /// A command other than CONNECT, BIND or UDP ASSOCIATE.
    #[error("unknown command {0:#04x}")]
    Command(u8),
    /// An address type other than IPv4, domain or IPv6.
    #[error("unknown address type {0:#04x}")]
    AddressType(u8),
    /// An empty or non-host-name domain.
    #[error("invalid domain name")]
    Domain,
    /// A UDP datagram that is a fragment (FRAG ≠ 0): fragments are not supported.
    #[error("fragmented UDP datagram")]
    Fragment,
    /// A UDP datagram shorter than its header.
    #[error("truncated UDP datagram")]
    Truncated,
}

impl SocksError {
    /// The reply code a request with this error gets (`None`: close without a reply,
    /// because the client does not speak SOCKS5 and would not understand one).
    pub fn reply_code(&self) -> Option<Reply> {
        match self {
            Self::Version(_) | Self::NoMethods | Self::Fragment | Self::Truncated => None,
            Self::Reserved(_) | Self::Domain => Some(Reply::GeneralFailure),
            Self::Command(_) => Some(Reply::CommandNotSupported),
            Self::AddressType(_) => Some(Reply::AddressTypeNotSupported),
        }
    }
}

/// The methods a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Greeting {
    /// It offers "no authentication".
    pub no_auth: bool,
    /// It offers user/password.
    pub user_pass: bool,
}

/// RFC 1929 credentials (arbitrary bytes on the wire; kept as bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (the app name for spaced).
    pub user: Vec<u8>,
    /// The password (the app's `egress_token`).
    pub pass: Vec<u8>,
}

/// A request's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// CONNECT: a TCP tunnel.
    Connect,
    /// BIND: not supported (answered 0x07).
    Bind,
    /// UDP ASSOCIATE: a datagram relay.
    UdpAssociate,
}

/// A SOCKS5 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client asks for.
    pub command: Command,
    /// Where to.
    pub address: Address,
}

/// Parses the method-selection greeting: `VER NMETHODS METHODS…`.
///
/// # Errors
/// A version other than 5, or no methods.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(Greeting, usize)>, SocksError> {
    let Some(&ver) = buf.first() else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    let Some(&n) = buf.get(1) else {
        return Ok(None);
    };
    if n == 0 {
        return Err(SocksError::NoMethods);
    }
    let end = 2 + usize::from(n);
    let Some(methods) = buf.get(2..end) else {
        return Ok(None);
    };
    let mut g = Greeting::default();
    for &m in methods {
        match m {
            METHOD_NONE => g.no_auth = true,
            METHOD_USER_PASS => g.user_pass = true,
            _ => {}
        }
    }
    Ok(Some((g, end)))
}

/// Parses the RFC 1929 sub-negotiation: `VER ULEN UNAME PLEN PASSWD`.
///
/// # Errors
/// A version other than 1.
pub fn parse_credentials(buf: &[u8]) -> Result<Option<(Credentials, usize)>, SocksError> {
    let Some(&ver) = buf.first() else {
        return Ok(None);
    };
    if ver != AUTH_VERSION {
        return Err(SocksError::Version(ver));
    }
    let Some(&ulen) = buf.get(1) else {
        return Ok(None);
    };
    let uend = 2 + usize::from(ulen);
    let Some(user) = buf.get(2..uend) else {
        return Ok(None);
    };
    let Some(&plen) = buf.get(uend) else {
        return Ok(None);
    };
    let pend = uend + 1 + usize::from(plen);
    let Some(pass) = buf.get(uend + 1..pend) else {
        return Ok(None);
    };
    let creds = Credentials {
        user: user.to_vec(),
        pass: pass.to_vec(),
    };
    Ok(Some((creds, pend)))
}

/// Parses a request: `VER CMD RSV ATYP DST.ADDR DST.PORT`.
///
/// # Errors
/// Bad version, reserved byte, command, address type or domain; see
/// [`SocksError::reply_code`] for the reply each gets.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, SocksError> {
    let Some(head) = buf.get(..3) else {
        // Check the version as soon as it is there, so a stray client is cut off early.
        return match buf.first() {
            Some(&v) if v != VERSION => Err(SocksError::Version(v)),
            _ => Ok(None),
        };
    };
    if head[0] != VERSION {
        return Err(SocksError::Version(head[0]));
    }
    let command = match head[1] {
        0x01 => Command::Connect,
        0x02 => Command::Bind,
        0x03 => Command::UdpAssociate,
        c => return Err(SocksError::Command(c)),
    };
    if head[2] != 0 {
        return Err(SocksError::Reserved(head[2]));
    }
    let Some((address, len)) = parse_address(&buf[3..])? else {
        return Ok(None);
    };
    Ok(Some((Request { command, address }, 3 + len)))
}

/// Parses a UDP relay datagram: `RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA`, returning the
/// destination and the payload.
///
/// # Errors
/// Truncated, fragmented, or with a bad address.
pub fn parse_udp(buf: &[u8]) -> Result<(Address, &[u8]), SocksError> {
    let Some(head) = buf.get(..3) else {
        return Err(SocksError::Truncated);
    };
    if head[0] != 0 || head[1] != 0 {
        return Err(SocksError::Reserved(head[0] | head[1]));
    }
    if head[2] != 0 {
        return Err(SocksError::Fragment);
    }
    match parse_address(&buf[3..])? {
        Some((address, len)) => Ok((address, &buf[3 + len..])),
        None => Err(SocksError::Truncated),
    }
}

/// `ATYP ADDR PORT`: `Ok(None)` when incomplete.
fn parse_address(buf: &[u8]) -> Result<Option<(Address, usize)>, SocksError> {
    let Some(&atyp) = buf.first() else {
        return Ok(None);
    };
    let (addr_len, start) = match atyp {
        0x01 => (4, 1),
        0x04 => (16, 1),
        0x03 => match buf.get(1) {
            None => return Ok(None),
            Some(0) => return Err(SocksError::Domain),
            Some(&n) => (usize::from(n), 2),
        },
        t => return Err(SocksError::AddressType(t)),
    };
    let end = start + addr_len + 2;
    let Some(raw) = buf.get(start..end) else {
        return Ok(None);
    };
    let (addr, port) = raw.split_at(addr_len);
    let port = u16::from_be_bytes([port[0], port[1]]);
    let address = match atyp {
        0x01 => {
            let o: [u8; 4] = addr.try_into().map_err(|_| SocksError::Truncated)?;
            Address::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), port))
        }
        0x04 => {
            let o: [u8; 16] = addr.try_into().map_err(|_| SocksError::Truncated)?;
            Address::Ip(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => domain(addr, port)?,
    };
    Ok(Some((address, end)))
}

/// A domain field: a host name, or an IP literal some clients send as a domain.
fn domain(raw: &[u8], port: u16) -> Result<Address, SocksError> {
    let ok = raw
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    let text = std::str::from_utf8(raw).map_err(|_| SocksError::Domain)?;
    if !ok || text.starts_with('.') || text.contains("..") {
        return Err(SocksError::Domain);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Address::Ip(SocketAddr::new(ip, port)));
    }
    // A colon is only valid inside an IPv6 literal.
    if text.contains(':') {
        return Err(SocksError::Domain);
    }
    Ok(Address::Domain(text.to_ascii_lowercase(), port))
}

/// Appends a reply `VER REP RSV ATYP BND.ADDR BND.PORT`.
pub fn encode_reply(reply: Reply, bound: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, reply as u8, 0]);
    encode_address(bound, out);
}

/// Appends a UDP datagram header `RSV RSV FRAG ATYP ADDR PORT` for `from`.
pub fn encode_udp_header(from: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0]);
    encode_address(from, out);
}

fn encode_address(addr: SocketAddr, out: &mut Vec<u8>) {
    match spaced_config::canonical(addr.ip()) {
        IpAddr::V4(v4) => {
            out.push(0x01);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(0x04);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(b""), Ok(None));
        assert_eq!(parse_greeting(b"\x05"), Ok(None));
        assert_eq!(parse_greeting(b"\x05\x02\x00"), Ok(None));
        let (g, n) = parse_greeting(b"\x05\x02\x00\x02rest").unwrap().unwrap();
        assert_eq!(n, 4);
        assert!(g.no_auth && g.user_pass);
        let (g, _) = parse_greeting(b"\x05\x01\x80").unwrap().unwrap();
        assert!(!g.no_auth && !g.user_pass);
        assert_eq!(parse_greeting(b"\x04\x01\x00"), Err(SocksError::Version(4)));
        assert_eq!(parse_greeting(b"\x05\x00"), Err(SocksError::NoMethods));
        assert_eq!(
            parse_greeting(b"GET / HTTP/1.1"),
            Err(SocksError::Version(b'G'))
        );
    }

    #[test]
    fn credentials() {
        let msg = b"\x01\x03api\x06s3cret";
        for cut in 0..msg.len() {
            assert_eq!(parse_credentials(&msg[..cut]), Ok(None), "cut {cut}");
        }
        let (c, n) = parse_credentials(msg).unwrap().unwrap();
        assert_eq!(
            (c.user.as_slice(), c.pass.as_slice(), n),
            (&b"api"[..], &b"s3cret"[..], msg.len())
        );
        let (c, _) = parse_credentials(b"\x01\x00\x00").unwrap().unwrap();
        assert!(c.user.is_empty() && c.pass.is_empty());
        assert_eq!(parse_credentials(b"\x05\x01a"), Err(SocksError::Version(5)));
        let mut longest = vec![1, 255];
        longest.extend_from_slice(&[b'u'; 255]);
        longest.push(255);
        longest.extend_from_slice(&[b'p'; 255]);
        assert_eq!(parse_credentials(&longest).unwrap().unwrap().1, MAX_MESSAGE);
    }

    #[test]
    fn requests() {
        let v4 = b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90";
        for cut in 0..v4.len() {
            assert_eq!(parse_request(&v4[..cut]), Ok(None), "cut {cut}");
        }
        let (r, n) = parse_request(v4).unwrap().unwrap();
        assert_eq!(n, v4.len());
        assert_eq!(r.command, Command::Connect);
        assert_eq!(r.address, Address::Ip("127.0.0.1:8080".parse().unwrap()));

        let mut v6 = vec![5, 3, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0, 53]);
        let (r, _) = parse_request(&v6).unwrap().unwrap();
        assert_eq!(r.command, Command::UdpAssociate);
        assert_eq!(r.address, Address::Ip("[::1]:53".parse().unwrap()));

        let dom = b"\x05\x01\x00\x03\x0bExample.COM\x01\xbb";
        let (r, _) = parse_request(dom).unwrap().unwrap();
        assert_eq!(r.address, Address::Domain("example.com".into(), 443));
        assert_eq!(r.address.port(), 443);

        let lit = b"\x05\x01\x00\x03\x0910.0.0.1 \x00\x50";
        assert_eq!(parse_request(lit), Err(SocksError::Domain));
        let lit = b"\x05\x01\x00\x03\x0810.0.0.1\x00\x50";
        assert_eq!(
            parse_request(lit).unwrap().unwrap().0.address,
            Address::Ip("10.0.0.1:80".parse().unwrap())
        );
    }

    #[test]
    fn request_errors() {
        assert_eq!(parse_request(b"\x04"), Err(SocksError::Version(4)));
        assert_eq!(
            parse_request(b"\x05\x09\x00\x01"),
            Err(SocksError::Command(9))
        );
        assert_eq!(
            parse_request(b"\x05\x01\x01\x01"),
            Err(SocksError::Reserved(1))
        );
        assert_eq!(
            parse_request(b"\x05\x01\x00\x07"),
            Err(SocksError::AddressType(7))
        );
        assert_eq!(
            parse_request(b"\x05\x01\x00\x03\x00"),
            Err(SocksError::Domain)
        );
        assert_eq!(
            parse_request(b"\x05\x01\x00\x03\x03a b\x00\x50"),
            Err(SocksError::Domain)
        );
        assert_eq!(
            parse_request(b"\x05\x01\x00\x03\x02..\x00\x50"),
            Err(SocksError::Domain)
        );
        assert_eq!(
            parse_request(b"\x05\x01\x00\x03\x03a:b\x00\x50"),
            Err(SocksError::Domain)
        );
        assert_eq!(
            parse_request(b"\x05\x01\x00\x03\x02\xc3\xa9\x00\x50"),
            Err(SocksError::Domain)
        );
        assert_eq!(
            SocksError::Command(9).reply_code(),
            Some(Reply::CommandNotSupported)
        );
        assert_eq!(
            SocksError::AddressType(9).reply_code(),
            Some(Reply::AddressTypeNotSupported)
        );
        assert_eq!(SocksError::Version(4).reply_code(), None);
    }

    #[test]
    fn udp_datagrams() {
        let d = b"\x00\x00\x00\x01\x7f\x00\x00\x01\x00\x35hello";
        let (a, payload) = parse_udp(d).unwrap();
        assert_eq!(a, Address::Ip("127.0.0.1:53".parse().unwrap()));
        assert_eq!(payload, b"hello");
        assert_eq!(
            parse_udp(b"\x00\x00\x01\x01\x7f\x00\x00\x01\x00\x35"),
            Err(SocksError::Fragment)
        );
        assert_eq!(
            parse_udp(b"\x00\x00\x00\x01\x7f"),
            Err(SocksError::Truncated)
        );
        assert_eq!(parse_udp(b"\x00"), Err(SocksError::Truncated));
        assert_eq!(parse_udp(b"\x00\x01\x00"), Err(SocksError::Reserved(1)));
    }

    #[test]
    fn encoding_round_trips() {
        for sa in ["127.0.0.10:1080", "[::1]:53", "[::ffff:10.0.0.1]:80"] {
            let sa: SocketAddr = sa.parse().unwrap();
            let mut out = Vec::new();
            encode_udp_header(sa, &mut out);
            out.extend_from_slice(b"x");
            let (a, p) = parse_udp(&out).unwrap();
            let want = spaced_net::canonical_addr(sa);
            assert_eq!((a, p), (Address::Ip(want), &b"x"[..]));
            let mut rep = Vec::new();
            encode_reply(Reply::NotAllowed, sa, &mut rep);
            assert_eq!(&rep[..3], &[5, 2, 0]);
        }
    }
}
