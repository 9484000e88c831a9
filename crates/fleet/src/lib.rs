//! The fleet (`shared/spec/OPERATIONS.md`, "Fleet"): several spaced processes share one
//! policy and one dyno registry through etcd.
