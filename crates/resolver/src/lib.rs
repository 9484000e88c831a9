//! spaced-resolver (in progress).
#![forbid(unsafe_code)]
