//! One drain: its queue, its task, its counters. The task takes lines off the queue in
//! batches and hands them to its transport ([`drain::stream`], [`drain::udp`],
//! [`drain::http`]); a batch that fails is kept and retried, after exponential backoff with
//! jitter, so lines arrive in order; meanwhile the queue drops its oldest lines.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spaced_config::DrainScheme;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pool;
use crate::queue::{LineQueue, Wake};
use crate::record::Record;

mod error;
mod http;
mod stream;
mod tls;
mod udp;

use error::SendError;

/// On a clean stop, queued lines get this long to leave (OPERATIONS.md).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often a lingering batch looks for more lines.
const LINGER_STEP: Duration = Duration::from_millis(10);

/// What makes two drains the same across a reload: scope, URL, `ca`, and the space name
/// (the syslog HOSTNAME).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DrainKey {
    pub(crate) scope: String,
    pub(crate) drain: spaced_config::Drain,
    pub(crate) space: String,
}

/// A connection a drain sends batches over.
pub(crate) enum Transport {
    Stream(stream::Conn),
    Udp(udp::Conn),
    Http(http::Conn),
}

/// Exponential backoff: 100 ms doubling to 30 s, each wait jittered to 50–100 %.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        d.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

#[derive(Debug)]
struct Status {
    state: &'static str,
    last_error: Option<String>,
}

/// A running drain, shared by the hub (producers) and its task.
#[derive(Debug)]
pub(crate) struct Drain {
    pub(crate) key: DrainKey,
    /// The redacted URL: the only form that is ever shown.
    pub(crate) label: String,
    pub(crate) queue: Arc<LineQueue>,
    notify: Arc<Notify>,
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped_stop: AtomicU64,
    /// Lines taken off the queue but not yet sent (the batch in hand).
    in_hand: AtomicU64,
    status: Mutex<Status>,
    stop: CancellationToken,
    finished: AtomicBool,
}

