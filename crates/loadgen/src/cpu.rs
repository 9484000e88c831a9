//! The process's CPU time (user + system, every thread): `CLOCK_PROCESS_CPUTIME_ID`, the
//! same sum as `getrusage(RUSAGE_SELF)`'s user + sys, in nanoseconds rather than the
//! kernel's tick-rounded rusage, and reachable without `unsafe` (rustix).

use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

pub(crate) fn process_cpu() -> std::io::Result<Duration> {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    let secs = u64::try_from(t.tv_sec).map_err(|_| std::io::Error::other("negative CPU time"))?;
    let nanos = u32::try_from(t.tv_nsec).map_err(|_| std::io::Error::other("bad nanoseconds"))?;
    Ok(Duration::new(secs, nanos))
}
