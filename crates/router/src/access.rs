//! Router security: access (in progress).
