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

mod drain;
pub mod format;
mod hub;
mod installed;
pub mod otlp;
mod pool;
mod queue;
mod record;
mod stdout;
pub mod syslog;
mod writer;

pub use drain::STOP_GRACE;
pub use hub::Hub;
pub use installed::{emit, hub, install};
pub use record::{Kind, Level, Record, Source};
pub use writer::MakeHubWriter;
