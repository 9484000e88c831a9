//! spaced-logs' component tests, one binary (one link in CI): real drains (syslog over
//! TCP, UDP and TLS, Logplex and OTLP over HTTP(S)) against real receivers, rsyslogd
//! among them, and the faults a receiver can cause.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod ceiling;
mod faults;
mod http_drains;
mod otlp_decode;
mod rsyslog;
mod support;
mod throughput;
