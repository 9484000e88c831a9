//! spaced-net (in progress).
