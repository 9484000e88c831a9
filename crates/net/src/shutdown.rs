//! One cancellation token plus one task tracker per daemon; components and listeners get
//! child tokens so one of them can be stopped alone.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// A shutdown handle: cancelling it tells every task holding it (or a child) to stop taking
/// new work; the tracker lets the daemon wait until in-flight work has finished.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled by the daemon on SIGTERM, or by a parent when a listener is removed.
    token: CancellationToken,
    /// Every connection and background task is spawned here, so `drain` can wait for them.
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh root handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle whose token is cancelled with this one (or alone), sharing the tracker.
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
            tracker: self.tracker.clone(),
        }
    }

    /// Stops this handle and its children.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether [`Shutdown::cancel`] was called here or on a parent.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once cancelled. Cancel-safe, for `select!`.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The token, for APIs that want one.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Spawns a tracked task.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Cancels, then waits up to `grace` for every tracked task. Returns whether all ended.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}
