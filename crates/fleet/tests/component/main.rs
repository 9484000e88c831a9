//! spaced-fleet's integration tests, one binary (one link in CI): the etcd source against
//! real etcd processes (`spaced_testkit::etcd`), and a by-hand measurement at scale.

mod scale;
mod source;
