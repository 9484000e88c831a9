//! Text → `Raw*` → validated, compiled [`Policy`]. Validation collects every problem before
//! failing, each located at the offending value.
//!
//! Sections are compiled in `compile/sections.rs`, apps and dynos in `compile/apps.rs`;
//! this file holds the entry points and the value checks they share.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use crate::duration::parse_duration;
use crate::error::{ConfigError, ErrorKind, Errors};
use crate::ipset::IpSet;
use crate::policy::Policy;
use crate::raw::RawConfig;

mod apps;
mod claim;
mod daemon;
pub(crate) mod fleet;
mod listeners;
mod logging;
mod secret;
mod sections;

/// At most this many errors are reported for one file: enough to fix a file in one edit,
/// and a bound on the work a hostile file can cause.
const MAX_ERRORS: usize = 100;

/// Where a config text comes from, and how to read the files it names.
pub struct Source<'a> {
    /// The name errors use (the path as the operator gave it).
    pub name: &'a str,
    /// The directory relative paths in the file are resolved against.
    pub dir: &'a Path,
    /// Reads a named file (`trusted_file`, certificates, keys). Tests and fuzzers pass a
    /// closure over an in-memory map; [`crate::load_file`] reads the disk.
    pub read: &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
}

/// Parses, validates and compiles config text: a pure function of the bytes and the files
/// `source.read` returns.
///
/// ```
/// use std::path::Path;
/// let text = "[space]\nname = \"demo\"\n[[app]]\nname = \"api\"\nhosts = [\"api.example.com\"]\n";
/// let source = spaced_config::Source {
///     name: "spaced.toml",
///     dir: Path::new("."),
///     read: &|p| std::fs::read(p),
/// };
/// let policy = spaced_config::parse(text.as_bytes(), &source).unwrap();
/// assert_eq!(policy.app_for_host("API.example.com:80").unwrap().name, "api");
///
/// let err = spaced_config::parse(b"[space]\nname = \"Demo\"\n", &source).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "spaced.toml:2:8: invalid space name \"Demo\": expected 1 to 30 characters of [a-z0-9-]"
/// );
/// ```
///
/// # Errors
/// Every problem found (at most 100), each with file, line and column, sorted by position.
pub fn parse(bytes: &[u8], source: &Source<'_>) -> Result<Policy, Errors> {
    let mut cx = Cx {
        source,
        text: "",
        lines: Vec::new(),
        errors: Vec::new(),
        files: Vec::new(),
        claims: Vec::new(),
        second: None,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            // Locate the first bad byte within the valid prefix, which is text.
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            cx.text = std::str::from_utf8(valid).unwrap_or_default();
            cx.push(
                valid.len()..valid.len(),
                ErrorKind::Toml {
                    message: "invalid UTF-8: a TOML file is UTF-8 text".into(),
                },
            );
            return Err(Errors(cx.errors));
        }
    };
    cx.text = text;
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = humanize(e.message().lines().next().unwrap_or("invalid TOML"));
            cx.push(span, ErrorKind::Toml { message });
            return Err(Errors(cx.errors));
        }
    };
    let policy = cx.compile(raw);
    if cx.errors.is_empty() {
        Ok(policy)
    } else {
        // Section order is not file order; a reader expects the latter. Errors in other
        // files (`trusted_file`) follow, in the order found.
        let name = source.name;
        cx.errors.sort_by_key(|e| {
            let here = e.file == name;
            (!here, if here { (e.line, e.col) } else { (0, 0) })
        });
        Err(Errors(cx.errors))
    }
}

/// Rewords serde's messages, which name Rust types, in the file's terms.
fn humanize(message: &str) -> String {
    let mut out = message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("missing field", "missing required key")
        .replace("unknown field", "unknown key");
    // `expected struct RawApp` and the like: every `Raw*` struct is a TOML table.
    if let Some(i) = out.find("expected struct Raw") {
        out.truncate(i);
        out.push_str("expected a table");
    }
    out
}

/// The compile context: the source, the text for locating spans, and what was found.
pub(crate) struct Cx<'a> {
    pub(crate) source: &'a Source<'a>,
    text: &'a str,
    /// Byte offsets of line starts after the first, built on the first error.
    lines: Vec<usize>,
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) files: Vec<PathBuf>,
    /// Every listener address, for the conflict check at the end.
    claims: Vec<claim::Claim>,
    /// A second document appended to `text` at this byte offset (a line start), whose
    /// errors are located in it under this name: the fleet's policy (`compile/fleet.rs`).
    second: Option<(usize, &'a str)>,
}

