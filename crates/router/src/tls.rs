//! Router security: tls (in progress).
