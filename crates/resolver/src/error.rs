//! [`ResolverError`]: why the resolver could not start; a leaf that `bind` and the crate
//! root both use.

use std::net::SocketAddr;

use spaced_net::BindError;

/// The resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// A UDP or TCP socket could not be bound.
    #[error("bind resolver listener {addr}")]
    Bind {
        /// The `resolver.listen` address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: BindError,
    },
}

impl ResolverError {
    /// The listen address that failed.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Bind { addr, .. } => *addr,
        }
    }

    /// Whether another process holds the address (a restart would not help until it goes).
    pub fn in_use(&self) -> bool {
        match self {
            Self::Bind { source, .. } => {
                let BindError::Bind { source, .. } = source;
                source.kind() == std::io::ErrorKind::AddrInUse
            }
        }
    }
}
