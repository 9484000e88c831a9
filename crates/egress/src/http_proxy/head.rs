//! A strict, bounded parser for the request head a proxy client sends, sans-io.
//!
//! It reads exactly what the gateway needs to decide and dial: the method, the target
//! (`CONNECT host:port`, or the absolute form `http://host[:port]/path`), the version and
//! the header lines. Anything ambiguous is refused rather than guessed at (bare LF line
//! ends, folded lines, space before a colon, user info in the URL): a proxy that reads a
//! head differently from the next hop is how request smuggling starts.

use std::net::{IpAddr, SocketAddr};

use crate::address::Address;

/// The largest head accepted, all lines included.
pub const MAX_HEAD: usize = 64 * 1024;
/// The longest request line or header line.
pub const MAX_LINE: usize = 8192;
/// The most header lines.
pub const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// Where the request goes.
    pub target: Target,
    /// The minor version: `HTTP/1.0` or `HTTP/1.1`.
    pub minor: u8,
    /// Header lines in order: names as sent, values trimmed of surrounding blanks.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of the head, the blank line included: what follows belongs to the body or
    /// to the tunnel.
    pub len: usize,
}

/// A request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port` (CONNECT).
    Authority {
        /// The host.
        host: Host,
        /// The port.
        port: u16,
    },
    /// `http://host[:port]/path?query` (a forward-proxy request).
    Absolute {
        /// The host.
        host: Host,
        /// The port (80 when absent).
        port: u16,
        /// Path and query, at least `/`.
        path: String,
    },
    /// `/path`: a request meant for an origin server, not a proxy.
    Origin(String),
    /// `*` (OPTIONS).
    Asterisk,
}

/// A host in a request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal.
    Ip(IpAddr),
    /// A host name, lowercase.
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// Why a head was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The blank line that ends the head has not arrived yet.
    #[error("incomplete request head")]
    Incomplete,
    /// The head is larger than [`MAX_HEAD`].
    #[error("request head too large")]
    TooLarge,
    /// A line longer than [`MAX_LINE`].
    #[error("request or header line too long")]
    LineTooLong,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("too many header lines")]
    TooManyHeaders,
    /// The request line is not `METHOD SP TARGET SP VERSION`.
    #[error("malformed request line")]
    RequestLine,
    /// Not HTTP/1.0 or HTTP/1.1.
    #[error("unsupported HTTP version")]
    Version,
    /// A target that is no authority, absolute URL, path or `*`, or a bad host or port.
    #[error("malformed request target")]
    Target,
    /// An absolute `https://` URL. The gateway does not originate TLS (it would have to
    /// verify certificates on the client's behalf); HTTPS goes through a `CONNECT` tunnel,
    /// which every client supports, so the answer says so instead of a bare 400.
    #[error(
        "https:// URLs are not fetched by this proxy (no TLS origination): use CONNECT host:443 for https"
    )]
    Https,
    /// An absolute URL with a scheme other than `http` or `https`.
    #[error(
        "unsupported URL scheme: this proxy forwards http:// URLs and tunnels anything else with CONNECT"
    )]
    Scheme,
    /// A malformed header line.
    #[error("malformed header line")]
    Header,
}

impl HeadError {
    /// The HTTP status the client gets.
    pub fn status(self) -> u16 {
        match self {
            Self::TooLarge | Self::LineTooLong | Self::TooManyHeaders => 431,
            Self::Version => 505,
            // A well-formed request for something the proxy does not do (RFC 9110 §15.6.2),
            // the answer Squid gives for a protocol it was built without.
            Self::Https | Self::Scheme => 501,
            Self::Incomplete | Self::RequestLine | Self::Target | Self::Header => 400,
        }
    }
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Where the head ends (the length through the blank line), if it has.
///
/// # Errors
/// [`HeadError::TooLarge`] when `buf` holds more than [`MAX_HEAD`] bytes without a blank
/// line: the caller stops reading.
pub fn head_len(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if i + 4 <= MAX_HEAD => Ok(Some(i + 4)),
        Some(_) => Err(HeadError::TooLarge),
        None if buf.len() >= MAX_HEAD => Err(HeadError::TooLarge),
        None => Ok(None),
    }
}

/// Parses the request head at the start of `buf` (bytes after it are left alone).
///
/// # Errors
/// [`HeadError::Incomplete`] until the blank line has arrived; the other variants for a
/// head that will never be accepted.
pub fn parse_request_head(buf: &[u8]) -> Result<Head, HeadError> {
    let Some(len) = head_len(buf)? else {
        return Err(HeadError::Incomplete);
    };
    // Without the final CRLF pair: lines separated by CRLF.
    let body = &buf[..len - 4];
    let mut lines = Lines { rest: Some(body) };
    let request_line = lines.next().ok_or(HeadError::RequestLine)??;
    let (method, target, minor) = request_line_parts(request_line)?;
    let mut headers = Vec::new();
    for line in lines {
        let line = line?;
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooManyHeaders);
        }
        headers.push(header_line(line)?);
    }
    Ok(Head {
        method,
        target,
        minor,
        headers,
        len,
    })
}

