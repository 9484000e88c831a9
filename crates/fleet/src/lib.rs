//! The fleet (`shared/spec/OPERATIONS.md`, "Fleet"): several spaced processes share one
//! policy and one dyno registry through etcd, and each registers itself there.
//!
//! This crate talks to etcd and knows the key layout; it does not compile or swap policies
//! (the daemon does, through `spaced_config::parse_fleet` and its `Store`):
//! - [`source`]: the initial read of the prefix at one revision, then a watch from the next,
//!   published as a whole [`View`] each time; reconnects with backoff and resumes from the
//!   revision, or reads everything again when that revision was compacted.
//! - [`dynos`]: `dynos/<app>/<process>/<number>` keys joined to a compiled policy without
//!   compiling it again; a bad key is skipped and reported by name.
//! - [`instance`]: this process's `instances/<name>` key under a lease, kept alive.
//! - [`cache`]: the `[daemon] cache` file, the last applied view.

pub mod cache;
mod client;
pub mod dynos;
mod error;
pub mod instance;
pub mod keys;
pub mod source;

pub use client::connect;
pub use error::FleetError;
pub use etcd_client;
pub use instance::{InstanceRecord, Registration};
pub use source::{Status, View};
