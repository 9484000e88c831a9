use std::net::UdpSocket;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use super::raw_addr::RawAddr;
use super::*;

/// A blocking socket on `addr` whose receives give up after `wait` (a hang fails fast).
fn bound(addr: &str, wait: Duration) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s
}

fn received(batch: &RecvBatch) -> Vec<(Vec<u8>, SocketAddr, bool)> {
    batch
        .iter()
        .map(|d| (d.data.to_vec(), d.from.unwrap(), d.truncated))
        .collect()
}

#[test]
fn a_burst_from_several_sources_is_one_receive_and_one_send() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let to = server.local_addr().unwrap();
    let clients: Vec<UdpSocket> = ["127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0"]
        .iter()
        .map(|a| bound(a, Duration::from_secs(5)))
        .collect();
    // Seven datagrams queued before the server reads: one receive takes them all, in order.
    let mut expected = Vec::new();
    for i in 0..7u8 {
        let c = &clients[usize::from(i) % 3];
        c.send_to(&[i; 3], to).unwrap();
        expected.push((vec![i; 3], c.local_addr().unwrap(), false));
    }
    let mut rx = RecvBatch::new(32, 512);
    assert_eq!(rx.recv(server.as_fd()).unwrap(), 7);
    assert_eq!(received(&rx), expected);

    // Each answer goes back to its own source, all with one call.
    let mut tx = SendBatch::new();
    for d in rx.iter() {
        let mut reply = d.data.to_vec();
        reply.push(0xff);
        tx.push(&reply, d.from.unwrap());
    }
    assert_eq!(tx.len(), 7);
    let sent = tx.send(server.as_fd());
    assert_eq!((sent.sent, sent.dropped), (7, 0), "{:?}", sent.error);
    assert!(tx.is_empty());
    let mut buf = [0u8; 64];
    for i in 0..7u8 {
        let c = &clients[usize::from(i) % 3];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[i, i, i, 0xff][..], to));
    }
}

#[test]
fn a_lone_datagram_is_returned_without_waiting_for_more() {
    // With a 5 s receive timeout, a receive that waited to fill the batch would take 5 s.
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = bound("127.0.0.1:0", Duration::from_secs(5));
    client
        .send_to(b"one", server.local_addr().unwrap())
        .unwrap();
    let mut rx = RecvBatch::new(64, 512);
    let started = Instant::now();
    assert_eq!(rx.recv(server.as_fd()).unwrap(), 1);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(rx.iter().next().unwrap().data, b"one");
}

#[test]
fn nothing_queued_is_the_sockets_timeout() {
    let server = bound("127.0.0.1:0", Duration::from_millis(30));
    let mut rx = RecvBatch::new(4, 64);
    let err = rx.recv(server.as_fd()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    assert_eq!(rx.iter().count(), 0);
}

#[test]
fn more_than_the_batch_takes_several_receives() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = bound("127.0.0.1:0", Duration::from_secs(5));
    for i in 0..10u8 {
        client.send_to(&[i], server.local_addr().unwrap()).unwrap();
    }
    let mut rx = RecvBatch::new(4, 16);
    assert_eq!(rx.capacity(), 4);
    let mut seen = Vec::new();
    for want in [4, 4, 2] {
        assert_eq!(rx.recv(server.as_fd()).unwrap(), want);
        seen.extend(rx.iter().map(|d| d.data[0]));
    }
    assert_eq!(seen, (0..10).collect::<Vec<u8>>());
}

#[test]
fn an_oversized_datagram_is_cut_and_flagged() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = bound("127.0.0.1:0", Duration::from_secs(5));
    let to = server.local_addr().unwrap();
    client.send_to(&[7u8; 100], to).unwrap();
    client.send_to(&[8u8; 10], to).unwrap();
    let mut rx = RecvBatch::new(8, 16);
    assert_eq!(rx.recv(server.as_fd()).unwrap(), 2);
    let got = received(&rx);
    assert_eq!(got[0].0, vec![7u8; 16]);
    assert!(got[0].2);
    assert_eq!(got[1].0, vec![8u8; 10]);
    assert!(!got[1].2);
}

