//! [`RawAddr`], a destination in the layout the kernel reads; a leaf that the batch sender
//! and its GSO grouping (`gso`) both use.

use std::net::SocketAddr;
use std::ptr;

/// A destination in the layout the kernel reads; built without `unsafe` from a
/// [`SocketAddr`].
#[derive(Clone, Copy)]
pub(super) enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

// === impl RawAddr ===

impl From<SocketAddr> for RawAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => Self::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }
}

impl RawAddr {
    pub(super) fn as_ptr(&self) -> (*const libc::c_void, libc::socklen_t) {
        match self {
            Self::V4(a) => (
                ptr::from_ref(a).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            Self::V6(a) => (
                ptr::from_ref(a).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ptr, len) = self.as_ptr();
        f.debug_struct("RawAddr")
            .field("ptr", &ptr)
            .field("len", &len)
            .finish()
    }
}
