//! Bounds on what an HTTP/2 client can make the router hold (issue 19): decoded header
//! bytes per stream and per connection, concurrent streams, and a header block left open.
//!
//! HPACK lets a client name a 4 KB field once and then repeat it with one-byte indices, so
//! a few KB on the wire decode to a megabyte per stream. hyper's h2 codec bounds what it
//! decodes per stream (`SETTINGS_MAX_HEADER_LIST_SIZE`, refusing above it with its own
//! `431` and a stream reset); requests in flight are then bounded per connection ([`super::ctx::HeadBudget`]).
//! The codec gives no hook for a header block whose CONTINUATION never comes, so the
//! frames' 9-byte headers are followed on the read side ([`FrameScan`]), and the
//! connection timer cuts such a block after `client_header`, as it cuts a slow HTTP/1 head.

/// Decoded header bytes one HTTP/2 request may carry (each field counted as its name,
/// value and 32 bytes, RFC 9113 §6.5.2). nginx (`large_client_header_buffers`, 4 × 8 KB)
/// and HAProxy (`tune.bufsize`, 16 KB) keep request heads in tens of KB; 64 KiB leaves
/// room for large cookies and JWTs. Above it the codec answers 431.
pub(crate) const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Concurrent streams one HTTP/2 connection may open (hyper's default is 200; nginx
/// `http2_max_concurrent_streams` 128, HAProxy `tune.h2.max-concurrent-streams` 100).
pub(crate) const MAX_STREAMS: u32 = 100;

/// Decoded header bytes the requests in flight on one HTTP/2 connection may hold
/// together: 16 requests at [`MAX_HEADER_LIST`], or 100 streams of 10 KiB heads. A
/// request that would pass it gets 431 (H26) at once and frees its head.
pub(crate) const CONN_HEAD_BUDGET: u64 = 1024 * 1024;

/// The HTTP/2 client connection preface, which comes before the first frame.
const PREFACE_LEN: usize = 24;
/// HEADERS, PUSH_PROMISE and CONTINUATION frame types; END_HEADERS flag.
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Follows the frame headers of what an HTTP/2 client sends, to tell when a header block
/// is open (a HEADERS frame without END_HEADERS, until the CONTINUATION that ends it).
/// Reads only the 9-byte frame headers and skips payloads by their length; the codec
/// still validates everything.
#[derive(Debug)]
pub(crate) struct FrameScan {
    /// Preface bytes still to skip.
    preface: usize,
    /// The frame header being read, and how much of it has come.
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    payload: usize,
}

/// What a chunk of bytes did to the header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    /// No header block started or ended in it.
    Same,
    /// A header block is open at its end.
    Open,
    /// The header block ended (or none is open) at its end, after one was seen.
    Closed,
}

impl FrameScan {
    pub(crate) fn new() -> Self {
        Self {
            preface: PREFACE_LEN,
            head: [0; 9],
            have: 0,
            payload: 0,
        }
    }

    /// Follows `bytes`, the next ones the client sent.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Block {
        let mut out = Block::Same;
        while !bytes.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(bytes.len());
                self.preface -= n;
                bytes = &bytes[n..];
            } else if self.payload > 0 {
                let n = self.payload.min(bytes.len());
                self.payload -= n;
                bytes = &bytes[n..];
            } else {
                let n = (9 - self.have).min(bytes.len());
                self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                self.have += n;
                bytes = &bytes[n..];
                if self.have == 9 {
                    self.have = 0;
                    let [l0, l1, l2, kind, flags, ..] = self.head;
                    self.payload = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                    if matches!(kind, HEADERS | PUSH_PROMISE | CONTINUATION) {
                        out = if flags & END_HEADERS == 0 {
                            Block::Open
                        } else {
                            Block::Closed
                        };
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    #[test]
    fn follows_header_blocks_across_any_split() {
        let mut wire = PREFACE.to_vec();
        wire.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0"); // SETTINGS
        wire.extend_from_slice(b"\0\0\x02\x01\0\0\0\0\x01\x82\x84"); // HEADERS, open
        let open_at = wire.len();
        wire.extend_from_slice(b"\0\0\x01\x09\x04\0\0\0\x01\x86"); // CONTINUATION, END
        let closed_at = wire.len();
        wire.extend_from_slice(b"\0\0\x01\x01\x05\0\0\0\x03\x82"); // HEADERS, whole
        for step in 1..=wire.len() {
            let mut scan = FrameScan::new();
            let mut open = false;
            for (i, chunk) in wire.chunks(step).enumerate() {
                match scan.feed(chunk) {
                    Block::Open => open = true,
                    Block::Closed => open = false,
                    Block::Same => {}
                }
                let end = (i + 1) * step;
                if end >= open_at && end < closed_at && chunk.len() == step {
                    // Somewhere between the open HEADERS and its CONTINUATION's header.
                    let cont_head_done = end >= open_at + 9;
                    assert_eq!(open, !cont_head_done, "step {step}, end {end}");
                }
            }
            assert!(!open, "step {step}");
        }
    }
}