#[test]
fn dual_stack_reports_mapped_and_native_ipv6_sources_and_replies_reach_them() {
    let Ok(server) = UdpSocket::bind("[::]:0") else {
        return; // no IPv6 on this machine
    };
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let v4 = bound("127.0.0.2:0", Duration::from_secs(5));
    v4.send_to(b"v4", ("127.0.0.1", port)).unwrap();
    let v6 = UdpSocket::bind("[::1]:0").ok();
    if let Some(v6) = &v6 {
        v6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        v6.send_to(b"v6", ("::1", port)).unwrap();
    }
    let mut rx = RecvBatch::new(8, 64);
    let mut got = Vec::new();
    while got.len() < 1 + usize::from(v6.is_some()) {
        rx.recv(server.as_fd()).unwrap();
        got.extend(received(&rx));
    }
    let SocketAddr::V4(v4_addr) = v4.local_addr().unwrap() else {
        unreachable!("bound to an IPv4 address")
    };
    let mapped = SocketAddr::new(v4_addr.ip().to_ipv6_mapped().into(), v4_addr.port());
    assert_eq!((&got[0].0[..], got[0].1), (&b"v4"[..], mapped));
    assert_eq!(crate::canonical_addr(got[0].1), v4.local_addr().unwrap());
    if let Some(v6) = &v6 {
        assert_eq!(
            (&got[1].0[..], got[1].1),
            (&b"v6"[..], v6.local_addr().unwrap())
        );
    }
    let mut tx = SendBatch::new();
    for (data, from, _) in &got {
        tx.push(data, *from);
    }
    assert_eq!(tx.send(server.as_fd()).sent, got.len());
    let mut buf = [0u8; 16];
    let n = v4.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"v4");
    if let Some(v6) = &v6 {
        let n = v6.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"v6");
    }
}

#[test]
fn a_refused_datagram_is_skipped_and_the_rest_still_go() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = bound("127.0.0.1:0", Duration::from_secs(5));
    let mut tx = SendBatch::new();
    tx.push(b"a", client.local_addr().unwrap());
    // An IPv6 destination on an IPv4 socket, then port 0: both refused by the kernel.
    tx.push(b"x", "[::1]:53".parse().unwrap());
    tx.push(b"y", "127.0.0.1:0".parse().unwrap());
    tx.push(b"b", client.local_addr().unwrap());
    let sent = tx.send(server.as_fd());
    assert_eq!((sent.sent, sent.dropped), (2, 2));
    assert!(sent.error.is_some());
    let mut buf = [0u8; 4];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"a");
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"b");
    // An empty batch is no syscall and no error.
    let none = tx.send(server.as_fd());
    assert_eq!(
        (none.sent, none.dropped, none.error.is_none()),
        (0, 0, true)
    );
}

#[test]
fn addresses_round_trip_through_the_kernel_layout() {
    for addr in [
        "10.1.2.3:53",
        "255.255.255.255:65535",
        "[2001:db8::1]:5353",
        "[::ffff:10.0.0.1]:1",
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        let raw = RawAddr::from(addr);
        let mut ss = zeroed_storage();
        let (p, len) = raw.as_ptr();
        // Copy the raw bytes into a storage, as the kernel would write them.
        let bytes = unsafe_bytes(p, len);
        let dst: &mut [u8] = storage_bytes(&mut ss);
        dst[..bytes.len()].copy_from_slice(&bytes);
        assert_eq!(socket_addr(&ss, len), Some(addr));
        // Too short for its family, or another family: not an IP address.
        assert_eq!(socket_addr(&ss, len - 1), None);
    }
    let mut ss = zeroed_storage();
    ss.ss_family = libc::AF_UNIX as libc::sa_family_t;
    assert_eq!(socket_addr(&ss, STORAGE_LEN), None);
}

fn unsafe_bytes(p: *const libc::c_void, len: libc::socklen_t) -> Vec<u8> {
    // SAFETY (test): `p` points at a live sockaddr of exactly `len` bytes (RawAddr::as_ptr).
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts(p.cast::<u8>(), len as usize).to_vec()
    }
}

fn storage_bytes(ss: &mut libc::sockaddr_storage) -> &mut [u8] {
    // SAFETY (test): a sockaddr_storage is plain bytes of its size; the slice borrows it.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts_mut(
            ptr::from_mut(ss).cast::<u8>(),
            size_of::<libc::sockaddr_storage>(),
        )
    }
}

// === GSO groups ===

/// A client with room for a long burst (the default buffer could drop part of it).
fn roomy(addr: &str) -> UdpSocket {
    let s = bound(addr, Duration::from_secs(5));
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    s
}