impl Cx<'_> {
    /// Records an error at the byte span's start in the config file.
    pub(crate) fn push(&mut self, span: Range<usize>, kind: ErrorKind) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        if self.lines.is_empty() {
            self.lines = line_starts(self.text);
        }
        let (mut line, col) = line_col(self.text, &self.lines, span.start);
        let mut file = self.source.name;
        if let Some((start, name)) = self.second
            && span.start >= start
        {
            // `start` is a line start: columns are the same, lines count from it.
            let before = self.lines.partition_point(|&s| s <= start).max(1) - 1;
            line -= before;
            file = name;
        }
        self.errors.push(ConfigError {
            file: file.to_string(),
            line,
            col,
            kind,
        });
    }

    /// Records an error in another file (`trusted_file`), already located.
    pub(crate) fn push_at(&mut self, file: &str, line: usize, col: usize, kind: ErrorKind) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(ConfigError {
                file: file.to_string(),
                line,
                col,
                kind,
            });
        }
    }

    fn compile(&mut self, raw: RawConfig) -> Policy {
        let space = self.space(raw.space);
        let tls_listen_span = raw
            .router
            .as_ref()
            .and_then(|r| r.tls_listen.as_ref())
            .map(Spanned::span);
        let router = self.router(raw.router);
        let tls = raw
            .tls
            .iter()
            .filter_map(|t| self.tls(t))
            .collect::<Vec<_>>();
        // A TLS listener with no certificate could only fail every handshake.
        if let Some(span) = tls_listen_span
            && !router.tls_listen.is_empty()
            && raw.tls.is_empty()
        {
            self.push(span, ErrorKind::TlsListenWithoutTls);
        }
        let resolver = self.resolver(raw.resolver);
        let egress = self.egress(raw.egress);
        let admin = raw.admin.and_then(|a| {
            let listen = self
                .listeners("admin.listen", std::slice::from_ref(&a.listen))
                .first()
                .copied();
            let probe_listen = self.listeners("admin.probe_listen", &a.probe_listen);
            listen.map(|listen| crate::policy::Admin {
                listen,
                probe_listen,
            })
        });
        let daemon = self.daemon(raw.daemon);
        self.check_listeners();
        let (apps, hosts, dyno_ips) = self.apps(raw.app, &router);
        let fleet = raw.fleet.and_then(|f| self.fleet(f));
        let logging = self.logging(raw.logging);
        let drains = raw
            .drain
            .iter()
            .filter_map(|d| self.drain(&d.url, d.ca.as_ref()))
            .collect();
        Policy {
            logging,
            drains,
            space,
            router,
            tls,
            resolver,
            egress,
            admin,
            daemon,
            apps,
            hosts,
            dyno_ips,
            files: std::mem::take(&mut self.files),
            fleet,
        }
    }

    /// Checks a space, app or process name: these become DNS labels and metric labels.
    pub(crate) fn name(&mut self, what: &'static str, name: &Spanned<String>) -> bool {
        let n = name.get_ref();
        let ok = valid_name(n);
        if !ok {
            self.push(
                name.span(),
                ErrorKind::BadName {
                    what,
                    name: n.clone(),
                },
            );
        }
        ok
    }

    pub(crate) fn nets(&mut self, list: &[Spanned<String>]) -> Vec<IpNet> {
        let mut nets = Vec::with_capacity(list.len());
        for item in list {
            match parse_cidr(item.get_ref()) {
                Ok(net) => nets.push(net),
                Err(kind) => self.push(item.span(), kind),
            }
        }
        nets
    }

    pub(crate) fn ipset(&mut self, list: &[Spanned<String>]) -> IpSet {
        let nets = self.nets(list);
        IpSet::from_nets(nets)
    }

    pub(crate) fn socket_addr(&mut self, s: &Spanned<String>) -> Option<SocketAddr> {
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    s.span(),
                    ErrorKind::BadSocketAddr {
                        text: s.get_ref().clone(),
                    },
                );
                None
            }
        }
    }

    pub(crate) fn socket_addrs(&mut self, list: &[Spanned<String>]) -> Vec<SocketAddr> {
        list.iter().filter_map(|s| self.socket_addr(s)).collect()
    }

    /// A duration; `positive` rejects zero where zero would mean "fail at once" or a busy
    /// loop rather than anything an operator wants.
    pub(crate) fn duration(&mut self, s: &Spanned<String>, positive: bool) -> Option<Duration> {
        match parse_duration(s.get_ref()) {
            Some(d) if positive && d.is_zero() => {
                self.push(
                    s.span(),
                    ErrorKind::Invalid {
                        key: "duration",
                        value: s.get_ref().clone(),
                        expected: "a duration above zero",
                    },
                );
                None
            }
            Some(d) => Some(d),
            None => {
                self.push(
                    s.span(),
                    ErrorKind::BadDuration {
                        text: s.get_ref().clone(),
                    },
                );
                None
            }
        }
    }

    pub(crate) fn path(&mut self, s: &Spanned<String>) -> Option<String> {
        let p = s.get_ref();
        if p.starts_with('/') && !p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            Some(p.clone())
        } else {
            self.push(
                s.span(),
                ErrorKind::Invalid {
                    key: "path",
                    value: p.clone(),
                    expected: "an absolute request path such as \"/health\"",
                },
            );
            None
        }
    }

    /// An integer in `min..=max`; `None` (after recording the error) outside it.
    pub(crate) fn int(
        &mut self,
        n: &Spanned<i64>,
        key: &'static str,
        min: i64,
        max: i64,
        expected: &'static str,
    ) -> Option<i64> {
        let v = *n.get_ref();
        if (min..=max).contains(&v) {
            Some(v)
        } else {
            self.push(
                n.span(),
                ErrorKind::Invalid {
                    key,
                    value: v.to_string(),
                    expected,
                },
            );
            None
        }
    }

    /// A zone label (`router.zone`, `dyno.zone`): compared as text only, so any short
    /// identifier an orchestrator uses (`us-east-1a`, `eu_west.2`) is fine.
    pub(crate) fn zone(&mut self, key: &'static str, z: &Spanned<String>) -> Option<String> {
        let v = z.get_ref();
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Some(v.clone())
        } else {
            self.push(
                z.span(),
                ErrorKind::Invalid {
                    key,
                    value: v.clone(),
                    expected: "1 to 63 characters of [A-Za-z0-9._-]",
                },
            );
            None
        }
    }
}

