//! [`Relayed`], what a finished relay moved, and the step that builds it from a driver's
//! outcome; a leaf that both relays (the generic one and `splice`) use.

use std::io;

/// What a finished relay moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relayed {
    /// Bytes read from `a` and written to `b`.
    pub a_to_b: u64,
    /// Bytes read from `b` and written to `a`.
    pub b_to_a: u64,
    /// The relay stopped because nothing moved for `idle` (both ends are then dropped).
    pub idle_timeout: bool,
}

/// Turns the driver's outcome (`Ok(idle_timeout)` or the first error) into the result.
pub(super) fn finish(
    a_to_b: u64,
    b_to_a: u64,
    outcome: io::Result<bool>,
) -> (Relayed, Option<io::Error>) {
    let mut relayed = Relayed {
        a_to_b,
        b_to_a,
        idle_timeout: false,
    };
    match outcome {
        Ok(idle_timeout) => {
            relayed.idle_timeout = idle_timeout;
            (relayed, None)
        }
        Err(e) => (relayed, Some(e)),
    }
}
