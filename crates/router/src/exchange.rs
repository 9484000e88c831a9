//! One request's context from arrival to its log line: what the line says, the app's
//! counters, and the connection's activity. Whoever finishes the request calls
//! [`Exchange::finish`]; if nobody does (the client went away before the response),
//! dropping it logs H27.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use spaced_logs::{Kind, Level, Source};
use tokio::time::Instant;

use crate::code::Code;
use crate::conn::ctx::ConnCtx;
use crate::logline::LogLine;
use crate::state::{AppStats, DynoRt};

/// How a request ended, for the log line and the counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome<'a> {
    /// The error code, if any.
    pub code: Option<Code>,
    /// Status sent or logged.
    pub status: u16,
    /// Response body bytes.
    pub bytes: u64,
    /// The dyno's label.
    pub dyno: Option<&'a str>,
    /// Connection time, ms.
    pub connect_ms: Option<u64>,
    /// Service time, ms.
    pub service_ms: Option<u64>,
}

/// Where a request went, for the log line of a client that leaves before the response.
#[derive(Debug)]
pub(crate) struct SentTo {
    /// The dyno.
    pub dyno: Arc<DynoRt>,
    /// Connection time, ms.
    pub connect_ms: u64,
    /// When the request was sent.
    pub sent: Instant,
}

/// One request in flight.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The client connection it came on.
    pub conn: Arc<ConnCtx>,
    /// When its head was parsed.
    pub arrived: Instant,
    /// Request method.
    pub method: Method,
    /// Path and query, as received.
    pub path: Option<PathAndQuery>,
    /// Host or `:authority`.
    pub host: Option<HeaderValue>,
    /// The request id.
    pub request_id: HeaderValue,
    /// The client address decided on (peer until routing says otherwise).
    pub fwd: IpAddr,
    /// The client's HTTP version.
    pub version: Version,
    /// The app's counters, once routed.
    pub stats: Option<Arc<AppStats>>,
    /// The head could not be parsed: the line shows `method=-` and `path="-"`.
    pub unparsed: bool,
    /// The dyno the request was sent to, while its response is awaited: an H27 line then
    /// names it, with its connect and service times, as Heroku's does.
    pub sent_to: Option<SentTo>,
    /// When the line was written (`None`: not yet).
    done: Option<Instant>,
}

impl Exchange {
    /// Starts an exchange on `conn`.
    pub(crate) fn new(
        conn: Arc<ConnCtx>,
        method: Method,
        version: Version,
        request_id: HeaderValue,
    ) -> Self {
        conn.activity_begin();
        Self {
            fwd: conn.peer,
            conn,
            arrived: Instant::now(),
            method,
            path: None,
            host: None,
            request_id,
            version,
            stats: None,
            unparsed: false,
            sent_to: None,
            done: None,
        }
    }

    /// Writes the log line and counts the request (once).
    pub(crate) fn finish(&mut self, o: Outcome<'_>) {
        self.finish_at(o, Instant::now());
    }

    /// [`Exchange::finish`] at `now`, an instant the caller has just read.
    pub(crate) fn finish_at(&mut self, o: Outcome<'_>, now: Instant) {
        if self.done.is_some() {
            return;
        }
        self.done = Some(now);
        let elapsed_us = now.saturating_duration_since(self.arrived).as_micros() as u64;
        let stats = match &self.stats {
            Some(s) => &**s,
            None => &self.conn.shared.metrics.unrouted,
        };
        stats.count(o.code, o.status);
        stats.latency.observe_us(elapsed_us);
        let line = LogLine {
            code: o.code,
            method: if self.unparsed {
                "-"
            } else {
                self.method.as_str()
            },
            path: match &self.path {
                _ if self.unparsed => b"-".as_slice(),
                Some(p) => p.as_str().as_bytes(),
                None => b"/".as_slice(),
            },
            host: self
                .host
                .as_ref()
                .map_or(b"".as_slice(), HeaderValue::as_bytes),
            request_id: self.request_id.as_bytes(),
            fwd: self.fwd,
            dyno: o.dyno,
            connect_ms: o.connect_ms,
            service_ms: o.service_ms,
            status: o.status,
            bytes: o.bytes,
            protocol: protocol(self.version),
            tls: self.conn.tls,
        };
        let app = self.stats.as_ref().map_or("", |s| &*s.name);
        emit(&line, app);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.done.is_none() {
            // Nobody finished it: the client closed before the response.
            let sent_to = self.sent_to.take();
            self.finish(Outcome {
                code: Some(Code::H27),
                status: Code::H27.status(),
                dyno: sent_to.as_ref().map(|s| &*s.dyno.label),
                connect_ms: sent_to.as_ref().map(|s| s.connect_ms),
                service_ms: sent_to
                    .as_ref()
                    .map(|s| s.sent.elapsed().as_millis() as u64),
                ..Outcome::default()
            });
        }
        let runtime = &self.conn.shared.runtime;
        let now_ms = self
            .done
            .map_or_else(|| runtime.now_ms(), |t| runtime.ms_at(t));
        self.conn.activity_end(now_ms);
    }
}

/// `http1.0`, `http1.1` or `http2.0`.
pub(crate) fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 | Version::HTTP_09 => "http1.0",
        Version::HTTP_2 => "http2.0",
        _ => "http1.1",
    }
}

thread_local! {
    /// One line buffer per worker thread, so formatting a line allocates nothing.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

/// Hands the line to the log hub (stdout and the drains of `app`), or, with no hub (library
/// tests), emits it as the whole message of a `router` event; formats nothing when the
/// `router` target is filtered out.
fn emit(line: &LogLine<'_>, app: &str) {
    macro_rules! at {
        ($mac:ident, $lvl:expr, $hub:expr) => {
            if tracing::enabled!(target: "router", $lvl) {
                LINE.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut buf) => {
                        buf.clear();
                        line.write(&mut buf);
                        if !spaced_logs::emit($hub, Source::Router, Kind::Logfmt, app, &buf) {
                            tracing::$mac!(target: "router", "{}", buf.as_str());
                        }
                    }
                    Err(_) => {
                        let mut buf = String::new();
                        line.write(&mut buf);
                        if !spaced_logs::emit($hub, Source::Router, Kind::Logfmt, app, &buf) {
                            tracing::$mac!(target: "router", "{}", buf);
                        }
                    }
                });
            }
        };
    }
    match line.level() {
        tracing::Level::INFO => at!(info, tracing::Level::INFO, Level::Info),
        tracing::Level::WARN => at!(warn, tracing::Level::WARN, Level::Warning),
        _ => at!(error, tracing::Level::ERROR, Level::Error),
    }
}
