//! A sink's bounded queue: lock-free, a push never waits, and a full queue drops its
//! oldest line (the newest say more about the present) and counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::pool;
use crate::record::Record;

/// Who drains the queue and how to wake them.
#[derive(Debug)]
pub(crate) enum Wake {
    /// The stdout writer thread.
    Thread(Thread),
    /// A drain task.
    Task(Arc<Notify>),
}

/// One sink's queue.
#[derive(Debug)]
pub(crate) struct LineQueue {
    q: ArrayQueue<Arc<Record>>,
    /// Lines dropped because the queue was full.
    pub(crate) overflowed: AtomicU64,
    /// Set by the consumer before it sleeps; a producer that clears it wakes it. While the
    /// consumer is busy, pushing costs no system call.
    asleep: AtomicBool,
    wake: Wake,
}

impl LineQueue {
    pub(crate) fn new(capacity: usize, wake: Wake) -> Self {
        Self {
            q: ArrayQueue::new(capacity.max(1)),
            overflowed: AtomicU64::new(0),
            asleep: AtomicBool::new(false),
            wake,
        }
    }

    /// Queues a line, dropping the oldest when full. Never blocks.
    pub(crate) fn push(&self, r: Arc<Record>) {
        if let Some(old) = self.q.force_push(r) {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            pool::recycle(old);
        }
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            match &self.wake {
                Wake::Thread(t) => t.unpark(),
                Wake::Task(n) => n.notify_one(),
            }
        }
    }

    pub(crate) fn pop(&self) -> Option<Arc<Record>> {
        self.q.pop()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.q.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// The consumer is about to sleep: returns false when a line arrived meanwhile (then it
    /// must not sleep). A push after this wakes it.
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.asleep.store(true, Ordering::SeqCst);
        if self.q.is_empty() {
            true
        } else {
            self.asleep.store(false, Ordering::SeqCst);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Level, Source};

    fn rec(t: &str) -> Arc<Record> {
        Arc::new(Record::new(Level::Info, Source::Router, Kind::Text, "", t))
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = LineQueue::new(2, Wake::Task(Arc::new(Notify::new())));
        for t in ["a", "b", "c", "d"] {
            q.push(rec(t));
        }
        assert_eq!(q.overflowed.load(Ordering::Relaxed), 2);
        assert_eq!(q.pop().unwrap().text(), "c");
        assert_eq!(q.pop().unwrap().text(), "d");
        assert!(q.pop().is_none());
    }
}