/// `[a-z0-9-]{1,30}`: the contract's name syntax.
pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 30
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A CIDR, or a bare address as /32 or /128; host bits set is an error.
///
/// Hand-split rather than `IpNet::from_str`: std's address parsers are several times
/// faster than ipnet's generic one, and a blocklist can hold 100k entries.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, ErrorKind> {
    let bad = || ErrorKind::BadCidr { text: text.into() };
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => {
            // `u8::from_str` would take "+8"; a prefix is 1 to 3 digits and nothing else.
            if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?))
        }
        None => (text, None),
    };
    let ip = addr.parse::<IpAddr>().map_err(|_| bad())?;
    let net = match prefix {
        Some(p) => IpNet::new(ip, p).map_err(|_| bad())?,
        None => IpNet::from(ip),
    };
    let trunc = net.trunc();
    if trunc != net {
        return Err(ErrorKind::HostBitsSet {
            text: text.into(),
            suggestion: trunc.to_string(),
        });
    }
    Ok(net)
}

/// DNS labels of `[A-Za-z0-9_-]`, 1 to 63 bytes each, no `-` at either end (RFC 1123:
/// no client sends such a name, so a rule for it is a typo), 253 in all.
pub(crate) fn valid_host(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    starts
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let line = starts.partition_point(|&s| s <= offset).max(1);
    let start = starts.get(line - 1).copied().unwrap_or(0);
    let col = text
        .get(start..offset)
        .map_or(1, |prefix| prefix.chars().count() + 1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_in_characters() {
        let text = "ab\né x\n\nz";
        let starts = line_starts(text);
        assert_eq!(line_col(text, &starts, 0), (1, 1));
        assert_eq!(line_col(text, &starts, 2), (1, 3));
        assert_eq!(line_col(text, &starts, 3), (2, 1));
        // 'é' is two bytes, one column.
        assert_eq!(line_col(text, &starts, 6), (2, 3));
        assert_eq!(line_col(text, &starts, 8), (3, 1));
        assert_eq!(line_col(text, &starts, 9), (4, 1));
        assert_eq!(line_col(text, &starts, 999), (4, 2));
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert_eq!(parse_cidr("10.0.0.1").map(|n| n.prefix_len()), Ok(32));
        assert_eq!(parse_cidr("::1").map(|n| n.prefix_len()), Ok(128));
        assert_eq!(parse_cidr("10.0.0.0/008").map(|n| n.prefix_len()), Ok(8));
        assert!(parse_cidr("::ffff:10.0.0.0/104").is_ok());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        assert_eq!(
            parse_cidr("10.0.0.1/8").map_err(|e| e.to_string()),
            Err("invalid CIDR \"10.0.0.1/8\": host bits set (did you mean 10.0.0.0/8?)".into())
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "/8",
            " 10.0.0.0/8",
        ] {
            assert!(
                matches!(parse_cidr(bad), Err(ErrorKind::BadCidr { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_and_hosts() {
        assert!(valid_name("api-2"));
        assert!(!valid_name(""));
        assert!(!valid_name("Api"));
        assert!(!valid_name("a_b"));
        assert!(!valid_name(&"a".repeat(31)));
        assert!(valid_host("api.example.com"));
        assert!(!valid_host("api..example.com"));
        assert!(!valid_host("api example.com"));
        assert!(!valid_host("-a.test"));
        assert!(!valid_host("a-.test"));
        assert!(valid_host("xn--bcher-kva.test"));
        assert!(valid_host("_sip.a-b.test"));
    }

    #[test]
    fn humanized_messages() {
        assert_eq!(
            humanize("invalid type: string \"x\", expected i64"),
            "invalid type: string \"x\", expected an integer"
        );
        assert_eq!(
            humanize("invalid type: integer `5`, expected struct RawApp"),
            "invalid type: integer `5`, expected a table"
        );
    }
}
