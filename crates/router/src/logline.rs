//! The router log line of BEHAVIOR.md "The router log line", formatted into a caller's
//! buffer: field order fixed, `path`/`fwd`/`desc` always quoted, other values quoted only
//! when they hold a space or a quote, empty fields left empty.

use std::io::Write as _;
use std::net::IpAddr;

use crate::code::Code;

/// Everything one line says, borrowed from the request's context.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    /// The error code, when the request failed.
    pub code: Option<Code>,
    /// Request method.
    pub method: &'a str,
    /// Path and query, as received.
    pub path: &'a [u8],
    /// The Host header (or `:authority`), as received.
    pub host: &'a [u8],
    /// The request id sent to the dyno and the client.
    pub request_id: &'a [u8],
    /// The client address the router decided on.
    pub fwd: IpAddr,
    /// `process.number` of the dyno, when one was chosen.
    pub dyno: Option<&'a str>,
    /// Time to obtain a connection to the dyno, in ms.
    pub connect_ms: Option<u64>,
    /// Time from the request sent to the response done, in ms.
    pub service_ms: Option<u64>,
    /// Status sent (or logged: 499 for H27/H28).
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: u64,
    /// `http1.0`, `http1.1` or `http2.0`.
    pub protocol: &'static str,
    /// `Some("tls1.2" | "tls1.3" | "unknown")` on TLS listeners, `None` on plain ones.
    pub tls: Option<&'static str>,
}

impl LogLine<'_> {
    /// The tracing level the line is emitted at.
    pub fn level(&self) -> tracing::Level {
        match self.code {
            None => tracing::Level::INFO,
            Some(c) if c.is_warning() => tracing::Level::WARN,
            Some(_) => tracing::Level::ERROR,
        }
    }

    /// Appends the line (without a newline) to `out`.
    pub fn write(&self, out: &mut String) {
        // Formatted as bytes and checked as UTF-8 once, for the whole line: a `push_str`
        // per value would validate each value again (and the line is ASCII by
        // construction, so the one check is std's word-at-a-time ASCII path).
        let mut buf = std::mem::take(out).into_bytes();
        self.write_bytes(&mut buf);
        *out = match String::from_utf8(buf) {
            Ok(s) => s,
            // Not reachable (every byte is escaped ASCII or comes from a `str`); a lossy
            // line beats a lost one.
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
    }

    fn write_bytes(&self, out: &mut Vec<u8>) {
        match self.code {
            None => out.extend_from_slice(b"at=info"),
            Some(c) => {
                out.extend_from_slice(if c.is_warning() {
                    b"at=warning code="
                } else {
                    b"at=error code="
                });
                out.extend_from_slice(c.as_str().as_bytes());
                out.extend_from_slice(b" desc=");
                push_value(out, c.desc().as_bytes(), true);
            }
        }
        out.extend_from_slice(b" method=");
        push_value(out, self.method.as_bytes(), false);
        out.extend_from_slice(b" path=");
        push_value(out, self.path, true);
        out.extend_from_slice(b" host=");
        push_value(out, self.host, false);
        out.extend_from_slice(b" request_id=");
        push_value(out, self.request_id, false);
        out.extend_from_slice(b" fwd=\"");
        push_ip(out, self.fwd);
        out.extend_from_slice(b"\" dyno=");
        if let Some(d) = self.dyno {
            push_value(out, d.as_bytes(), false);
        }
        out.extend_from_slice(b" connect=");
        if let Some(ms) = self.connect_ms {
            push_u64(out, ms);
            out.extend_from_slice(b"ms");
        }
        out.extend_from_slice(b" service=");
        if let Some(ms) = self.service_ms {
            push_u64(out, ms);
            out.extend_from_slice(b"ms");
        }
        out.extend_from_slice(b" status=");
        push_u64(out, u64::from(self.status));
        out.extend_from_slice(b" bytes=");
        push_u64(out, self.bytes);
        out.extend_from_slice(b" protocol=");
        out.extend_from_slice(self.protocol.as_bytes());
        out.extend_from_slice(if self.tls.is_some() {
            b" tls=true tls_version="
        } else {
            b" tls=false tls_version="
        });
        out.extend_from_slice(self.tls.unwrap_or("unknown").as_bytes());
    }
}

/// Appends a number in decimal: every line has several, and `fmt`'s machinery costs more
/// than the rest of the line's formatting (benches/README.md, Logs).
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends an address: IPv4 by hand (the common case), IPv6 through `Display`.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends a value, quoted when asked or when it holds a space or a quote. Inside quotes,
/// `"` and `\` are escaped; bytes that are not printable ASCII are written as `\xNN` so a
/// hostile header can never forge a second field or line.
fn push_value(out: &mut Vec<u8>, v: &[u8], always_quote: bool) {
    if !needs_escape(v) {
        if always_quote {
            out.push(b'"');
            out.extend_from_slice(v);
            out.push(b'"');
        } else {
            out.extend_from_slice(v);
        }
        return;
    }
    let quote = always_quote || v.iter().any(|&b| b == b' ' || b == b'"');
    if quote {
        out.push(b'"');
    }
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b' '..=b'~' => out.push(b),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
        }
    }
    if quote {
        out.push(b'"');
    }
}

