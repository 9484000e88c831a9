//! SOCKS5 (RFC 1928, user/password from RFC 1929): the wire format, sans-io, is public
//! here (from `socks5/wire.rs`); the listener's handshake and CONNECT (`server`) and UDP
//! ASSOCIATE (`udp`) are the crate's own.
//!
//! Each `parse_*` function looks at the bytes received so far and answers `Ok(None)` when
//! more are needed, `Ok(Some((value, consumed)))` when one message is complete, or an error
//! that says which reply the client gets. Messages are small and bounded by the format
//! itself (at most [`MAX_MESSAGE`] bytes), so the caller's buffer is bounded too.

pub(crate) mod server;
mod udp;
pub(crate) mod wire;

pub use wire::*;
