//! PROXY protocol v1 (text) and v2 (binary), as specified by HAProxy's
//! `proxy-protocol.txt`: a strict, bounded, sans-io parser ([`parse`]), an async reader
//! that consumes exactly the header and nothing after it ([`read_header`]), and encoders
//! for tests and for talking to dynos that expect a header.
//!
//! Every input is hostile: the parser never reads more than [`MAX_HEADER_LEN`] bytes,
//! rejects a bad prefix as soon as it sees it (so a client that is not a proxy is turned
//! away without waiting for the deadline), and never panics.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

mod encode;
mod v1;
mod v2;

pub use encode::{encode_v1, encode_v2};

/// The longest v1 header, CRLF included (spec section 2.1).
pub const V1_MAX_LEN: usize = 107;
/// The longest v2 header accepted: 16 fixed bytes plus 520 of addresses and TLVs. The spec
/// suggests a 536-byte buffer; TLVs beyond that (certificates, long unique ids) are refused
/// rather than buffered.
pub const V2_MAX_LEN: usize = 536;
/// The longest header of either version.
pub const MAX_HEADER_LEN: usize = V2_MAX_LEN;

/// The v2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// `Local` for a v2 LOCAL header (the proxy's own health check).
    pub command: Command,
    /// The original client. `None` for v1 `UNKNOWN`, v2 LOCAL, and v2 UNSPEC or UNIX
    /// families: the connection's own peer address is then the client (BEHAVIOR.md).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when the header carries one.
    pub destination: Option<SocketAddr>,
}

impl ProxyHeader {
    /// The client address to use: the header's source, or `peer` when it has none.
    pub fn client(&self, peer: SocketAddr) -> SocketAddr {
        self.source.unwrap_or(peer)
    }
}

/// The v2 command (v1 headers are always [`Command::Proxy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The connection was made by the proxy itself; use the real endpoints.
    Local,
    /// The connection is relayed on behalf of the client in the header.
    Proxy,
}

/// The outcome of [`parse`] on a buffer that is not (yet) malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid prefix: at least `need_at_least` bytes in total are needed before the header
    /// can be complete. This is never more than the header's real length, so reading up to
    /// it never consumes a byte past the header.
    Incomplete {
        /// A lower bound on the header's total length, always more than the buffer's.
        need_at_least: usize,
    },
    /// A header, `len` bytes long from the start of the buffer.
    Complete {
        /// The decoded header.
        header: ProxyHeader,
        /// Its length in bytes; whatever follows belongs to the application protocol.
        len: usize,
    },
}

/// Why a PROXY header was refused (the connection is then closed without a word).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes are neither `PROXY ` nor the v2 signature.
    #[error("not a PROXY protocol header")]
    Signature,
    /// A v1 header with no CRLF within 107 bytes.
    #[error("v1 header longer than {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A v1 field is malformed (name of the field in `field`).
    #[error("malformed v1 {field}")]
    V1Field {
        /// Which part: "protocol", "source address", "destination address", "source
        /// port", "destination port", "field count", "line ending" or "character".
        field: &'static str,
    },
    /// v2 with a version nibble other than 2.
    #[error("unsupported v2 version {0}")]
    V2Version(u8),
    /// v2 with a command other than LOCAL (0) or PROXY (1).
    #[error("unsupported v2 command {0}")]
    V2Command(u8),
    /// v2 PROXY with a family/transport byte we do not take (UDP, unknown values).
    #[error("unsupported v2 family/protocol byte {0:#04x}")]
    V2Family(u8),
    /// v2 address block shorter than its family requires.
    #[error("v2 address block of {len} bytes too short for family {family:#04x}")]
    V2AddressLength {
        /// The family/transport byte.
        family: u8,
        /// The length field.
        len: usize,
    },
    /// v2 header longer than [`V2_MAX_LEN`].
    #[error("v2 header of {0} bytes exceeds {V2_MAX_LEN}")]
    V2TooLong(usize),
    /// A v2 TLV runs past the end of the header (or a CRC32c TLV is not 4 bytes).
    #[error("malformed v2 TLV")]
    V2Tlv,
    /// The v2 header's CRC32c TLV does not match its bytes.
    #[error("v2 header checksum mismatch")]
    V2Checksum,
    /// The connection ended before the header was complete.
    #[error("connection closed inside the PROXY header")]
    Truncated,
    /// The header did not arrive within the deadline.
    #[error("PROXY header not received within {0:?}")]
    Timeout(Duration),
    /// Reading the stream failed.
    #[error("read PROXY header")]
    Io(#[source] io::Error),
}

