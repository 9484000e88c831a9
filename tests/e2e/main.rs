//! End-to-end tests: the real daemon on loopback ports.
