//! One path for every log line of spaced (OPERATIONS.md "Logs and drains").
//!
//! A component formats its line (router and egress lines in the BEHAVIOR.md logfmt) and
//! calls [`emit`]: the line is copied once into a shared [`Record`] (a reused one: a line
//! allocates nothing in steady state) and pushed onto bounded, lock-free queues, one for
//! stdout and one per drain of its scope. Nothing on that path waits or writes: stdout is
//! written by its own thread in batches, each drain by its own task; a queue that is full
//! drops its oldest line and counts it. Encoding for a sink (the
//! timestamp, JSON, RFC 5424, OTLP) happens in that sink's writer, off the hot path.
//!
//! `tracing` events (the daemon's own lines, the resolver's, the egress tunnel lines) reach
//! the same queues through [`MakeHubWriter`].

use std::sync::{Arc, OnceLock};

mod drain;
pub mod format;
mod hub;
pub mod otlp;
mod pool;
mod queue;
mod record;
mod stdout;
pub mod syslog;
mod writer;

pub use hub::{Hub, STOP_GRACE};
pub use record::{Kind, Level, Record, Source};
pub use writer::MakeHubWriter;

static HUB: OnceLock<Arc<Hub>> = OnceLock::new();

/// Installs the process's hub and starts its stdout writer (defaults: logfmt, timestamps,
/// stdout on) until [`Hub::apply`] reads a policy. Later calls return the same hub.
///
/// # Errors
/// The stdout writer thread could not start (then nothing was installed).
pub fn install() -> std::io::Result<Arc<Hub>> {
    if let Some(h) = HUB.get() {
        return Ok(h.clone());
    }
    let hub = Arc::new(Hub::new());
    let thread = stdout::spawn(hub.clone())?;
    hub.start_stdout(thread);
    Ok(HUB.get_or_init(|| hub).clone())
}

/// The installed hub, if any.
pub fn hub() -> Option<&'static Arc<Hub>> {
    HUB.get()
}

/// Queues a line for stdout and the drains of its scope (`app` `""`: no app). Returns
/// false when no hub is installed (library tests): the caller then logs through `tracing`.
#[inline]
pub fn emit(level: Level, source: Source, kind: Kind, app: &str, text: &str) -> bool {
    match HUB.get() {
        Some(h) => {
            h.emit(level, source, kind, app, text);
            true
        }
        None => false,
    }
}
