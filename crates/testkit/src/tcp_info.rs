//! `TCP_INFO` for tests that count segments (spaced-net's relay, the router's last
//! response): one copy of the unsafe call.

use std::os::fd::AsRawFd;

/// Segments the socket has received so far (`TCP_INFO`'s `tcpi_segs_in`).
///
/// # Panics
/// When `getsockopt` fails (the fd is not a TCP socket).
#[allow(unsafe_code)]
pub fn segments_in(s: &impl AsRawFd) -> u32 {
    // SAFETY: a zeroed tcp_info is a valid value of a plain C struct; the fd is open and
    // the out-pointers are live and of the length passed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len =
        libc::socklen_t::try_from(size_of::<libc::tcp_info>()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: as above.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    info.tcpi_segs_in
}
