//! Component tests: the real resolver on 127.0.0.1:0, raw hickory-proto messages over real
//! UDP and TCP sockets, clients playing networks by their loopback source address.

// clippy.toml allows unwrap in tests, but not in the helpers of an integration-test crate.
#![allow(clippy::unwrap_used)]

mod access;
mod batch;
mod forward;
mod hostile;
mod names;
mod reload;
mod support;
mod transport;
mod upstream;
