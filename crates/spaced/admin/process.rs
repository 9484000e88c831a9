//! `spaced_build_info` and Prometheus' standard process collector (`process_*`, the names
//! client_golang and client_python export), read from `/proc` at scrape time.
//!
//! Hand-read rather than through the `procfs` crate: five numbers from four files, and
//! the parsers below are pure and tested. Like Prometheus' own procfs package, clock ticks
//! are taken as 100 a second (Linux fixes `USER_HZ` at 100 for `/proc` on every
//! architecture), which avoids an `unsafe` `sysconf` call.

use std::fmt::Write;

use spaced_net::metrics;

/// `USER_HZ`: the unit of the times in `/proc/<pid>/stat`.
const TICKS_PER_SECOND: f64 = 100.0;

/// The version and commit this binary was built from (the commit by `build.rs`).
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `git rev-parse --short HEAD` at build time, or `unknown` outside a checkout.
pub(crate) const COMMIT: &str = env!("SPACED_COMMIT");

/// Appends `spaced_build_info` and whatever `process_*` metrics `/proc` gives.
pub(crate) fn render(out: &mut String) {
    metrics::header(
        out,
        "spaced_build_info",
        "gauge",
        "The version and commit spaced was built from; always 1.",
    );
    let _ = writeln!(
        out,
        "spaced_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1"
    );
    // A missing /proc (a sandbox) leaves the series out rather than failing the scrape.
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s));
    if let Some(stat) = stat {
        metrics::header(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let cpu = (stat.utime + stat.stime) as f64 / TICKS_PER_SECOND;
        let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_btime(&s));
        if let Some(boot) = boot {
            metrics::header(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
            );
            let start = boot as f64 + stat.starttime as f64 / TICKS_PER_SECOND;
            let _ = writeln!(out, "process_start_time_seconds {start}");
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kib) = status_kib(&status, "VmRSS:") {
        metrics::header(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        metrics::sample(out, "process_resident_memory_bytes", "", kib * 1024);
    }
    if let Some(kib) = status_kib(&status, "VmSize:") {
        metrics::header(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        metrics::sample(out, "process_virtual_memory_bytes", "", kib * 1024);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself shows up as one entry; do not count it.
        let open = dir.count().saturating_sub(1);
        metrics::header(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        metrics::sample(out, "process_open_fds", "", open);
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(max) = max_open_files(&limits) {
        metrics::header(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        metrics::sample(out, "process_max_fds", "", max);
    }
}

/// The fields of `/proc/<pid>/stat` we report.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0; utime is field 14, stime 15,
    // starttime 22 (proc(5)).
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS:    1234 kB`).
fn status_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_ascii_whitespace().next()?.parse().ok()
}

/// The soft `Max open files` of `/proc/<pid>/limits` (`unlimited` is left out).
fn max_open_files(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (spa ce) d) S 1 4242 4242 0 -1 4194560 1580 0 0 0 \
                    37 12 0 0 20 0 9 0 123456 1000 500 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                utime: 37,
                stime: 12,
                starttime: 123_456
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        let status = "Name:\tspaced\nVmSize:\t  20480 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(8192));
        assert_eq!(status_kib(status, "VmSize:"), Some(20480));
        assert_eq!(status_kib(status, "VmHWM:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }
}
