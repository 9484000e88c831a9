//! UDP generic segmentation offload (`UDP_SEGMENT`, Linux ≥ 4.18) for [`SendBatch`]: consecutive
//! datagrams to the same destination with the same length travel as ONE message, with a
//! control message giving the segment size.
//!
//! Why: on a busy small-datagram server the send is most of the CPU, and nearly all of it is
//! per datagram (the UDP/IP output path, and on loopback the device and the delivery up to
//! the receiving socket). A group goes through the output path and the device once; it is
//! cut into datagrams only at the end, by the NIC (or the kernel's software GSO before a
//! device without it), or on loopback by the receiving socket (a socket without `UDP_GRO`
//! gets ordinary datagrams). What the peer sees is the same as for separate sends.
//!
//! [`SendBatch`]: super::SendBatch

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use super::raw_addr::RawAddr;

/// `UDP_SEGMENT` from `<linux/udp.h>` (not in the libc crate for every target): the
/// segment size of a GSO send, as a socket option or a `SOL_UDP` control message.
const UDP_SEGMENT: libc::c_int = 103;

/// Datagrams per group: the kernel's `UDP_MAX_SEGMENTS` (64 until 6.10, 128 since).
pub(super) const MAX_SEGMENTS: usize = 64;

/// Bytes per group. The kernel allows up to 65,507 (IPv4: 0xFFFF less the IP and UDP
/// headers) or 65,527 (IPv6); the margin leaves room for IP options and extension headers.
pub(super) const MAX_BYTES: usize = 63 * 1024;

/// Largest datagram grouped. The kernel refuses a group (EINVAL) whose segments, with their
/// headers, exceed the route's MTU, where separate datagrams would be fragmented instead:
/// 1232 bytes (the DNS-over-UDP safe size) fit the IPv6 minimum MTU of 1280 with the IPv6
/// and UDP headers, so a group is never refused for the path's MTU on any real network.
pub(super) const MAX_SEGMENT: usize = 1232;

/// Whether sends may group datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Gso {
    /// Not asked yet: the first send that could group asks the kernel ([`probe`]).
    #[default]
    Unknown,
    On,
    /// The kernel has no UDP GSO, or refused a group once (e.g. EIO: a device without
    /// checksum offload on the route). Remembered: one refused call is the whole cost.
    Off,
}

/// One message of a `sendmmsg`: a lone datagram, or a group of consecutive ones to the same
/// destination, all `seg` bytes long but the last (which may be shorter).
#[derive(Debug)]
pub(super) struct Entry {
    /// Position of its first datagram in the send order.
    pub(super) first: usize,
    /// Its first iovec, and how many (consecutive): one per run of datagrams that lie back
    /// to back in the batch's payloads, so a group of datagrams pushed in a row is one.
    pub(super) iov: usize,
    pub(super) iovs: usize,
    /// Total bytes.
    pub(super) bytes: usize,
    /// Datagrams in it.
    pub(super) count: usize,
    /// The segment size: the first datagram's length.
    pub(super) seg: usize,
    /// A datagram shorter than `seg` joined: it must be the last.
    closed: bool,
    pub(super) to: SocketAddr,
    pub(super) raw: RawAddr,
}

impl Entry {
    pub(super) fn new(first: usize, iov: usize, len: usize, to: SocketAddr) -> Self {
        Self {
            first,
            iov,
            iovs: 1,
            bytes: len,
            count: 1,
            seg: len,
            closed: false,
            to,
            raw: RawAddr::from(to),
        }
    }

    /// Adds the next datagram (`len` bytes to `to`) to this group if the kernel would cut
    /// the group back into exactly these datagrams, and the group stays within the limits.
    pub(super) fn take(&mut self, len: usize, to: SocketAddr) -> bool {
        let fits = !self.closed
            && to == self.to
            && len > 0
            && len <= self.seg
            && self.seg <= MAX_SEGMENT
            && self.count < MAX_SEGMENTS
            && self.bytes + len <= MAX_BYTES;
        if fits {
            self.count += 1;
            self.bytes += len;
            self.closed = len < self.seg;
        }
        fits
    }
}

/// The control message of a group: a `cmsghdr` followed by the `u16` segment size, laid
/// out as `CMSG_SPACE(2)` bytes (checked below, at compile time).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct SegmentCmsg {
    hdr: libc::cmsghdr,
    seg: u16,
}

// SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument and size_of::<cmsghdr>
// (marked unsafe only because the C macros are); no memory is touched.
#[allow(unsafe_code)]
const CMSG_SPACE_U16: usize =
    unsafe { libc::CMSG_SPACE(size_of::<u16>() as libc::c_uint) } as usize;
// SAFETY: as above.
#[allow(unsafe_code)]
const CMSG_LEN_U16: usize = unsafe { libc::CMSG_LEN(size_of::<u16>() as libc::c_uint) } as usize;

// The kernel reads the data at CMSG_DATA = right after an aligned cmsghdr, and walks to the
// next header by CMSG_SPACE: the struct must match both exactly.
const _: () = assert!(size_of::<SegmentCmsg>() == CMSG_SPACE_U16);
const _: () = assert!(std::mem::offset_of!(SegmentCmsg, seg) == size_of::<libc::cmsghdr>());
const _: () = assert!(CMSG_LEN_U16 == size_of::<libc::cmsghdr>() + size_of::<u16>());

impl SegmentCmsg {
    pub(super) fn new(seg: u16) -> Self {
        // SAFETY: cmsghdr is integers only (with private padding on some targets, hence no
        // literal); all-zero is a valid value, and every field the kernel reads is set below.
        #[allow(unsafe_code)]
        let mut hdr: libc::cmsghdr = unsafe { std::mem::zeroed() };
        hdr.cmsg_len = CMSG_LEN_U16 as _;
        hdr.cmsg_level = libc::SOL_UDP;
        hdr.cmsg_type = UDP_SEGMENT;
        Self { hdr, seg }
    }

    /// The `msg_controllen` that covers exactly this one message.
    pub(super) const LEN: usize = CMSG_SPACE_U16;
}

/// Asks the kernel whether it knows UDP GSO: reading the `UDP_SEGMENT` option succeeds from
/// Linux 4.18 on. Older kernels ignore a `SOL_UDP` control message on send, so they would
/// send a group as ONE datagram: grouping without this check could glue answers together.
pub(super) fn probe(sock: BorrowedFd<'_>) -> Gso {
    let mut val: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is open for the call (borrowed); `val` and `len` are live locals of the
    // sizes given, which is all the kernel writes.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            ptr::from_mut(&mut val).cast(),
            &mut len,
        )
    };
    if rc == 0 { Gso::On } else { Gso::Off }
}

/// Whether a group's error is the kernel refusing the segmentation itself, so that its
/// datagrams must go one by one (rather than a destination's trouble, which would refuse
/// each of them alike): EIO when the route's device cannot checksum (no offload), EINVAL
/// for a segment size the route does not take (or `SO_NO_CHECK`), EMSGSIZE for a size
/// limit we did not foresee; ENOPROTOOPT/EOPNOTSUPP on a kernel that does not know it.
pub(super) fn refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}
