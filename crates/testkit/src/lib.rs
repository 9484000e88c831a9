//! What the test suites of every crate share. Only `[dev-dependencies]` name this crate.
//!
//! It starts with the one rule every suite needs: a test that cannot run here says so.
//! Then the pieces the suites used to copy: policies from TOML text ([`policy()`]),
//! recording dynos ([`dyno`]), throwaway certificates ([`pki`]), log capture ([`capture`]), `TCP_INFO` ([`tcp_info`]),
//! free ports ([`ports`]), real etcd processes ([`etcd`]) and bounded waits ([`within`],
//! [`eventually`]).
//!
//! It depends on `spaced-config` (a policy needs its parser) and on no component crate, so
//! every component's tests can use it.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

pub mod capture;
pub mod dyno;
pub mod etcd;
pub mod pki;
pub mod policy;
pub mod ports;
pub mod tcp_info;

pub use policy::{policy, policy_in, policy_with_files};

/// How long any one await in a test may take before the test fails: long enough for a
/// loaded CI machine, short enough that a hang fails with a message instead of a timeout
/// of the whole run.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test with `what` after [`LIMIT`].
///
/// # Panics
/// When `f` takes longer than [`LIMIT`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Waits until `cond` holds, checking every 20 ms, failing the test with `what` after
/// [`LIMIT`]. For events a test can only observe by looking (a counter, a table entry).
///
/// # Panics
/// When `cond` never holds within [`LIMIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cond(), "never happened: {what}");
}

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
