//! The `spaced` daemon: loads one policy file into a [`spaced_config::Store`], starts the
//! components whose sections have listeners (router, resolver, egress), keeps the policy
//! hot (file watcher, SIGHUP, `POST /reload`) and serves the admin API.
//!
//! Components never import each other; this crate is the only place that wires them, and the
//! only one that knows about files on disk, signals, the command line and the admin API.
//! Tests drive it through [`Daemon::start`], which returns the bound addresses.

pub mod admin;
mod components;
pub mod daemon;
pub mod demo;
pub mod fleet;
pub mod limits;
pub mod logging;
pub mod notify;
pub mod reload;
pub mod upgrade;
pub mod warnings;

pub use daemon::{Addrs, Daemon, Options, run};
