//! spaced-config's integration tests, one binary (one link in CI): good and bad files
//! through the real parser, TLS material, fleet keys, the daemon section, and the IP set
//! properties.

mod bad_files;
mod daemon;
mod fleet;
mod good_files;
mod ipset_prop;
mod tls;
mod tls_keys;
