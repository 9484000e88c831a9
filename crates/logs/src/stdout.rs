//! The stdout writer: its own thread, so a reader that stops reading the pipe blocks this
//! thread alone, never a request. It takes every queued line at once and writes them in one
//! `write` call; when it falls behind, the queue drops the oldest lines.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spaced_config::LogFormat;

use crate::format::{json, rfc3339};
use crate::hub::Hub;
use crate::pool;
use crate::queue::LineQueue;

/// At most this many bytes go into one write: a bound on the batch's memory.
const MAX_BATCH: usize = 256 * 1024;

/// After a write, the writer waits this long for more lines before the next one, without
/// asking to be woken: under load a write carries many lines, and no request pays for a
/// wake-up (a futex call) of a writer that has just gone to sleep.
const LINGER: Duration = Duration::from_millis(2);

/// Whether stdout is the systemd journal: `JOURNAL_STREAM` is `DEV:INODE` of the stream
/// systemd connected, and the journal stamps lines itself.
pub(crate) fn is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd)
            .metadata()
            .is_ok_and(|m| m.dev() == dev && m.ino() == ino),
        Err(_) => false,
    }
}

/// Starts the writer thread on a duplicate of fd 1 (bypassing `Stdout`'s lock and line
/// buffering, which only this thread would take anyway).
pub(crate) fn spawn(hub: Arc<Hub>) -> std::io::Result<std::thread::Thread> {
    let out = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let journal = is_journal();
    let handle = std::thread::Builder::new()
        .name("spaced-stdout".into())
        .spawn(move || run(&hub, out, journal))?;
    Ok(handle.thread().clone())
}

fn run(hub: &Hub, mut out: File, journal: bool) {
    // Lines are encoded straight into the batch: one copy from the record, none after.
    let mut buf = String::with_capacity(64 * 1024);
    let mut current: Option<Arc<LineQueue>> = None;
    loop {
        let routes = hub.routes.load();
        let settings = hub.settings.load();
        // A reload that resized the queue: finish the old one first, in order.
        let queue = match (&current, &routes.stdout) {
            (Some(old), Some(new)) if !Arc::ptr_eq(old, new) && !old.is_empty() => old.clone(),
            (Some(old), None) if !old.is_empty() => old.clone(),
            (_, Some(new)) => {
                current = Some(new.clone());
                new.clone()
            }
            (_, None) => match &current {
                Some(c) => c.clone(),
                None => {
                    std::thread::park_timeout(Duration::from_millis(200));
                    continue;
                }
            },
        };
        drop(routes);
        let mut n = 0u64;
        while buf.len() < MAX_BATCH {
            let Some(r) = queue.pop() else { break };
            match settings.format {
                LogFormat::Json => json(&r, &mut buf),
                LogFormat::Logfmt => {
                    if settings.timestamps && !journal {
                        rfc3339(r.time, &mut buf);
                        buf.push(' ');
                    }
                    buf.push_str(r.text());
                }
            }
            buf.push('\n');
            pool::recycle(r);
            n += 1;
        }
        if n == 0 {
            if queue.prepare_sleep() {
                std::thread::park_timeout(Duration::from_secs(1));
            }
            continue;
        }
        match out.write_all(buf.as_bytes()) {
            Ok(()) => {
                hub.stdout_written.fetch_add(n, Ordering::Relaxed);
            }
            Err(_) => {
                // Nobody to tell but the counter: stdout is where we would say it.
                hub.stdout_write_errors.fetch_add(n, Ordering::Relaxed);
            }
        }
        buf.clear();
        if buf.capacity() > 4 * MAX_BATCH {
            buf.shrink_to(64 * 1024);
        }
        if queue.len() < 64 {
            std::thread::sleep(LINGER);
        }
    }
}
