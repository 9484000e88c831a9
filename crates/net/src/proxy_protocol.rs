//! PROXY protocol v1 (text) and v2 (binary), as specified by HAProxy's
//! `proxy-protocol.txt`: a strict, bounded, sans-io parser ([`parse`]), an async reader
//! that consumes exactly the header and nothing after it ([`read_header`]), and encoders
//! for tests and for talking to dynos that expect a header.
//!
//! Every input is hostile: the parser never reads more than [`MAX_HEADER_LEN`] bytes,
//! rejects a bad prefix as soon as it sees it (so a client that is not a proxy is turned
//! away without waiting for the deadline), and never panics.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

mod encode;
mod header;
mod v1;
mod v2;

pub use encode::{encode_v1, encode_v2};
pub use header::{
    Command, MAX_HEADER_LEN, Parsed, ProxyError, ProxyHeader, V1_MAX_LEN, V2_MAX_LEN, V2_SIGNATURE,
};

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

#[cfg(test)]
mod tests;
