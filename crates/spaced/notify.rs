//! The sd_notify protocol (`sd_notify(3)`): one datagram of `KEY=VALUE` lines to the socket
//! `NOTIFY_SOCKET` names, a path or an abstract name (`@…`). Thirty lines of protocol are
//! simpler to audit than a dependency, and the same sender serves the readiness report an
//! upgraded process owes its parent (`SPACED_UPGRADE_NOTIFY`, see `upgrade.rs`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::debug;

/// Where the upgraded process reports readiness to the process that started it.
pub(crate) const UPGRADE_ENV: &str = "SPACED_UPGRADE_NOTIFY";

/// Sends notifications; does nothing when no socket is named (not under systemd).
#[derive(Debug, Default)]
pub struct Notifier {
    targets: Vec<Target>,
}

#[derive(Debug)]
struct Target {
    /// Where to, as named in the environment (for logs).
    name: String,
    addr: SocketAddr,
    socket: UnixDatagram,
    /// The upgrading parent's socket wants one `READY=1` and is gone soon after: set once
    /// that is sent, so later messages (watchdog pings) do not go to a closed socket.
    done: AtomicBool,
    /// Whether this is the parent's socket (see `done`).
    parent: bool,
}

impl Notifier {
    /// Targets from `NOTIFY_SOCKET` (systemd) and `SPACED_UPGRADE_NOTIFY` (an upgrading
    /// parent). A name that cannot be used is logged and skipped: supervision is not a
    /// reason to refuse to serve.
    pub fn from_env() -> Self {
        let mut targets = Vec::new();
        for var in ["NOTIFY_SOCKET", UPGRADE_ENV] {
            let Ok(name) = std::env::var(var) else {
                continue;
            };
            match target(&name) {
                Ok(mut t) => {
                    t.parent = var == UPGRADE_ENV;
                    targets.push(t);
                }
                Err(e) => {
                    tracing::warn!(var, socket = %name, error = %e, "cannot use the notify socket")
                }
            }
        }
        Self { targets }
    }

    /// Whether the process was started by an upgrading spaced (it then reports `MAINPID=`).
    pub fn is_upgrade() -> bool {
        std::env::var_os(UPGRADE_ENV).is_some()
    }

    /// Sends `state` (newline-separated assignments) to every target. Never blocks: the
    /// sockets are non-blocking, and a full or missing receiver costs one debug line.
    pub fn send(&self, state: &str) {
        for t in &self.targets {
            if t.done.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(e) = t.socket.send_to_addr(state.as_bytes(), &t.addr) {
                debug!(socket = %t.name, error = %e, "sd_notify send failed");
            }
            if t.parent && state.lines().any(|l| l == "READY=1") {
                t.done.store(true, Ordering::Relaxed);
            }
        }
    }
}

fn target(name: &str) -> io::Result<Target> {
    let addr = if let Some(abstract_name) = name.strip_prefix('@') {
        SocketAddr::from_abstract_name(abstract_name.as_bytes())?
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path or @abstract name",
        ));
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok(Target {
        name: name.to_string(),
        addr,
        socket,
        done: AtomicBool::new(false),
        parent: false,
    })
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set for this process
/// (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants it.
pub fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0) / 1000
}

/// One line of `STATUS=`: no newline may end the assignment early.
pub fn status_line(text: &str) -> String {
    let one: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect();
    format!("STATUS={one}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("spaced-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let path_rx = UnixDatagram::bind(&dir).unwrap();
        let abs = format!("spaced-notify-test-{}", std::process::id());
        let abs_rx =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(abs.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier {
            targets: vec![
                target(dir.to_str().unwrap()).unwrap(),
                target(&format!("@{abs}")).unwrap(),
            ],
        };
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let got = path_rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"READY=1");
        let got = abs_rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"READY=1");
        assert!(target("relative").is_err());
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(status_line("a\nb"), "STATUS=a b");
    }
}
