//! A bounded decoder for the chunked transfer coding (RFC 9112 §7.1): data is handed out
//! as it arrives, chunk extensions and trailers are read and dropped (hyper re-frames the
//! body for the client). Every line is bounded, so a dyno cannot make the router buffer
//! without end.

use bytes::{Buf, Bytes, BytesMut};

use super::limits::{CHUNK_MAX_LINE, CHUNK_MAX_TRAILERS};

/// Where the decoder is.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: State,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// This many data bytes of the current chunk remain.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    More,
    /// The body ended (the last chunk and the trailers were consumed).
    Done,
}

/// The body is not valid chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body")]
pub(crate) struct Invalid;

impl Chunked {
    /// Decodes from the front of `buf`, consuming what it used. `copy_max`: data up to this
    /// size that fills the buffer is copied out, keeping `buf` unshared.
    pub(crate) fn step(&mut self, buf: &mut BytesMut, copy_max: usize) -> Result<Step, Invalid> {
        loop {
            match self.state {
                State::Done => return Ok(Step::Done),
                State::Size => {
                    let Some(len) = line_len(buf)? else {
                        return Ok(Step::More);
                    };
                    let size = parse_size(&buf[..len])?;
                    buf.advance(len + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let data = if n == buf.len() && n <= copy_max {
                        let d = Bytes::copy_from_slice(&buf[..n]);
                        buf.advance(n);
                        d
                    } else {
                        buf.split_to(n).freeze()
                    };
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Invalid);
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(len) = line_len(buf)? else {
                        return Ok(Step::More);
                    };
                    buf.advance(len + 2);
                    self.trailer_bytes += len + 2;
                    if self.trailer_bytes > CHUNK_MAX_TRAILERS {
                        return Err(Invalid);
                    }
                    if len == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// The length (without the CRLF) of the CRLF-terminated line at the front of `buf`.
fn line_len(buf: &[u8]) -> Result<Option<usize>, Invalid> {
    let window = &buf[..buf.len().min(CHUNK_MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(Invalid);
            }
            Ok(Some(i - 1))
        }
        None if buf.len() >= CHUNK_MAX_LINE => Err(Invalid),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits (at most 15, so it fits a u64), then optional
/// `;` extensions, which are ignored.
fn parse_size(line: &[u8]) -> Result<u64, Invalid> {
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 15 {
        return Err(Invalid);
    }
    let mut n: u64 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(Invalid),
        };
        n = (n << 4) | u64::from(v);
    }
    let rest = line[end..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(Invalid);
    }
    Ok(n)
}
