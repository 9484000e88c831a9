//! SOCKS5: the wire format (sans-io, [`wire`], re-exported here), the listener's
//! handshake and CONNECT ([`server`]), and UDP ASSOCIATE ([`udp`]).

pub(crate) mod server;
mod udp;
pub(crate) mod wire;

pub use wire::*;
