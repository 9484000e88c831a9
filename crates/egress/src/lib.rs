//! spaced-egress (in progress).
#![forbid(unsafe_code)]