/// Receives `n` datagrams on `c`, one `recv` each.
fn drain(c: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 70_000];
    (0..n)
        .map(|_| {
            let n = c.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect()
}

/// A payload of `len` bytes, distinct per `tag` and per position (a segment cut at the
/// wrong place, or glued to its neighbour, cannot match).
fn payload(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| tag.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Nothing queued on `c` (every datagram was taken by `drain`: none glued, none extra).
fn empty(c: &UdpSocket) {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    let err = c.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    c.set_nonblocking(false).unwrap();
}

#[test]
fn equal_answers_to_one_client_leave_grouped_and_arrive_as_separate_datagrams() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = roomy("127.0.0.1:0");
    let to = client.local_addr().unwrap();
    let mut tx = SendBatch::new();
    let mut want = Vec::new();
    for i in 0..9u8 {
        want.push(payload(i, 57));
    }
    want.push(payload(9, 20)); // the last of a group may be shorter
    for p in &want {
        tx.push(p, to);
    }
    let sent = tx.send(server.as_fd());
    assert_eq!(tx.gso, Gso::On, "this kernel (Linux >= 4.18) has UDP GSO");
    assert_eq!(
        (sent.sent, sent.dropped, sent.grouped),
        (10, 0, 10),
        "{:?}",
        sent.error
    );
    assert!(sent.error.is_none());
    assert_eq!(drain(&client, 10), want);
    empty(&client);
}

#[test]
fn each_destination_is_sent_together_in_order_and_groups_break_at_a_new_size_or_limit() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let a = roomy("127.0.0.1:0");
    let b = roomy("127.0.0.2:0");
    let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // (destination, length), interleaved.
    let mut plan: Vec<(SocketAddr, usize)> = vec![
        (to_a, 40),
        (to_a, 40),
        (to_b, 40),
        (to_a, 40),
        (to_a, 60),
        (to_a, 60),
        (to_a, 30),
        (to_a, 60),
        (to_a, 0),
        (to_a, 1300),
        (to_a, 1300),
    ];
    plan.extend(std::iter::repeat_n((to_b, 10), 70));
    let mut tx = SendBatch::new();
    let (mut want_a, mut want_b) = (Vec::new(), Vec::new());
    for (i, &(to, len)) in plan.iter().enumerate() {
        let p = payload(i as u8, len);
        tx.push(&p, to);
        if to == to_a { &mut want_a } else { &mut want_b }.push(p);
    }
    tx.gso = gso::probe(server.as_fd());
    tx.build(0);
    let layout: Vec<(SocketAddr, usize, usize, usize)> = tx
        .entries
        .iter()
        .map(|e| (e.to, e.count, e.seg, e.iovs))
        .collect();
    // a's first: the a40 after b's joins the first two; a shorter datagram ends a group (a30,
    // b10); a longer one starts a new one (a60 after a30); empty and over-1232-byte ones go
    // alone; at most 64 per group. Datagrams pushed back to back share one iovec.
    assert_eq!(
        layout,
        [
            (to_a, 3, 40, 2),
            (to_a, 3, 60, 1),
            (to_a, 1, 60, 1),
            (to_a, 1, 0, 1),
            (to_a, 1, 1300, 1),
            (to_a, 1, 1300, 1),
            (to_b, 2, 40, 2),
            (to_b, 64, 10, 1),
            (to_b, 5, 10, 1),
        ]
    );
    let sent = tx.send(server.as_fd());
    assert_eq!(
        (sent.sent, sent.dropped, sent.grouped),
        (81, 0, 3 + 3 + 2 + 64 + 5),
        "{:?}",
        sent.error
    );
    assert_eq!(drain(&a, want_a.len()), want_a);
    assert_eq!(drain(&b, want_b.len()), want_b);
    empty(&a);
    empty(&b);
}

#[test]
fn a_group_of_large_datagrams_stops_below_the_byte_limit() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = roomy("127.0.0.1:0");
    let to = client.local_addr().unwrap();
    let mut tx = SendBatch::new();
    let want: Vec<Vec<u8>> = (0..60u8).map(|i| payload(i, 1200)).collect();
    for p in &want {
        tx.push(p, to);
    }
    tx.gso = gso::probe(server.as_fd());
    tx.build(0);
    // 53 × 1200 = 63,600 ≤ 63 KiB: groups of 53 and 7.
    let counts: Vec<usize> = tx.entries.iter().map(|e| e.count).collect();
    assert_eq!(counts, [53, 7]);
    assert!(tx.entries.iter().all(|e| e.bytes <= gso::MAX_BYTES));
    let sent = tx.send(server.as_fd());
    assert_eq!((sent.sent, sent.grouped), (60, 60), "{:?}", sent.error);
    assert_eq!(drain(&client, 60), want);
    empty(&client);
}

