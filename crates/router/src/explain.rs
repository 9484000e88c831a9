//! Router security: explain (in progress).