/// Whether any byte of `v` is outside printable ASCII (`0x21..=0x7e`) or is `"` or `\`.
/// Eight bytes at a time (the "has less / has more / has zero byte" word tricks of Bit
/// Twiddling Hacks): every value of every line goes through here, and almost none needs
/// escaping, so the common case is a few word operations rather than four compares a byte.
fn needs_escape(v: &[u8]) -> bool {
    let (words, rest) = v.as_chunks::<8>();
    if words
        .iter()
        .any(|w| word_needs_escape(u64::from_le_bytes(*w)))
    {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    // The tail, padded with a byte that never needs escaping.
    let mut w = [b'a'; 8];
    w[..rest.len()].copy_from_slice(rest);
    word_needs_escape(u64::from_le_bytes(w))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// [`needs_escape`] for eight bytes. Each test is exact for "some byte matches" (a borrow
/// or carry can only spill out of a byte that already matches).
#[inline]
fn word_needs_escape(x: u64) -> bool {
    // A byte below 0x21 (controls and space): "has less than n", n <= 128.
    let low = x.wrapping_sub(ONES * 0x21) & !x & HIGHS;
    // A byte above 0x7e: its high bit, or 0x7f, which + 1 sets it.
    let high = (x.wrapping_add(ONES) | x) & HIGHS;
    (low | high | has_byte(x, b'"') | has_byte(x, b'\\')) != 0
}

/// Non-zero when some byte of `x` is `b` ("has zero byte" of `x ^ b…b`).
#[inline]
fn has_byte(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    y.wrapping_sub(ONES) & !y & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> LogLine<'static> {
        LogLine {
            code: None,
            method: "GET",
            path: b"/orders?id=1",
            host: b"api.example.com",
            request_id: b"abc",
            fwd: "203.0.113.9".parse().unwrap(),
            dyno: Some("web.2"),
            connect_ms: Some(1),
            service_ms: Some(12),
            status: 200,
            bytes: 5120,
            protocol: "http1.1",
            tls: None,
        }
    }

    fn line(l: LogLine<'_>) -> String {
        let mut s = String::new();
        l.write(&mut s);
        s
    }

    #[test]
    fn the_spec_example() {
        assert_eq!(
            line(base()),
            "at=info method=GET path=\"/orders?id=1\" host=api.example.com request_id=abc \
             fwd=\"203.0.113.9\" dyno=web.2 connect=1ms service=12ms status=200 bytes=5120 \
             protocol=http1.1 tls=false tls_version=unknown"
        );
    }

    #[test]
    fn error_with_empty_fields() {
        let l = LogLine {
            code: Some(Code::H12),
            dyno: None,
            connect_ms: None,
            service_ms: None,
            status: 503,
            bytes: 0,
            tls: Some("tls1.3"),
            protocol: "http2.0",
            ..base()
        };
        assert_eq!(
            line(l),
            "at=error code=H12 desc=\"Request timeout\" method=GET path=\"/orders?id=1\" \
             host=api.example.com request_id=abc fwd=\"203.0.113.9\" dyno= connect= service= \
             status=503 bytes=0 protocol=http2.0 tls=true tls_version=tls1.3"
        );
    }

    #[test]
    fn warning_for_client_codes() {
        let l = LogLine {
            code: Some(Code::H27),
            status: 499,
            ..base()
        };
        assert!(line(l).starts_with("at=warning code=H27 desc=\"Client Request Interrupted\""));
        assert_eq!(l.level(), tracing::Level::WARN);
    }

    #[test]
    fn numbers_and_addresses() {
        let l = LogLine {
            fwd: "2001:db8::1".parse().unwrap(),
            connect_ms: Some(0),
            service_ms: Some(u64::MAX),
            bytes: 10,
            ..base()
        };
        let s = line(l);
        assert!(s.contains(" fwd=\"2001:db8::1\" "), "{s}");
        assert!(
            s.contains(" connect=0ms service=18446744073709551615ms status=200 bytes=10 "),
            "{s}"
        );
        let l = LogLine {
            fwd: "10.0.255.7".parse().unwrap(),
            ..base()
        };
        assert!(line(l).contains(" fwd=\"10.0.255.7\" "));
    }

    #[test]
    fn hostile_values_are_quoted_and_escaped() {
        let l = LogLine {
            host: b"a b\"c\n status=200",
            path: b"/x\"y",
            ..base()
        };
        let s = line(l);
        assert!(s.contains("host=\"a b\\\"c\\x0a status=200\""), "{s}");
        assert!(s.contains("path=\"/x\\\"y\""), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn escape_scan_agrees_with_the_byte_rule() {
        let slow = |v: &[u8]| {
            v.iter()
                .any(|&b| !(0x21..0x7f).contains(&b) || b == b'"' || b == b'\\')
        };
        // Every byte value at every position of every length up to two words and a bit.
        for len in 1..=19 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'k'; len];
                    v[pos] = b;
                    assert_eq!(needs_escape(&v), slow(&v), "{v:?}");
                }
            }
        }
        assert!(!needs_escape(b""));
        let mut rng = fastrand::Rng::with_seed(20);
        for _ in 0..20_000 {
            let v: Vec<u8> = (0..rng.usize(0..40))
                .map(|_| {
                    *rng.choice(b"az~!\x20\x21\x7e\x7f\x80\xff\"\\\x00\x1f")
                        .unwrap_or(&b'a')
                })
                .collect();
            assert_eq!(needs_escape(&v), slow(&v), "{v:?}");
        }
    }

    #[test]
    fn every_byte_escapes_the_same_way() {
        for b in 0..=255u8 {
            let v = [b'a', b, b'z'];
            let l = LogLine { host: &v, ..base() };
            let s = line(l);
            let want = match b {
                b'"' => "host=\"a\\\"z\"".to_string(),
                b'\\' => "host=a\\\\z".to_string(),
                b' ' => "host=\"a z\"".to_string(),
                0x21..=0x7e => format!("host=a{}z", char::from(b)),
                _ => format!("host=a\\x{b:02x}z"),
            };
            assert!(s.contains(&format!(" {want} request_id=")), "{b}: {s}");
        }
    }
}
