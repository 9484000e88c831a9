//! The sd_notify protocol (`sd_notify(3)`): one datagram of `KEY=VALUE` lines to the socket
//! `NOTIFY_SOCKET` names, a path or an abstract name (`@…`). Thirty lines of protocol are
//! simpler to audit than a dependency. The same sender writes the readiness report an
//! upgraded process owes its parent to a pipe only the two of them hold
//! (`SPACED_UPGRADE_FD`, see `upgrade.rs`): an abstract socket's name shows in
//! `/proc/net/unix`, and any local process could send it a false `READY=1`.

use std::fs::File;
use std::io::{self, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::debug;

/// The descriptor of the pipe to the upgrading parent, in the new process.
pub(crate) const UPGRADE_ENV: &str = "SPACED_UPGRADE_FD";

/// Sends notifications; does nothing when no socket is named (not under systemd).
#[derive(Debug, Default)]
pub struct Notifier {
    targets: Vec<Target>,
}

#[derive(Debug)]
struct Target {
    /// Where to, as named in the environment (for logs).
    name: String,
    to: To,
    /// The upgrading parent wants one `READY=1` and is gone soon after: set once that is
    /// sent, so later messages (watchdog pings) do not go to a closed pipe.
    done: AtomicBool,
}

#[derive(Debug)]
enum To {
    /// systemd's datagram socket.
    Socket {
        addr: SocketAddr,
        socket: UnixDatagram,
    },
    /// The pipe to the upgrading parent: one message a line.
    Parent(File),
}

impl Notifier {
    /// Targets from `NOTIFY_SOCKET` (systemd) and `SPACED_UPGRADE_FD` (an upgrading
    /// parent). One that cannot be used is logged and skipped: supervision is not a
    /// reason to refuse to serve.
    pub fn from_env() -> Self {
        let mut targets = Vec::new();
        if let Ok(name) = std::env::var("NOTIFY_SOCKET") {
            match target(&name) {
                Ok(t) => targets.push(t),
                Err(e) => {
                    tracing::warn!(socket = %name, error = %e, "cannot use the notify socket")
                }
            }
        }
        if let Ok(fd) = std::env::var(UPGRADE_ENV) {
            match parent(&fd) {
                Ok(t) => targets.push(t),
                Err(e) => {
                    tracing::warn!(fd, error = %e, "cannot report readiness to the upgrading process")
                }
            }
        }
        Self { targets }
    }

    /// Whether the process was started by an upgrading spaced (it then reports `MAINPID=`).
    pub fn is_upgrade() -> bool {
        std::env::var_os(UPGRADE_ENV).is_some()
    }

    /// Sends `state` (newline-separated assignments) to every target. Never blocks for
    /// long: the socket is non-blocking (a full or missing receiver costs one debug line),
    /// and the parent's pipe gets a few short lines before `READY=1`, far below its buffer.
    pub fn send(&self, state: &str) {
        for t in &self.targets {
            if t.done.load(Ordering::Relaxed) {
                continue;
            }
            let sent = match &t.to {
                To::Socket { addr, socket } => socket.send_to_addr(state.as_bytes(), addr),
                To::Parent(pipe) => {
                    let ready = state.lines().any(|l| l == "READY=1");
                    if ready {
                        t.done.store(true, Ordering::Relaxed);
                    }
                    (&*pipe)
                        .write_all(format!("{state}\n").as_bytes())
                        .map(|()| 0)
                }
            };
            if let Err(e) = sent {
                debug!(target = %t.name, error = %e, "sd_notify send failed");
            }
        }
    }
}

/// The pipe to the upgrading parent, by descriptor number. Opened anew through
/// `/proc/self/fd` (a pipe allows it), which needs no `unsafe` to own a raw descriptor.
fn parent(fd: &str) -> io::Result<Target> {
    let n: u32 = fd
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a descriptor number"))?;
    let pipe = File::options()
        .write(true)
        .open(format!("/proc/self/fd/{n}"))?;
    Ok(Target {
        name: format!("fd {n}"),
        to: To::Parent(pipe),
        done: AtomicBool::new(false),
    })
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
        to: To::Socket { addr, socket },
        done: AtomicBool::new(false),
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
    fn the_parent_pipe_gets_messages_until_ready() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let (mut reader, writer) = io::pipe().unwrap();
        let n = Notifier {
            targets: vec![parent(&writer.as_raw_fd().to_string()).unwrap()],
        };
        drop(writer);
        n.send("STATUS=starting");
        n.send("MAINPID=1\nREADY=1");
        n.send("WATCHDOG=1");
        drop(n);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "STATUS=starting\nMAINPID=1\nREADY=1\n");
        assert!(parent("x").is_err());
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(status_line("a\nb"), "STATUS=a b");
    }
}
