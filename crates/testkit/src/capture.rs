//! Log capture: the events of one tracing target (a component's log lines, whose message
//! is the whole line) with their level, for tests that check what was logged.

use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// The lines captured so far; cheap to clone (one shared list).
#[derive(Clone)]
pub struct Capture {
    target: &'static str,
    lines: Arc<Mutex<Vec<(Level, String)>>>,
}

impl Capture {
    /// Installs a fresh capture of `target`'s events as this thread's subscriber until the
    /// guard drops. Use a current-thread runtime, so every task runs under it.
    pub fn install(target: &'static str) -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self {
            target,
            lines: Arc::default(),
        };
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
        (capture, guard)
    }

    /// The lines so far, oldest first.
    pub fn lines(&self) -> Vec<(Level, String)> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == self.target {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((*event.metadata().level(), m.0));
        }
    }
}

/// Installs the test-writer subscriber once per binary (`RUST_LOG` or `default` as the
/// filter), so a failing test shows its logs and a passing one hides them.
pub fn init_tracing(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .try_init();
}
