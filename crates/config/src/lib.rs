//! The policy of a private space: the TOML contract (`shared/spec/CONFIG.md`) parsed,
//! validated and compiled into an immutable [`Policy`] that the hot paths read, plus the
//! reload [`Store`] that swaps a whole policy in one step.
//!
//! This crate knows nothing about sockets, and reads files only through [`load_file`]:
//! [`parse`] is a pure function from text to policy so that it can be fuzzed. Runtime state
//! (health, connection counts) lives in the components, except the tiny [`DynoBoard`] that
//! the router writes and the resolver reads, since components never import each other.
#![forbid(unsafe_code)]

mod board;
mod compile;
mod diff;
mod duration;
mod error;
mod ipset;
mod load;
mod logging;
mod policy;
mod raw;
mod store;
mod tls;

pub use board::DynoBoard;
pub use compile::fleet::parse_fleet;
pub use compile::{Source, parse};
pub use diff::PolicyDiff;
pub use duration::parse_duration;
pub use error::{ConfigError, ErrorKind, Errors};
pub use ipset::{IpSet, canonical, embedded_v4};
pub use load::{Loaded, hex, load_file, load_with};
pub use logging::{Drain, DrainScheme, DrainUrl, LogFormat, Logging};
pub use policy::egress_warning;
pub use policy::{
    Admin, App, Balance, Daemon, Dyno, Egress, Fleet, HealthCheck, HostTable, Policy, Ports,
    Resolver, Router, Routing, Space, Timeouts, TlsCert,
};
pub use store::{Applied, Meta, Store};