/// CRLF-separated lines; a bare CR or LF inside a line is an error.
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<&'a [u8], HeadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        self.rest = next;
        if line.len() > MAX_LINE {
            return Some(Err(HeadError::LineTooLong));
        }
        if line.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Some(Err(HeadError::Header));
        }
        Some(Ok(line))
    }
}

fn request_line_parts(line: &[u8]) -> Result<(String, Target, u8), HeadError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::RequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::RequestLine);
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        v if v.starts_with(b"HTTP/") => return Err(HeadError::Version),
        _ => return Err(HeadError::RequestLine),
    };
    let method = String::from_utf8(method.to_vec()).map_err(|_| HeadError::RequestLine)?;
    let target = parse_target(target, method == "CONNECT")?;
    Ok((method, target, minor))
}

fn parse_target(raw: &[u8], connect: bool) -> Result<Target, HeadError> {
    if raw.is_empty() || !raw.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(HeadError::Target);
    }
    // Printable ASCII only, so this cannot fail; errors are still not panics.
    let text = std::str::from_utf8(raw).map_err(|_| HeadError::Target)?;
    if connect {
        let (host, port) = authority(text, None)?;
        return Ok(Target::Authority { host, port });
    }
    if text == "*" {
        return Ok(Target::Asterisk);
    }
    if text.starts_with('/') {
        return Ok(Target::Origin(text.to_owned()));
    }
    let Some(colon) = text.find("://") else {
        return Err(HeadError::Target);
    };
    let scheme = &text[..colon];
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(scheme_error(scheme));
    }
    let rest = &text[colon + 3..];
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(split);
    let (host, port) = authority(auth, Some(80))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if path.contains('#') {
        return Err(HeadError::Target);
    }
    Ok(Target::Absolute { host, port, path })
}

/// Why an absolute URL with a scheme other than `http` is refused: [`HeadError::Https`]
/// (use CONNECT), [`HeadError::Scheme`] for another well-formed scheme, and
/// [`HeadError::Target`] for something that is no scheme at all.
pub fn scheme_error(scheme: &str) -> HeadError {
    if scheme.eq_ignore_ascii_case("https") {
        HeadError::Https
    } else if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
        HeadError::Scheme
    } else {
        HeadError::Target
    }
}

/// The destination a request target names.
pub(crate) fn to_address(host: &Host, port: u16) -> Address {
    match host {
        Host::Ip(ip) => Address::Ip(SocketAddr::new(*ip, port)),
        Host::Name(n) => Address::Domain(n.clone(), port),
    }
}

/// `host:port`, `[v6]:port`, or with `default`, a bare host.
fn authority(text: &str, default: Option<u16>) -> Result<(Host, u16), HeadError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(HeadError::Target)?;
        let ip: std::net::Ipv6Addr = v6.parse().map_err(|_| HeadError::Target)?;
        let port = if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix(':').ok_or(HeadError::Target)?)
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (h, p) = match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        (host_name(h)?, p)
    };
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default.ok_or(HeadError::Target)?,
    };
    Ok((host, port))
}

fn host_name(h: &str) -> Result<Host, HeadError> {
    if h.is_empty() || h.len() > 253 {
        return Err(HeadError::Target);
    }
    if let Ok(ip) = h.parse::<std::net::Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let valid = h
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid || h.starts_with('.') || h.contains("..") {
        return Err(HeadError::Target);
    }
    Ok(Host::Name(h.to_ascii_lowercase()))
}

fn parse_port(p: &str) -> Result<u16, HeadError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Target);
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(HeadError::Target),
        Ok(port) => Ok(port),
    }
}