impl Drain {
    /// Starts a drain's task (`None` outside a tokio runtime: it is logged).
    pub(crate) fn spawn(key: DrainKey, buffer: usize, tasks: &TaskTracker) -> Option<Arc<Self>> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(drain = %key.drain.url, "log drain not started: no runtime");
            return None;
        };
        let notify = Arc::new(Notify::new());
        let d = Arc::new(Self {
            label: key.drain.url.to_string(),
            key,
            queue: Arc::new(LineQueue::new(buffer, Wake::Task(notify.clone()))),
            notify,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped_stop: AtomicU64::new(0),
            in_hand: AtomicU64::new(0),
            status: Mutex::new(Status {
                state: "connecting",
                last_error: None,
            }),
            stop: CancellationToken::new(),
            finished: AtomicBool::new(false),
        });
        let task = d.clone();
        tasks.spawn_on(async move { task.run().await }, &rt);
        Some(d)
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.queue.overflowed.load(Ordering::Relaxed) + self.dropped_stop.load(Ordering::Relaxed)
    }

    pub(crate) fn queued(&self) -> u64 {
        self.queue.len() as u64 + self.in_hand.load(Ordering::Relaxed)
    }

    pub(crate) fn label_escaped(&self) -> String {
        self.label.replace('\\', "\\\\").replace('"', "\\\"")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "url": self.label,
            "scope": self.key.scope,
            "state": st.state,
            "queued": self.queued(),
            "sent": self.sent.load(Ordering::Relaxed),
            "dropped": self.dropped(),
            "last_error": st.last_error,
        })
    }

    fn set_state(&self, state: &'static str, error: Option<String>) {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        st.state = state;
        if error.is_some() {
            st.last_error = error;
        }
    }

    /// Lines per batch and how long a partial batch may wait (logplex: 500 / 250 ms).
    fn batching(&self) -> (usize, Duration) {
        match self.key.drain.url.scheme {
            DrainScheme::Http | DrainScheme::Https => (500, Duration::from_millis(250)),
            DrainScheme::OtlpHttp | DrainScheme::OtlpHttps => (500, Duration::from_millis(250)),
            // Syslog: no batch size in the protocol; a few ms gather what arrives meanwhile.
            _ => (256, Duration::from_millis(5)),
        }
    }

    async fn run(self: Arc<Self>) {
        let (max, linger) = self.batching();
        let mut batch: VecDeque<Arc<Record>> = VecDeque::with_capacity(max);
        let mut conn: Option<Transport> = None;
        let mut backoff = Backoff(Backoff::FIRST);
        let mut deadline: Option<tokio::time::Instant> = None;
        // Logplex-Frame-Id of the batch in hand: the same on every retry of it.
        let mut frame_id = String::new();
        loop {
            if deadline.is_none() && self.stop.is_cancelled() {
                deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
            }
            if let Some(d) = deadline
                && (tokio::time::Instant::now() >= d || (batch.is_empty() && self.queue.is_empty()))
            {
                break;
            }
            if batch.is_empty() && !self.fill(&mut batch, max, linger, deadline).await {
                continue;
            }
            self.in_hand.store(batch.len() as u64, Ordering::Relaxed);
            if frame_id.is_empty() {
                frame_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            }
            let attempt = async {
                match conn.as_mut() {
                    Some(c) => self.send(c, &mut batch, &frame_id).await,
                    None => match self.connect().await {
                        Ok(mut c) => {
                            let r = self.send(&mut c, &mut batch, &frame_id).await;
                            conn = Some(c);
                            r
                        }
                        Err(e) => Err(e),
                    },
                }
            };
            // A stop gives a send in progress the grace, not its whole timeout.
            let result = tokio::select! {
                r = attempt => r,
                () = async {
                    self.stop.cancelled().await;
                    tokio::time::sleep_until(deadline.unwrap_or_else(|| tokio::time::Instant::now() + STOP_GRACE)).await;
                } => Err(SendError::Timeout),
            };
            match result {
                Ok(n) => {
                    frame_id.clear();
                    self.sent.fetch_add(n as u64, Ordering::Relaxed);
                    self.in_hand.store(0, Ordering::Relaxed);
                    backoff.reset();
                    self.set_state("connected", None);
                }
                Err(e) => {
                    conn = None;
                    self.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::warn!(drain = %self.label, error = %e, queued = self.queued(), "log drain send failed; retrying");
                    self.set_state("retrying", Some(e.to_string()));
                    let wait = backoff.next();
                    let sleep = tokio::time::sleep(wait);
                    match deadline {
                        Some(d) => {
                            let _ = tokio::time::timeout_at(d, sleep).await;
                        }
                        None => {
                            tokio::select! {
                                () = sleep => {}
                                () = self.stop.cancelled() => {}
                            }
                        }
                    }
                }
            }
        }
        let mut left = batch.len() as u64;
        while self.queue.pop().is_some() {
            left += 1;
        }
        self.dropped_stop.fetch_add(left, Ordering::Relaxed);
        self.in_hand.store(0, Ordering::Relaxed);
        self.set_state("stopped", None);
        self.finished.store(true, Ordering::Release);
    }

    /// Takes up to `max` lines, waiting for the first and then up to `linger` for more.
    /// Returns false when there is nothing to send yet.
    async fn fill(
        &self,
        batch: &mut VecDeque<Arc<Record>>,
        max: usize,
        linger: Duration,
        deadline: Option<tokio::time::Instant>,
    ) -> bool {
        self.take(batch, max);
        if batch.is_empty() {
            if deadline.is_some() {
                return false;
            }
            if self.queue.prepare_sleep() {
                tokio::select! {
                    () = self.notify.notified() => {}
                    () = self.stop.cancelled() => {}
                    // A wake-up lost to a race costs at most this.
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            self.take(batch, max);
            if batch.is_empty() {
                return false;
            }
        }
        // Wait for more without asking to be woken (a wake-up is a cost on the producer's
        // side): poll in small steps until the batch is full or `linger` is over.
        if batch.len() < max && !linger.is_zero() && deadline.is_none() {
            let until = tokio::time::Instant::now() + linger;
            while batch.len() < max && !self.stop.is_cancelled() {
                let now = tokio::time::Instant::now();
                if now >= until {
                    break;
                }
                tokio::time::sleep((until - now).min(LINGER_STEP)).await;
                self.take(batch, max);
            }
        }
        true
    }

    fn take(&self, batch: &mut VecDeque<Arc<Record>>, max: usize) {
        while batch.len() < max {
            match self.queue.pop() {
                Some(r) => batch.push_back(r),
                None => break,
            }
        }
    }

    async fn connect(&self) -> Result<Transport, SendError> {
        let url = &self.key.drain.url;
        let fut = async {
            Ok(match url.scheme {
                DrainScheme::Syslog | DrainScheme::SyslogTls => {
                    Transport::Stream(stream::Conn::connect(&self.key.drain).await?)
                }
                DrainScheme::SyslogUdp => Transport::Udp(udp::Conn::connect(url).await?),
                _ => Transport::Http(http::Conn::connect(&self.key.drain).await?),
            })
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| SendError::Timeout)?
    }

    /// Sends the whole batch; on success it is emptied and its line count returned.
    async fn send(
        &self,
        conn: &mut Transport,
        batch: &mut VecDeque<Arc<Record>>,
        frame_id: &str,
    ) -> Result<usize, SendError> {
        let space = &self.key.space;
        let fut = async {
            match conn {
                Transport::Stream(c) => c.send(batch.make_contiguous(), space).await,
                Transport::Udp(c) => c.send(batch.make_contiguous(), space).await,
                Transport::Http(c) => {
                    c.send(&self.key.drain, batch.make_contiguous(), space, frame_id)
                        .await
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| SendError::Timeout)??;
        let n = batch.len();
        batch.drain(..).for_each(pool::recycle);
        Ok(n)
    }
}
