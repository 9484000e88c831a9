//! The PROXY protocol's vocabulary: the length limits and v2 signature, the decoded
//! [`ProxyHeader`], [`Parsed`] and [`ProxyError`], and the address folding both versions
//! share; a leaf that the parsers (`v1`, `v2`), the encoders and the reader all use.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

/// The outcome of [`parse`](super::parse) on a buffer that is not (yet) malformed.
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

/// Folds v4-mapped addresses so a v6 socket address pairs with a v4 one when possible.
pub(super) fn fold(addr: SocketAddr) -> SocketAddr {
    crate::accept::canonical_addr(addr)
}

/// The IPv6 form of any address (v4 as mapped).
pub(super) fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}
