//! spaced-router (in progress).
#![forbid(unsafe_code)]
