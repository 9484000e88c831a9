//! Configuration errors: each names the file, line and column of the offending value.

use std::fmt;

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as the operator named it (or the included file it comes from).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ErrorKind::ConfigFile { reason } = &self.kind {
            return write!(f, "config file {}: {reason}", self.file);
        }
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.kind)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The config file `file` could not be read: `config file FILE: No such file or
    /// directory`, the OS's words without Rust's `(os error 2)`.
    pub fn config_file(file: &str, error: &std::io::Error) -> Self {
        Self {
            file: file.to_string(),
            line: 1,
            col: 1,
            kind: ErrorKind::ConfigFile {
                reason: os_reason(error),
            },
        }
    }
}

/// An I/O error's text without the `(os error N)` Rust appends, which tells an operator
/// nothing the words do not.
pub(crate) fn os_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// What is wrong with a value. Messages are lowercase and say what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read file: {reason}")]
    Read {
        /// The OS error text.
        reason: String,
    },
    /// TOML syntax, a wrong type or an unknown key, as the TOML parser words it.
    #[error("{message}")]
    Toml {
        /// The parser's message, first line only.
        message: String,
    },
    /// `[space]` or its `name` is missing.
    #[error("missing required key `space.name`")]
    MissingSpaceName,
    /// A name outside `[a-z0-9-]{1,30}`.
    #[error("invalid {what} name {name:?}: expected 1 to 30 characters of [a-z0-9-]")]
    BadName {
        /// `space` or `app`.
        what: &'static str,
        /// As written.
        name: String,
    },
    /// Two apps with one name.
    #[error("duplicate app name {name:?}")]
    DuplicateApp {
        /// The name.
        name: String,
    },
    /// A host name claimed by two apps.
    #[error("host {host:?} is already claimed by app {first:?}")]
    DuplicateHost {
        /// The host.
        host: String,
        /// The app that claimed it first.
        first: String,
    },
    /// A malformed host name.
    #[error("invalid host name {host:?}: {reason}")]
    BadHost {
        /// As written.
        host: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a CIDR or address.
    #[error("invalid CIDR {text:?}: expected an address or address/prefix")]
    BadCidr {
        /// As written.
        text: String,
    },
    /// A CIDR with host bits set.
    #[error("invalid CIDR {text:?}: host bits set (did you mean {suggestion}?)")]
    HostBitsSet {
        /// As written.
        text: String,
        /// The network it probably means.
        suggestion: String,
    },
    /// Not `ip:port`.
    #[error("invalid socket address {text:?}: expected ip:port (e.g. 127.0.0.1:80 or [::1]:80)")]
    BadSocketAddr {
        /// As written.
        text: String,
    },
    /// Not an IP address.
    #[error("invalid address {text:?}: expected an IPv4 or IPv6 address")]
    BadAddr {
        /// As written.
        text: String,
    },
    /// Not a duration string.
    #[error(
        "invalid duration {text:?}: expected a whole number with ms, s, m or h (e.g. \"250ms\", \"5s\")"
    )]
    BadDuration {
        /// As written.
        text: String,
    },
    /// A value outside its allowed set or range.
    #[error("invalid {key} {value:?}: expected {expected}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// As written.
        value: String,
        /// What would do.
        expected: &'static str,
    },
    /// A secret-bearing value (`egress_token`) that cannot be used. Unlike
    /// [`ErrorKind::Invalid`] it never holds the value: errors are printed by `spaced
    /// check`, logged and shown by `GET /config`.
    #[error("invalid {key}: the value {problem}; expected {expected} (the value is not shown)")]
    BadSecret {
        /// The key.
        key: &'static str,
        /// What is wrong with it, without quoting it.
        problem: &'static str,
        /// What would do.
        expected: &'static str,
    },
    /// Two dynos of one process with one number.
    #[error("duplicate dyno number {number} for process {process:?} of app {app:?}")]
    DuplicateDynoNumber {
        /// The app.
        app: String,
        /// The process.
        process: String,
        /// The number.
        number: u32,
    },
    /// `tls_listen` without any `[[tls]]`.
    #[error("router.tls_listen needs at least one [[tls]] certificate")]
    TlsListenWithoutTls,
    /// A certificate or key that cannot be used.
    #[error("{what} {path:?}: {reason}")]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Two listeners on one socket address.
    #[error("listener {addr} ({key}) conflicts with {other} ({other_key}): both cannot be bound")]
    ListenerConflict {
        /// The later listener.
        addr: std::net::SocketAddr,
        /// Its key.
        key: &'static str,
        /// The earlier one it clashes with.
        other: std::net::SocketAddr,
        /// Its key.
        other_key: &'static str,
    },
    /// Egress listeners and no `source_ips`.
    #[error("egress listeners need at least one address in egress.source_ips")]
    EgressWithoutSourceIps,
    /// A drain URL that cannot be used (shown redacted: no password in an error).
    #[error("bad drain url {url:?}: {reason}")]
    BadDrainUrl {
        /// The URL, its password replaced by `***`.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An internal app with nothing to reach it.
    #[error(
        "app {app:?} has routing = \"internal\" but router.internal_listen is empty: it would be unreachable"
    )]
    InternalAppUnreachable {
        /// The app.
        app: String,
    },
    /// The config file itself cannot be read: not a problem at any line of it, so it is
    /// shown without a location (`1:1` would read like a parse error).
    #[error("{reason}")]
    ConfigFile {
        /// The OS error text, without Rust's `(os error N)` suffix.
        reason: String,
    },
    /// A secret given both inline and by file: which one counts would be a guess.
    #[error("{key} and {key}_file are both given: keep one")]
    SecretTwice {
        /// The inline key (`app.egress_token`).
        key: &'static str,
    },
    /// A secret file that cannot be used. Never carries the file's content.
    #[error("{key} {path:?}: {problem}")]
    SecretFile {
        /// The key naming the file (`app.egress_token_file`).
        key: &'static str,
        /// The file, resolved against the config's directory.
        path: String,
        /// What is wrong, in words that never quote the secret.
        problem: String,
    },
    /// With `[fleet]`, a key in the local file that belongs in the fleet's shared policy,
    /// or a key in the shared policy that belongs in each host's file.
    #[error("key `{key}` belongs in {belongs}")]
    WrongPlace {
        /// The dotted key.
        key: String,
        /// Where it goes instead.
        belongs: &'static str,
    },
    /// A key a section cannot do without.
    #[error("missing required key `{key}`")]
    MissingKey {
        /// The dotted key.
        key: &'static str,
    },
}

impl ErrorKind {
    /// Whether a file could not be read (the config itself, `trusted_file`, a certificate
    /// or key) rather than holding a wrong value. Editors and orchestrators replace files
    /// by rename, so a reload triggered mid-swap may see such an error that a retry a
    /// moment later would not.
    pub fn is_io(&self) -> bool {
        match self {
            Self::Read { .. } | Self::ConfigFile { .. } => true,
            Self::SecretFile { problem, .. } => problem.starts_with("cannot read"),
            Self::Tls { reason, .. } => reason.starts_with("cannot read"),
            _ => false,
        }
    }
}

impl Errors {
    /// Whether every error is a file that could not be read (see [`ErrorKind::is_io`]).
    pub fn is_io(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|e| e.kind.is_io())
    }
}

/// Every problem found in one file: validation collects them all, so one edit fixes all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errors(pub Vec<ConfigError>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}
