//! [`Claim`]: one listener address as written, which the compile context collects and
//! `compile/listeners.rs` checks for conflicts. A leaf, so that the context (in
//! `compile.rs`) and the check can both name it without importing each other.

use std::net::SocketAddr;
use std::ops::Range;

/// One listener as written: address, key, and where.
pub(super) struct Claim {
    pub(super) addr: SocketAddr,
    pub(super) key: &'static str,
    pub(super) span: Range<usize>,
}
