//! `[daemon]`: the process's stop timings and the fleet cache path (OPERATIONS.md "The
//! process").

use crate::policy::Daemon;
use crate::raw::RawDaemon;

use super::Cx;

impl Cx<'_> {
    pub(super) fn daemon(&mut self, raw: Option<RawDaemon>) -> Daemon {
        let mut daemon = Daemon::default();
        let Some(raw) = raw else { return daemon };
        // Zero is meaningful for both: no delay, or no wait for in-flight work.
        if let Some(d) = raw
            .shutdown_delay
            .as_ref()
            .and_then(|d| self.duration(d, false))
        {
            daemon.shutdown_delay = d;
        }
        if let Some(d) = raw
            .drain_timeout
            .as_ref()
            .and_then(|d| self.duration(d, false))
        {
            daemon.drain_timeout = d;
        }
        if let Some(cache) = &raw.cache {
            let text = cache.get_ref();
            if text.bytes().any(|b| b.is_ascii_control()) {
                self.push(
                    cache.span(),
                    crate::error::ErrorKind::Invalid {
                        key: "daemon.cache",
                        value: text.clone(),
                        expected: "a file path without control characters",
                    },
                );
            } else if !text.is_empty() {
                daemon.cache = Some(self.source.dir.join(text));
            }
        }
        daemon
    }
}