#[test]
fn dual_stack_groups_to_mapped_and_native_ipv6_clients() {
    let Ok(server) = UdpSocket::bind("[::]:0") else {
        return; // no IPv6 on this machine
    };
    let v4 = roomy("127.0.0.2:0");
    let SocketAddr::V4(v4_addr) = v4.local_addr().unwrap() else {
        unreachable!("bound to an IPv4 address")
    };
    let mapped = SocketAddr::new(v4_addr.ip().to_ipv6_mapped().into(), v4_addr.port());
    let v6 = UdpSocket::bind("[::1]:0").ok();
    let mut tx = SendBatch::new();
    let want: Vec<Vec<u8>> = (0..5u8).map(|i| payload(i, 33)).collect();
    for p in &want {
        tx.push(p, mapped);
    }
    if let Some(v6) = &v6 {
        v6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for p in &want {
            tx.push(p, v6.local_addr().unwrap());
        }
    }
    let n = want.len() * (1 + usize::from(v6.is_some()));
    let sent = tx.send(server.as_fd());
    assert_eq!((sent.sent, sent.grouped), (n, n), "{:?}", sent.error);
    assert_eq!(drain(&v4, 5), want);
    empty(&v4);
    if let Some(v6) = &v6 {
        assert_eq!(drain(v6, 5), want);
        empty(v6);
    }
}

/// `SO_NO_CHECK` (`<asm-generic/socket.h>`; not in the libc crate): no UDP checksums on
/// send, which the kernel cannot combine with segmentation (a group is refused, EINVAL),
/// as it refuses one on a route whose device cannot checksum (EIO).
const SO_NO_CHECK: libc::c_int = 11;

#[test]
fn a_refused_group_falls_back_to_single_datagrams_for_good() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let one: libc::c_int = 1;
    // SAFETY (test): a live fd and a live c_int of the length given.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            server.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NO_CHECK,
            ptr::from_ref(&one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    let a = roomy("127.0.0.1:0");
    let b = roomy("127.0.0.2:0");
    let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut tx = SendBatch::new();
    // A lone datagram first (sent before the refusal), then groups for a and b.
    let mut want_a = vec![payload(0, 7)];
    tx.push(&want_a[0], to_a);
    tx.push(&payload(99, 3), to_b);
    let mut want_b = vec![payload(99, 3)];
    for i in 1..6u8 {
        want_a.push(payload(i, 40));
        tx.push(want_a.last().unwrap(), to_a);
    }
    for i in 6..9u8 {
        want_b.push(payload(i, 40));
        tx.push(want_b.last().unwrap(), to_b);
    }
    let sent = tx.send(server.as_fd());
    assert_eq!(
        (sent.sent, sent.dropped, sent.grouped),
        (10, 0, 0),
        "{:?}",
        sent.error
    );
    assert!(sent.error.is_none(), "a fallback is not an error");
    assert_eq!(tx.gso, Gso::Off);
    assert_eq!(drain(&a, 6), want_a);
    assert_eq!(drain(&b, 4), want_b);
    // Remembered: the next batch does not try again.
    for p in &want_b {
        tx.push(p, to_b);
    }
    tx.build(0);
    assert!(tx.entries.iter().all(|e| e.count == 1));
    let sent = tx.send(server.as_fd());
    assert_eq!((sent.sent, sent.grouped), (4, 0));
    assert_eq!(drain(&b, 4), want_b);
    empty(&a);
    empty(&b);
}

#[test]
fn without_gso_nothing_is_grouped() {
    let server = bound("127.0.0.1:0", Duration::from_secs(5));
    let client = roomy("127.0.0.1:0");
    let to = client.local_addr().unwrap();
    let mut tx = SendBatch::new();
    tx.gso = Gso::Off; // as on a kernel older than 4.18
    let want: Vec<Vec<u8>> = (0..4u8).map(|i| payload(i, 12)).collect();
    for p in &want {
        tx.push(p, to);
    }
    let sent = tx.send(server.as_fd());
    assert_eq!((sent.sent, sent.grouped), (4, 0));
    assert_eq!(drain(&client, 4), want);
}

#[test]
fn the_segment_control_message_has_the_kernels_layout() {
    let c = SegmentCmsg::new(1232);
    // SAFETY (test): CMSG_DATA is pointer arithmetic within `c`, which is CMSG_SPACE(2)
    // bytes (asserted at compile time); the u16 read is inside it.
    #[allow(unsafe_code)]
    let seg = unsafe {
        let data = libc::CMSG_DATA(ptr::from_ref(&c).cast::<libc::cmsghdr>());
        data.cast::<u16>().read_unaligned()
    };
    assert_eq!(seg, 1232);
    assert_eq!(SegmentCmsg::LEN, size_of::<SegmentCmsg>());
}
