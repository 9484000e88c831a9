//! `[logging]`, `[[drain]]` and `[app] drains` (OPERATIONS.md "Logs and drains"): the
//! validated settings the `spaced-logs` crate applies. Drain URLs are parsed here, once, so
//! a bad one is a located config error and the log path never parses text.

use std::fmt;

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `logfmt` (the spec's `at=info` lines) or `json` (one object a line).
    pub format: LogFormat,
    /// Prefix stdout lines with an RFC 3339 UTC timestamp (unless stdout is the journal).
    pub timestamps: bool,
    /// Write lines to stdout at all.
    pub stdout: bool,
    /// Lines queued per sink (stdout and each drain) before the oldest are dropped.
    pub buffer: usize,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            format: LogFormat::Logfmt,
            timestamps: true,
            stdout: true,
            buffer: 10_000,
        }
    }
}

/// `logging.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `at=info method=GET …`.
    Logfmt,
    /// `{"time":…,"level":…,"source":…,"app":…, the line's fields}`.
    Json,
}

/// One drain: a space's `[[drain]]` or one entry of an app's `drains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// Where lines go.
    pub url: DrainUrl,
    /// PEM trust anchors for TLS drains (`ca`), read at load; `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
}

/// How a drain is spoken to, from its URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DrainScheme {
    /// `http://`: logplex batches.
    Http,
    /// `https://`: logplex batches over TLS.
    Https,
    /// `syslog://`: RFC 5424 over TCP, octet-counted.
    Syslog,
    /// `syslog+tls://`.
    SyslogTls,
    /// `syslog+udp://`: one message per datagram.
    SyslogUdp,
    /// `otlp+http://`: OTLP/HTTP protobuf logs.
    OtlpHttp,
    /// `otlp+https://`.
    OtlpHttps,
}

impl DrainScheme {
    /// The scheme as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Syslog => "syslog",
            Self::SyslogTls => "syslog+tls",
            Self::SyslogUdp => "syslog+udp",
            Self::OtlpHttp => "otlp+http",
            Self::OtlpHttps => "otlp+https",
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::SyslogTls | Self::OtlpHttps)
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "http" => Self::Http,
            "https" => Self::Https,
            "syslog" => Self::Syslog,
            "syslog+tls" => Self::SyslogTls,
            "syslog+udp" => Self::SyslogUdp,
            "otlp+http" => Self::OtlpHttp,
            "otlp+https" => Self::OtlpHttps,
            _ => return None,
        })
    }

    /// The port when the URL names none.
    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
            Self::Syslog | Self::SyslogUdp => 514,
            Self::SyslogTls => 6514,
            Self::OtlpHttp | Self::OtlpHttps => 4318,
        }
    }
}

/// A drain URL, parsed. `Display` redacts the password (`user:***@`): use it everywhere
/// a URL is shown (`/drains`, metrics labels, log lines, errors).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DrainUrl {
    /// The scheme.
    pub scheme: DrainScheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (the scheme's default when absent).
    pub port: u16,
    /// Path and query for HTTP drains (`/` when absent).
    pub path: String,
    /// URL userinfo user, percent-decoded.
    pub user: Option<String>,
    /// URL userinfo password, percent-decoded.
    pub password: Option<String>,
}

impl fmt::Debug for DrainUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output reaches logs too: the same redaction.
        write!(f, "DrainUrl({self})")
    }
}

impl fmt::Display for DrainUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if self.path != "/" {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

impl DrainUrl {
    /// Parses a drain URL: a known scheme, a host, a port that fits in 16 bits.
    ///
    /// # Errors
    /// What is wrong, in words for the config error.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let url = url::Url::parse(text).map_err(|e| match e {
            url::ParseError::InvalidPort => "bad port",
            url::ParseError::EmptyHost => "no host",
            url::ParseError::RelativeUrlWithoutBase => "not a URL (no scheme)",
            _ => "not a URL",
        })?;
        let scheme = DrainScheme::parse(url.scheme()).ok_or(
            "unknown scheme (expected https, http, syslog, syslog+tls, syslog+udp, otlp+http or otlp+https)",
        )?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err("no host"),
        };
        if url.port() == Some(0) {
            return Err("bad port");
        }
        let port = url.port().unwrap_or_else(|| scheme.default_port());
        let mut path = url.path().to_string();
        if path.is_empty() {
            path.push('/');
        }
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map_or_else(|| s.to_string(), |(_, v)| v.into_owned())
        };
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(decode);
        Ok(Self {
            scheme,
            host,
            port,
            path,
            user,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_hosts_ports() {
        let u = DrainUrl::parse("https://user:secret@logs.example.com/spaced").unwrap();
        assert_eq!(u.scheme, DrainScheme::Https);
        assert_eq!(u.port, 443);
        assert_eq!(u.path, "/spaced");
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(
            u.to_string(),
            "https://user:***@logs.example.com:443/spaced"
        );
        assert!(!format!("{u:?}").contains("secret"));
        let u = DrainUrl::parse("syslog+tls://logs.example.com:6514").unwrap();
        assert_eq!((u.scheme, u.port), (DrainScheme::SyslogTls, 6514));
        let u = DrainUrl::parse("syslog+udp://[::1]:5514").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.to_string(), "syslog+udp://[::1]:5514");
        assert_eq!(DrainUrl::parse("otlp+http://127.0.0.1").unwrap().port, 4318);
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(
            DrainUrl::parse("ftp://x")
                .unwrap_err()
                .starts_with("unknown scheme")
        );
        assert_eq!(DrainUrl::parse("syslog://").unwrap_err(), "no host");
        assert_eq!(DrainUrl::parse("https://").unwrap_err(), "no host");
        assert_eq!(DrainUrl::parse("syslog://h:99999").unwrap_err(), "bad port");
        assert_eq!(DrainUrl::parse("syslog://h:0").unwrap_err(), "bad port");
        assert_eq!(DrainUrl::parse("syslog://h:x").unwrap_err(), "bad port");
        assert!(DrainUrl::parse("logs.example.com").is_err());
    }
}
