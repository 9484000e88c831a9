//! One log line as it travels: the text the component formatted, plus what sinks need to
//! route and re-encode it (time, level, source, app). Built once, shared by every sink.

use std::time::SystemTime;

/// Who wrote the line (`source` in JSON, PROCID in syslog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A router request line.
    Router,
    /// An egress tunnel line.
    Egress,
    /// The resolver.
    Resolver,
    /// The daemon itself (start, reload, errors).
    Spaced,
}

impl Source {
    /// The name used in JSON and syslog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Router => "router",
            Self::Egress => "egress",
            Self::Resolver => "resolver",
            Self::Spaced => "spaced",
        }
    }
}

/// A line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something went wrong on the client's side, or may need attention.
    Warning,
    /// Normal operation.
    Info,
    /// Detail for debugging.
    Debug,
}

impl Level {
    /// As JSON's `level` and logfmt's `at=` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }

    /// The syslog severity (RFC 5424 §6.2.1).
    pub fn severity(self) -> u8 {
        match self {
            Self::Error => 3,
            Self::Warning => 4,
            Self::Info => 6,
            Self::Debug => 7,
        }
    }

    /// From a `tracing` level.
    pub fn from_tracing(l: tracing::Level) -> Self {
        match l {
            tracing::Level::ERROR => Self::Error,
            tracing::Level::WARN => Self::Warning,
            tracing::Level::INFO => Self::Info,
            _ => Self::Debug,
        }
    }
}

/// What the text is: a logfmt line (router, egress: its fields become JSON fields and OTLP
/// attributes) or free text from `tracing` (one `msg` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `key=value …`.
    Logfmt,
    /// Anything else.
    Text,
}

/// One line. The app name and the text share one buffer, which is reused from line to
/// line (see `pool`): in steady state a line allocates nothing.
#[derive(Debug)]
pub struct Record {
    /// When it was written.
    pub time: SystemTime,
    /// Its level.
    pub level: Level,
    /// Its writer.
    pub source: Source,
    /// How to read its text.
    pub kind: Kind,
    app_len: usize,
    buf: String,
}

/// A new record's buffer holds at least this much, so that a reused one rarely grows: a
/// router line is 200–300 bytes.
const MIN_CAPACITY: usize = 384;

impl Record {
    /// A line of `app` (`""`: no app).
    pub fn new(level: Level, source: Source, kind: Kind, app: &str, text: &str) -> Self {
        let mut r = Self {
            time: SystemTime::UNIX_EPOCH,
            level,
            source,
            kind,
            app_len: 0,
            buf: String::with_capacity((app.len() + text.len()).max(MIN_CAPACITY)),
        };
        r.set(level, source, kind, app, text);
        r
    }

    /// Makes this record a new line, keeping its buffer.
    pub(crate) fn set(&mut self, level: Level, source: Source, kind: Kind, app: &str, text: &str) {
        self.time = SystemTime::now();
        self.level = level;
        self.source = source;
        self.kind = kind;
        self.app_len = app.len();
        self.buf.clear();
        self.buf.push_str(app);
        self.buf.push_str(text);
    }

    /// The bytes its buffer holds (what keeping it for reuse costs).
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The app, or `""`.
    pub fn app(&self) -> &str {
        &self.buf[..self.app_len]
    }

    /// The line, without a newline.
    pub fn text(&self) -> &str {
        &self.buf[self.app_len..]
    }
}
