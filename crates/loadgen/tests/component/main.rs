//! spaced-loadgen's component tests, one binary: `tls-storm`'s generator against a real
//! TLS 1.3 server (rustls, started in the test), counting what it must count.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod storm;