impl ProxyError {
    /// The header was not received in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// The peer sent bytes that are not a header we accept (as opposed to timing out,
    /// closing early, or an I/O error): worth counting as a protocol violation.
    pub fn is_malformed(&self) -> bool {
        !matches!(self, Self::Timeout(_) | Self::Truncated | Self::Io(_))
    }
}

/// Parses a PROXY header (either version) at the start of `buf`.
///
/// Strict and bounded: a prefix that cannot begin a valid header is an error as soon as it
/// is seen, a header never exceeds [`MAX_HEADER_LEN`], and `Incomplete` carries a lower
/// bound on the header length so a reader can fetch exactly the header's bytes.
///
/// # Errors
/// A [`ProxyError`] naming the first thing wrong (never `Timeout`, `Truncated` or `Io`).
///
/// ```
/// use spaced_net::proxy_protocol::{parse, Parsed};
/// let buf = b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\nGET / HTTP/1.1\r\n";
/// let Ok(Parsed::Complete { header, len }) = parse(buf) else { panic!() };
/// assert_eq!(header.source, Some("192.0.2.1:5000".parse().unwrap()));
/// assert_eq!(&buf[len..], b"GET / HTTP/1.1\r\n");
/// ```
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(&first) = buf.first() else {
        // The shortest headers: "PROXY UNKNOWN\r\n" (15) and a bare v2 header (16).
        return Ok(Parsed::Incomplete { need_at_least: 15 });
    };
    match first {
        b'P' => v1::parse(buf),
        b'\r' => v2::parse(buf),
        _ => Err(ProxyError::Signature),
    }
}

/// Reads one PROXY header from `stream`, consuming exactly its bytes: whatever follows
/// (an HTTP request, a TLS ClientHello) is still unread, so the stream can go straight to
/// the next protocol.
///
/// Reads are sized by [`Parsed::Incomplete::need_at_least`], so a v2 header takes two
/// reads and a v1 header a handful (each read asks for the least the rest can be). `deadline` bounds the whole header. Not
/// cancel-safe (bytes read so far are lost); use the deadline instead of `select!`.
///
/// # Errors
/// [`ProxyError::Timeout`] after `deadline`, [`ProxyError::Truncated`] if the peer closes
/// first, [`ProxyError::Io`] on a read error, or the parse error for a malformed header.
pub async fn read_header<S>(stream: &mut S, deadline: Duration) -> Result<ProxyHeader, ProxyError>
where
    S: AsyncRead + Unpin,
{
    match tokio::time::timeout(deadline, read_exact_header(stream)).await {
        Ok(res) => res,
        Err(_) => Err(ProxyError::Timeout(deadline)),
    }
}

async fn read_exact_header<S>(stream: &mut S) -> Result<ProxyHeader, ProxyError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = [0u8; MAX_HEADER_LEN];
    let mut filled = 0;
    loop {
        match parse(&buf[..filled])? {
            Parsed::Complete { header, len } => {
                debug_assert_eq!(len, filled, "a read never goes past the header");
                return Ok(header);
            }
            Parsed::Incomplete { need_at_least } => {
                // `parse` bounds need_at_least by the maximum header length; the `min`
                // keeps a slicing panic impossible even if that invariant ever broke.
                let want = need_at_least.min(MAX_HEADER_LEN);
                let Some(window) = buf.get_mut(filled..want).filter(|w| !w.is_empty()) else {
                    return Err(ProxyError::V1TooLong);
                };
                let n = stream.read(window).await.map_err(ProxyError::Io)?;
                if n == 0 {
                    return Err(ProxyError::Truncated);
                }
                filled += n;
            }
        }
    }
}

/// Folds v4-mapped addresses so a v6 socket address pairs with a v4 one when possible.
fn fold(addr: SocketAddr) -> SocketAddr {
    crate::accept::canonical_addr(addr)
}

/// The IPv6 form of any address (v4 as mapped).
fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests;
