//! spaced-router (in progress).
#![forbid(unsafe_code)]

pub mod access;
pub mod explain;
pub mod tls;
