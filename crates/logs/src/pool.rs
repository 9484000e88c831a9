//! Records are reused instead of allocated per line. A sink done with a line hands it back
//! ([`recycle`]); when it was the last sink holding it, the record goes on a free list that
//! [`record`] takes from. A line then costs no allocation on the hot path and no free on
//! the sinks' side (the allocator's cross-thread free is the costlier half).
//!
//! Two sinks finishing the same line at the same instant may both see the other's
//! reference and both let go: the record is then freed, not reused. Nothing is lost but
//! one reuse.

use std::sync::{Arc, LazyLock};

use crossbeam_queue::ArrayQueue;

use crate::record::{Kind, Level, Record, Source};

/// Records kept: more than the largest batch a sink hands back at once (a logplex batch
/// is 500 lines), so a batch's records all come back.
const KEPT: usize = 1024;

/// A record whose buffer grew past this is freed, not kept: a burst of long lines must
/// not pin memory. Router lines are 200–300 bytes.
const KEPT_BYTES: usize = 1024;

static FREE: LazyLock<ArrayQueue<Arc<Record>>> = LazyLock::new(|| ArrayQueue::new(KEPT));

/// A record holding this line: a reused one when there is one.
pub(crate) fn record(
    level: Level,
    source: Source,
    kind: Kind,
    app: &str,
    text: &str,
) -> Arc<Record> {
    if let Some(mut r) = FREE.pop()
        && let Some(rec) = Arc::get_mut(&mut r)
    {
        rec.set(level, source, kind, app, text);
        return r;
    }
    Arc::new(Record::new(level, source, kind, app, text))
}

/// A sink is done with `r`: kept for reuse when no other sink holds it.
pub(crate) fn recycle(r: Arc<Record>) {
    // A load, not `get_mut`'s compare-and-swap: records never have weak references, so
    // a count of one means no one else holds it or can clone it. [`record`] checks again.
    if Arc::strong_count(&r) == 1 && r.capacity() <= KEPT_BYTES {
        // A full free list: this one is freed.
        let _ = FREE.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record on the free list, taken off it (and `put_back` afterwards): other
    /// tests of the crate may push to it meanwhile, never take from it.
    fn take_all() -> Vec<Arc<Record>> {
        std::iter::from_fn(|| FREE.pop()).collect()
    }

    fn put_back(v: Vec<Arc<Record>>) {
        for r in v {
            let _ = FREE.push(r);
        }
    }

    // One test, not two: two would race on the one free list.
    #[test]
    fn the_last_holder_gives_it_back_and_long_lines_are_not_kept() {
        let r = record(
            Level::Info,
            Source::Router,
            Kind::Logfmt,
            "api",
            "at=info a=1",
        );
        let other = r.clone();
        let ptr = Arc::as_ptr(&r);
        // Still held by another sink: not kept.
        recycle(r);
        // The last holder: kept.
        recycle(other);
        let all = take_all();
        assert!(
            all.iter().any(|t| Arc::as_ptr(t) == ptr),
            "the record was not kept"
        );
        put_back(all);
        // Reused: the new line's fields, nothing of the old one.
        let again = record(Level::Error, Source::Egress, Kind::Text, "", "x");
        assert_eq!(
            (again.app(), again.text(), again.level, again.source),
            ("", "x", Level::Error, Source::Egress)
        );

        let long = "x".repeat(KEPT_BYTES * 2);
        recycle(record(Level::Info, Source::Spaced, Kind::Text, "", &long));
        let all = take_all();
        assert!(
            all.iter().all(|t| t.capacity() <= KEPT_BYTES),
            "a long line was kept"
        );
        put_back(all);
    }
}