fn header_line(line: &[u8]) -> Result<(String, Vec<u8>), HeadError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HeadError::Header)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // No empty names, no blanks before the colon, no folded continuation lines.
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Header);
    }
    if value
        .iter()
        .any(|&b| b == 0 || b == 0x7f || (b < 0x20 && b != b'\t'))
    {
        return Err(HeadError::Header);
    }
    let value = value.trim_ascii();
    let name = String::from_utf8(name.to_vec()).map_err(|_| HeadError::Header)?;
    Ok((name, value.to_vec()))
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        use crate::address::address_text;
        assert_eq!(
            address_text(&to_address(&Host::Name("a.b".into()), 443)),
            "a.b:443"
        );
        assert_eq!(
            address_text(&to_address(&Host::Ip("::1".parse().unwrap()), 80)),
            "[::1]:80"
        );
    }

    fn parse(s: &str) -> Result<Head, HeadError> {
        parse_request_head(s.as_bytes())
    }

    #[test]
    fn connect() {
        let h = parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic YXBpOnMzY3JldA==\r\n\r\nTLS").unwrap();
        assert_eq!(h.method, "CONNECT");
        assert_eq!(
            h.target,
            Target::Authority {
                host: Host::Name("example.com".into()),
                port: 443
            }
        );
        assert_eq!(h.minor, 1);
        assert_eq!(
            h.header("proxy-authorization"),
            Some(&b"Basic YXBpOnMzY3JldA=="[..])
        );
        assert_eq!(
            &"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic YXBpOnMzY3JldA==\r\n\r\nTLS"
                [h.len..],
            "TLS"
        );
        let h = parse("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            h.target,
            Target::Authority {
                host: Host::Ip("::1".parse().unwrap()),
                port: 8443
            }
        );
        let h = parse("CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(
            h.target,
            Target::Authority {
                host: Host::Ip("127.0.0.1".parse().unwrap()),
                port: 80
            }
        );
    }

    #[test]
    fn connect_needs_a_port() {
        for t in [
            "example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "[::1]",
            "[::1]x",
            "a b:1",
            ":80",
            "[zz]:80",
            "ex..com:1",
            "e:x:1",
        ] {
            let s = format!("CONNECT {t} HTTP/1.1\r\n\r\n");
            assert!(parse(&s).is_err(), "{t} accepted");
        }
    }

    #[test]
    fn absolute_form() {
        let h =
            parse("GET http://Example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n").unwrap();
        assert_eq!(
            h.target,
            Target::Absolute {
                host: Host::Name("example.com".into()),
                port: 80,
                path: "/a?b=1".into()
            }
        );
        let h = parse("POST HTTP://10.0.0.1:8080 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            h.target,
            Target::Absolute {
                host: Host::Ip("10.0.0.1".parse().unwrap()),
                port: 8080,
                path: "/".into()
            }
        );
        let h = parse("GET http://[::1]:81?q HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(
            h.target,
            Target::Absolute {
                host: Host::Ip("::1".parse().unwrap()),
                port: 81,
                path: "/?q".into()
            }
        );
        assert_eq!(
            parse("GET https://example.com/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Https)
        );
        assert_eq!(
            parse("GET HTTPS://example.com/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Https)
        );
        assert_eq!(
            parse("GET ftp://example.com/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Scheme)
        );
        assert_eq!(HeadError::Https.status(), 501);
        assert_eq!(HeadError::Scheme.status(), 501);
        assert_eq!(scheme_error("h-t"), HeadError::Target);
        assert_eq!(scheme_error(""), HeadError::Target);
        assert_eq!(
            parse("GET http://u:p@example.com/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Target)
        );
        assert_eq!(
            parse("GET http:///x HTTP/1.1\r\n\r\n"),
            Err(HeadError::Target)
        );
        assert_eq!(
            parse("GET http://a/#f HTTP/1.1\r\n\r\n"),
            Err(HeadError::Target)
        );
    }

    #[test]
    fn origin_and_asterisk() {
        assert_eq!(
            parse("GET /x HTTP/1.1\r\n\r\n").unwrap().target,
            Target::Origin("/x".into())
        );
        assert_eq!(
            parse("OPTIONS * HTTP/1.1\r\n\r\n").unwrap().target,
            Target::Asterisk
        );
    }

    #[test]
    fn incomplete_and_limits() {
        assert_eq!(
            parse("CONNECT a:1 HTTP/1.1\r\n"),
            Err(HeadError::Incomplete)
        );
        assert_eq!(parse(""), Err(HeadError::Incomplete));
        let big = "a".repeat(MAX_HEAD);
        assert_eq!(parse(&big), Err(HeadError::TooLarge));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(parse(&long), Err(HeadError::LineTooLong));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET /x HTTP/1.1\r\n{many}\r\n")),
            Err(HeadError::TooManyHeaders)
        );
        assert_eq!(HeadError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn strictness() {
        for bad in [
            "GET /x HTTP/1.1\n\r\n\r\n",
            "GET  /x HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1 \r\n\r\n",
            "GET /x\r\n\r\n",
            "G@T /x HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET /x HTTP/1.1\r\n folded\r\n\r\n",
            "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET /x HTTP/1.1\r\nX: a\nb\r\n\r\n",
            "GET /x HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            "\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse("GET /x HTTP/2.0\r\n\r\n"), Err(HeadError::Version));
        assert_eq!(HeadError::Version.status(), 505);
        let h = parse("GET /x HTTP/1.1\r\nX:\t v \r\nY:\r\n\r\n").unwrap();
        assert_eq!(h.header("x"), Some(&b"v"[..]));
        assert_eq!(h.header("Y"), Some(&b""[..]));
        assert_eq!(h.header("z"), None);
    }

    #[test]
    fn host_display() {
        assert_eq!(Host::Ip("::1".parse().unwrap()).to_string(), "[::1]");
        assert_eq!(
            Host::Ip("10.0.0.1".parse().unwrap()).to_string(),
            "10.0.0.1"
        );
        assert_eq!(Host::Name("a.b".into()).to_string(), "a.b");
    }
}
