//! The router log line of BEHAVIOR.md "The router log line", formatted into a caller's
//! buffer: field order fixed, `path`/`fwd`/`desc` always quoted, other values quoted only
//! when they hold a space or a quote, empty fields left empty.

use std::fmt::Write;
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
        match self.code {
            None => out.push_str("at=info"),
            Some(c) => {
                out.push_str(if c.is_warning() {
                    "at=warning code="
                } else {
                    "at=error code="
                });
                out.push_str(c.as_str());
                out.push_str(" desc=");
                push_value(out, c.desc().as_bytes(), true);
            }
        }
        out.push_str(" method=");
        push_value(out, self.method.as_bytes(), false);
        out.push_str(" path=");
        push_value(out, self.path, true);
        out.push_str(" host=");
        push_value(out, self.host, false);
        out.push_str(" request_id=");
        push_value(out, self.request_id, false);
        out.push_str(" fwd=\"");
        push_ip(out, self.fwd);
        out.push_str("\" dyno=");
        if let Some(d) = self.dyno {
            push_value(out, d.as_bytes(), false);
        }
        out.push_str(" connect=");
        if let Some(ms) = self.connect_ms {
            push_u64(out, ms);
            out.push_str("ms");
        }
        out.push_str(" service=");
        if let Some(ms) = self.service_ms {
            push_u64(out, ms);
            out.push_str("ms");
        }
        out.push_str(" status=");
        push_u64(out, u64::from(self.status));
        out.push_str(" bytes=");
        push_u64(out, self.bytes);
        out.push_str(" protocol=");
        out.push_str(self.protocol);
        out.push_str(if self.tls.is_some() {
            " tls=true tls_version="
        } else {
            " tls=false tls_version="
        });
        out.push_str(self.tls.unwrap_or("unknown"));
    }
}

/// Appends a number in decimal: every line has several, and `fmt`'s machinery costs more
/// than the rest of the line's formatting (benches/README.md, Logs).
fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends an address: IPv4 by hand (the common case), IPv6 through `Display`.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
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
fn push_value(out: &mut String, v: &[u8], always_quote: bool) {
    let needs_escape = v
        .iter()
        .any(|&b| !(0x21..0x7f).contains(&b) || b == b'"' || b == b'\\');
    if !needs_escape {
        if always_quote {
            out.push('"');
        }
        // Checked above: printable ASCII only.
        out.push_str(std::str::from_utf8(v).unwrap_or(""));
        if always_quote {
            out.push('"');
        }
        return;
    }
    let quote = always_quote || v.iter().any(|&b| b == b' ' || b == b'"');
    if quote {
        out.push('"');
    }
    for &b in v {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' ' => out.push(' '),
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if quote {
        out.push('"');
    }
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
}
