//! SIGUSR2: start the executable now at this process's path with the same arguments, hand
//! it every listening socket, and wait until it is ready (OPERATIONS.md "Stopping and
//! upgrading without refusing anyone").
//!
//! The sockets go over as socket activation does (`LISTEN_FDS`, `LISTEN_FDNAMES`, fds from
//! 3), so the new process takes them the way it takes a socket unit's, by address. Both
//! processes then share each socket (one accept queue, one UDP receive queue): nothing sent
//! during the overlap can land on a socket nobody reads. The new process reports `READY=1`
//! on a pipe whose write end it gets as the descriptor after the sockets
//! (`SPACED_UPGRADE_FD`), with the same sender it uses for systemd: the pipe is private to
//! the two processes (an abstract socket's name shows in `/proc/net/unix`).

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use command_fds::{CommandFdExt, FdMapping};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::notify::UPGRADE_ENV;

/// How long the new process gets to bind, load its policy and report ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The first descriptor of `LISTEN_FDS` (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// Starts the new process and waits until it reports ready. Returns its PID.
///
/// # Errors
/// Why it did not become ready: no executable, no sockets, it exited, or
/// [`READY_TIMEOUT`] passed (it is killed then). The caller keeps serving.
pub async fn start() -> Result<u32> {
    let exe = executable()?;
    let held = spaced_net::listeners::handoff().context("duplicate the listening sockets")?;
    let (reader, writer) = std::io::pipe().context("create the readiness pipe")?;

    let names: Vec<&str> = held.iter().map(|h| h.name.as_str()).collect();
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env("LISTEN_FDS", held.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        // Without LISTEN_PID the new process takes LISTEN_FDS as its own (the parent cannot
        // know the child's PID before it exists); a supervisor's value would not match it.
        .env_remove("LISTEN_PID")
        // systemd names the watchdog's process by PID; the new one pings as its own once
        // it has taken MAINPID= (the unit's NotifyAccess=all lets it).
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null());
    let count = i32::try_from(held.len()).context("too many sockets")?;
    let mut mappings = Vec::with_capacity(held.len() + 1);
    for (h, child_fd) in held.into_iter().zip(FIRST_FD..) {
        mappings.push(FdMapping {
            parent_fd: h.fd,
            child_fd,
        });
    }
    // The readiness pipe's write end follows the sockets.
    let ready_fd = FIRST_FD + count;
    mappings.push(FdMapping {
        parent_fd: writer.into(),
        child_fd: ready_fd,
    });
    cmd.env(UPGRADE_ENV, ready_fd.to_string());
    cmd.fd_mappings(mappings)
        .map_err(|e| anyhow!("hand the sockets over: {e}"))?;
    let spawned = cmd.spawn();
    // The command holds this process's copies of the sockets and of the pipe's write end:
    // gone with it, so the pipe ends when the new process does.
    drop(cmd);
    let mut child = spawned.with_context(|| format!("start {}", exe.display()))?;
    let pid = child.id().unwrap_or(0);
    let mut rx =
        pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).context("read the readiness pipe")?;
    let mut said = Vec::new();
    let mut open = true;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::sleep(READY_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            got = rx.read(&mut buf), if open => match got {
                Ok(0) | Err(_) => open = false,
                Ok(n) => {
                    // Bounded: a new process says a few lines before READY=1.
                    if said.len() < 64 * 1024 {
                        said.extend_from_slice(&buf[..n]);
                    }
                    if said.split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                        return Ok(pid);
                    }
                }
            },
            status = child.wait() => {
                let status = status.context("wait for the new process")?;
                bail!("new process {pid} ({}) exited before it was ready: {status}", exe.display());
            }
            () = &mut deadline => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                bail!("new process {pid} was not ready within {READY_TIMEOUT:?}; killed it");
            }
        }
    }
}

/// The path this process was started from, as it is now: a file replaced by a package
/// upgrade is the new binary (the kernel marks the old inode's link `(deleted)`).
fn executable() -> Result<PathBuf> {
    let link = std::fs::read_link("/proc/self/exe").context("read /proc/self/exe")?;
    let bytes = link.as_os_str().as_bytes();
    let path = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    Ok(PathBuf::from(OsStr::from_bytes(path)))
}
