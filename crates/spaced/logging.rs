//! Log output: ordinary `tracing` lines, except the per-request router lines and per-tunnel
//! egress lines, which are printed bare (`at=info method=GET …`) as the spec's log format
//! says, so operators' existing Heroku log tooling parses them.
//!
//! Every line goes through the `spaced-logs` hub: stdout is written by its own thread and
//! drains by their own tasks, so no log write ever blocks a request. The hub stamps stdout
//! lines itself (`[logging] timestamps`), hence no time in the `tracing` format.

use std::fmt;
use std::sync::Arc;

use spaced_config::Store;
use spaced_net::Shutdown;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Targets whose event message is the whole, already formatted, log line.
const BARE_TARGETS: [&str; 2] = ["router", "egress"];

/// Installs the log hub and the global subscriber: `RUST_LOG` filter (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if let Err(e) = spaced_logs::install() {
        eprintln!("spaced: cannot start the stdout log writer: {e}");
    }
    // Plain text: lines go to files, pipes and drains, not only to a terminal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(spaced_logs::MakeHubWriter)
        .event_format(SpacedFormat::default())
        .fmt_fields(DefaultFields::new())
        .try_init();
}

/// Applies the policy's `[logging]` and drains now and after every reload.
pub(crate) fn attach(store: &Arc<Store>, shutdown: &Shutdown) {
    let Some(hub) = spaced_logs::hub() else {
        return;
    };
    hub.apply(&store.load());
    let mut versions = store.subscribe();
    let store = store.clone();
    let token = shutdown.token().clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = versions.changed() => {
                    if changed.is_err() { return; }
                    hub.apply(&store.load());
                }
                () = token.cancelled() => return,
            }
        }
    });
}

/// A clean stop: queued lines get up to [`spaced_logs::STOP_GRACE`] to leave.
pub(crate) async fn flush() {
    if let Some(hub) = spaced_logs::hub() {
        hub.shutdown(spaced_logs::STOP_GRACE).await;
    }
}

/// The default format without time (the hub stamps lines), with bare lines for the
/// `router` and `egress` targets.
pub struct SpacedFormat {
    inner: Format<Full, ()>,
}

impl Default for SpacedFormat {
    fn default() -> Self {
        Self {
            inner: Format::default().without_time(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for SpacedFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if BARE_TARGETS.contains(&event.metadata().target()) {
            let mut visitor = Message {
                writer: &mut writer,
                result: Ok(()),
            };
            event.record(&mut visitor);
            visitor.result?;
            return writeln!(writer);
        }
        self.inner.format_event(ctx, writer, event)
    }
}

struct Message<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visit for Message<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.result = write!(self.writer, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.result = self.writer.write_str(value);
        }
    }
}
