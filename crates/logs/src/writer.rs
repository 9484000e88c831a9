//! The bridge from `tracing`: a `MakeWriter` for `tracing_subscriber::fmt` whose writer
//! hands each formatted event to the hub as one line (fmt writes an event in one call).

use std::io;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

use crate::record::{Kind, Level, Source};

/// Give this to `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeHubWriter;

/// One event's writer.
#[derive(Debug)]
pub struct HubWriter {
    level: Level,
    source: Source,
    /// Router and egress events are bare logfmt lines.
    kind: Kind,
}

impl<'a> MakeWriter<'a> for MakeHubWriter {
    type Writer = HubWriter;

    fn make_writer(&'a self) -> HubWriter {
        HubWriter {
            level: Level::Info,
            source: Source::Spaced,
            kind: Kind::Text,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> HubWriter {
        let target = meta.target();
        let (source, kind) = match target {
            "router" => (Source::Router, Kind::Logfmt),
            "egress" => (Source::Egress, Kind::Logfmt),
            t if t.starts_with("spaced_resolver") => (Source::Resolver, Kind::Text),
            t if t.starts_with("spaced_router") => (Source::Router, Kind::Text),
            t if t.starts_with("spaced_egress") => (Source::Egress, Kind::Text),
            _ => (Source::Spaced, Kind::Text),
        };
        HubWriter {
            level: Level::from_tracing(*meta.level()),
            source,
            kind,
        }
    }
}

impl io::Write for HubWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            // Egress lines name their app (`at=info app=api …`): its drains get them.
            let app = match self.kind {
                Kind::Logfmt => field(line, "app"),
                Kind::Text => "",
            };
            if !crate::installed::emit(self.level, self.source, self.kind, app, line) {
                // No hub (a library test): keep the line visible.
                eprintln!("{line}");
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bare value of `key=` in a logfmt line (`""` when absent or quoted).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .filter(|v| !v.starts_with('"'))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    #[test]
    fn app_field() {
        assert_eq!(super::field("at=info app=api client=1", "app"), "api");
        assert_eq!(super::field("at=info app= client=1", "app"), "");
        assert_eq!(super::field("at=info happ=x", "app"), "");
    }
}
