//! Log output: ordinary `tracing` lines, except the per-request router lines and per-tunnel
//! egress lines, which are printed bare (`at=info method=GET …`) as the spec's log format
//! says, so operators' existing Heroku log tooling parses them.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Targets whose event message is the whole, already formatted, log line.
const BARE_TARGETS: [&str; 2] = ["router", "egress"];

/// Installs the global subscriber: stdout, `RUST_LOG` filter (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; files and log shippers get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .event_format(SpacedFormat::default())
        .fmt_fields(DefaultFields::new())
        .try_init();
}

/// The default format, with bare lines for the `router` and `egress` targets.
#[derive(Default)]
pub struct SpacedFormat {
    inner: Format<Full>,
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
