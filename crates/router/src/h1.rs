//! The HTTP/1.1 codec both sides of the router share, as Pingora's
//! `protocols/http/v1/common.rs` serves its server and client: body [`framing`], the
//! head [`write`]rs (status line, header lines, numbers, `date`), the [`chunked`] decoder
//! and every size bound ([`limits`]). The client side (`front`) writes responses with it;
//! the dyno side (`dyno_h1`) reads them. It knows no sockets, requests or policy.

pub(crate) mod chunked;
pub(crate) mod framing;
pub(crate) mod limits;
pub(crate) mod write;
