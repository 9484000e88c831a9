//! Gives the pages that idle connections freed back to the system.
//!
//! Why: an idle keep-alive connection frees its buffers and its requests' state (a few
//! kilobytes) at its connection timer (spaced_router's `conn/park.rs`), but mimalloc keeps
//! freed pages until a delayed purge, which runs only on later allocator activity. The
//! parks come in a stream (each connection at its own timer), each one pushing the purge
//! back; then the process goes quiet and nothing runs it: 9,000 idle connections kept
//! about 4 KB each resident (benches/README.md, "Memory per idle connection"). A tick
//! here asks mimalloc to collect: it purges what has waited past its delay (arenas are
//! process-wide) and this worker's empty pages. Off the request path: it costs one call a
//! second, and on a busy process the purge would have run anyway.

use std::time::Duration;

/// How often mimalloc is asked to collect: freed pages leave RSS within about this long.
const EVERY: Duration = Duration::from_secs(1);

/// Runs on the daemon's runtime for its whole life.
pub(crate) async fn run() {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        collect();
    }
}

#[allow(unsafe_code)]
fn collect() {
    // SAFETY: mi_collect has no preconditions: it may be called from any thread at any
    // time, and `false` asks only for what is cheap (no forced purge of live pages).
    unsafe { libmimalloc_sys::mi_collect(false) };
}
