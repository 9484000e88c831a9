//! What the test suites of every crate share. Only `[dev-dependencies]` name this crate.
//!
//! It starts with the one rule every suite needs: a test that cannot run here says so.

use std::io::Write;

pub mod etcd;
pub mod ports;

/// For a test that cannot run on this machine (a program missing, no IPv6 loopback, not
/// root): call it, then return from the test.
///
/// Under CI (`CI=true`) this fails the test: `.ci/run` installs what every test needs, so
/// a skip there would be a test that passes without having run. Elsewhere the reason is
/// written straight to the process's stderr, past the test runner's capture, so a passing
/// run still shows every test that did nothing (`cargo test 2>&1 | grep '^skipped'`
/// counts them).
///
/// # Panics
/// Under `CI=true`, always.
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test cannot run here, and under CI=true that is a failure: {reason}"
    );
    // `eprintln!` would be captured and hidden for a passing test.
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}
