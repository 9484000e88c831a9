//! Log capture: the events of one tracing target (a component's log lines, whose message
//! is the whole line) with their level, for tests that check what was logged.

use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

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
        // The process-wide subscriber first: without it, a callsite first hit by another
        // test while no capture is installed is cached as "never" and this capture misses
        // its event (tracing caches interest per callsite, across threads).
        init_tracing(&format!("{target}=info,spaced_{target}=debug"));
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

/// Installs the process-wide subscriber once per binary: the test writer (`RUST_LOG` or
/// `default` as the filter), so a failing test shows its logs and a passing one hides
/// them. It reports every callsite as "sometimes" interesting, so tracing asks the
/// current thread's subscriber at each event and a [`Capture`] installed later on a test's
/// thread sees events whose callsite other tests hit first.
pub fn init_tracing(default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(Interested)
        .try_init();
}

/// Says "sometimes" for every callsite, and lets every event through to the layers below
/// (the fmt layer filters its own).
struct Interested;

impl<S: Subscriber> Layer<S> for Interested {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
}
