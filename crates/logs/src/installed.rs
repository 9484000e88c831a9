//! The process's one installed hub: [`install`] sets it up, [`emit`] queues a line on it.
//! Kept out of `lib.rs` so that `writer` can emit without importing the crate root.

use std::sync::{Arc, OnceLock};

use crate::hub::Hub;
use crate::record::{Kind, Level, Source};
use crate::stdout;

static HUB: OnceLock<Arc<Hub>> = OnceLock::new();

/// Installs the process's hub and starts its stdout writer (defaults: logfmt, timestamps,
/// stdout on) until [`Hub::apply`] reads a policy. Later calls return the same hub.
///
/// # Errors
/// The stdout writer thread could not start (then nothing was installed).
pub fn install() -> std::io::Result<Arc<Hub>> {
    if let Some(h) = HUB.get() {
        return Ok(h.clone());
    }
    let hub = Arc::new(Hub::new());
    let thread = stdout::spawn(hub.clone())?;
    hub.start_stdout(thread);
    Ok(HUB.get_or_init(|| hub).clone())
}

/// The installed hub, if any.
pub fn hub() -> Option<&'static Arc<Hub>> {
    HUB.get()
}

/// Queues a line for stdout and the drains of its scope (`app` `""`: no app). Returns
/// false when no hub is installed (library tests): the caller then logs through `tracing`.
#[inline]
pub fn emit(level: Level, source: Source, kind: Kind, app: &str, text: &str) -> bool {
    match HUB.get() {
        Some(h) => {
            h.emit(level, source, kind, app, text);
            true
        }
        None => false,
    }
}
