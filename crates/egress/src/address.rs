//! A destination as the client wrote it (an IP literal or a name, and a port): what
//! every protocol parses its request into and what [`crate::dial`] resolves. A leaf, so
//! the HTTP proxy, SOCKS5, transparent mode and the dialler share it without importing
//! each other.

use std::net::SocketAddr;

/// A destination as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A host name (validated: letters, digits, `-`, `_`, `.`) and port.
    Domain(String, u16),
}

impl Address {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(sa) => sa.port(),
            Self::Domain(_, port) => *port,
        }
    }
}

/// `host:port` as the client asked (for refusal lines).
pub(crate) fn address_text(addr: &Address) -> String {
    match addr {
        Address::Ip(sa) => sa.to_string(),
        Address::Domain(h, p) => format!("{h}:{p}"),
    }
}
