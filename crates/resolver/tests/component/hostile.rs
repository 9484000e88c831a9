//! Hostile-input corpus for the resolver (issue 19): a TCP message dripped byte by byte,
//! blocked clients, and malformed or odd queries over UDP and TCP. Each case ends with a
//! clear outcome (an answer, FORMERR, a drop or a close) and the resolver still serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Reads until the resolver closes: `true` for a close (EOF or reset) with nothing
/// written, within [`T`].
async fn closed_without_a_word(s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match within("close", s.read(&mut buf)).await {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Issue 19: the idle timer restarted on every read, so a client sending one byte every
/// few seconds held a connection (and a slot of `max_tcp`) for ever. A whole message now
/// has `tcp_idle` (500 ms in these tests) from its first byte.
#[tokio::test]
async fn a_dripped_tcp_message_is_cut_at_its_deadline() {
    let r = start(&policy_text(&dynos_text(1))).await;
    let q = query("web.big.app.localspace.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    // One byte every 150 ms: each gap well inside tcp_idle, the whole message (about 40
    // bytes, 6 s) far beyond it.
    let s = tcp_from(r.addr, "127.0.0.1").await;
    let (mut rd, mut wr) = s.into_split();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let drip = tokio::spawn(async move {
        for b in framed {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        done.store(true, Ordering::SeqCst);
    });
    let mut buf = [0u8; 64];
    let closed = match within("dripped message cut", rd.read(&mut buf)).await {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "the dripped query was answered");
    assert!(
        !finished.load(Ordering::SeqCst),
        "the whole message got through before the close"
    );
    drip.abort();
    // A prompt client on a fresh connection is still served.
    let m = tcp(
        r.addr,
        "127.0.0.1",
        &query("web.big.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.answers.len(), 1);
}

/// Pipelined queries sent in one go, and a query split across two writes, are unaffected.
#[tokio::test]
async fn a_message_split_in_two_writes_is_answered() {
    let r = start(&policy_text(&dynos_text(1))).await;
    let q = query("web.big.app.localspace.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    let mut s = tcp_from(r.addr, "127.0.0.1").await;
    let (a, b) = framed.split_at(5);
    within("first half", s.write_all(a)).await.unwrap();
    // The pause is the test: the second half comes in a later segment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    within("second half", s.write_all(b)).await.unwrap();
    let mut len = [0u8; 2];
    within("answer", s.read_exact(&mut len)).await.unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    within("answer body", s.read_exact(&mut body))
        .await
        .unwrap();
    assert_eq!(Message::from_vec(&body).unwrap().answers.len(), 1);
}

/// Issue 19: `space.blocked` wins over `internal` in the resolver too. A blocked client
/// gets nothing at all (no REFUSED to reflect): its datagrams are dropped, its TCP
/// connections closed at accept; a neighbour is served.
#[tokio::test]
async fn blocked_clients_get_no_answer_even_from_inside() {
    let text = format!(
        "[space]\nname = \"t\"\ninternal = [\"127.0.0.0/8\"]\nblocked = [\"127.0.0.2\", \"::ffff:127.0.0.4\"]\n[resolver]\nlisten = [\"127.0.0.1:0\"]\n{}",
        dynos_text(1)
    );
    let r = start(&text).await;
    let q = query("web.big.app.localspace.", RecordType::A, None);
    for from in ["127.0.0.2", "127.0.0.4"] {
        let got = udp_raw(
            r.addr,
            from,
            &q.to_vec().unwrap(),
            Duration::from_millis(300),
        )
        .await;
        assert!(got.is_none(), "{from}: answered over udp");
        let mut s = tcp_from(r.addr, from).await;
        assert!(closed_without_a_word(&mut s).await, "{from}: tcp answered");
    }
    assert_eq!(udp(r.addr, "127.0.0.3", &q).await.answers.len(), 1);
    assert_eq!(tcp(r.addr, "127.0.0.3", &q).await.answers.len(), 1);
    let mut m = String::new();
    r.handle.render_metrics(&mut m);
    assert!(m.contains("spaced_dns_blocked_total 4"), "{m}");
}

/// Odd and malformed messages: each gets FORMERR, REFUSED, NOTIMP, an answer, or nothing;
/// none hangs or stops the resolver.
#[tokio::test]
async fn odd_queries_get_a_clear_outcome_and_the_resolver_keeps_serving() {
    let r = start(&policy_text(&dynos_text(1))).await;
    let good = query("web.big.app.localspace.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let header = |flags: [u8; 2], qd: u16, an: u16| {
        let mut h = vec![0xab, 0xcd, flags[0], flags[1]];
        h.extend_from_slice(&qd.to_be_bytes());
        h.extend_from_slice(&an.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]);
        h
    };
    let with = |mut h: Vec<u8>, rest: &[u8]| {
        h.extend_from_slice(rest);
        h
    };
    // name "web" then a pointer to itself: a compression loop.
    let mut looped = header([1, 0], 1, 0);
    looped.extend_from_slice(&[3, b'w', b'e', b'b', 0xc0, 12, 0, 1, 0, 1]);
    // A name of 300 bytes in 63-byte labels (over the 255 limit).
    let mut long = header([1, 0], 1, 0);
    for _ in 0..5 {
        long.push(63);
        long.extend(std::iter::repeat_n(b'a', 63));
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut response = good.clone();
    response[2] |= 0x80; // QR: a response is never answered
    let mut update = good.clone();
    update[2] = (update[2] & 0x87) | (5 << 3); // opcode UPDATE
    let mut chaos = good.clone();
    let n = chaos.len();
    chaos[n - 1] = 3; // class CH
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![0]),
        ("eleven bytes", vec![0; 11]),
        ("header, no question", header([1, 0], 0, 0)),
        ("qdcount 65535, none there", header([1, 0], 65535, 0)),
        (
            "two questions claimed, one there",
            with(header([1, 0], 2, 0), &good[12..]),
        ),
        (
            "answers in a query",
            with(header([1, 0], 1, 1), &good[12..]),
        ),
        ("compression loop", looped),
        ("name over 255 bytes", long),
        (
            "label length past the end",
            with(header([1, 0], 1, 0), &[63, b'a']),
        ),
        ("a response", response),
        ("opcode update", update),
        ("class chaos", chaos),
        ("trailing garbage", with(good.clone(), &[0xff; 40])),
        ("all ones", vec![0xff; 512]),
    ];
    for (what, bytes) in &cases {
        if let Some(raw) = udp_raw(r.addr, "127.0.0.1", bytes, Duration::from_millis(200)).await {
            // Whatever it is, it is a response to this id, never a crash.
            if raw.len() >= 4 {
                assert!(raw[2] & 0x80 != 0, "{what}: not a response");
            }
        }
        // Over TCP: framed; the connection may close after an error, never hang.
        let mut s = tcp_from(r.addr, "127.0.0.1").await;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        let _ = within(what, s.write_all(&framed)).await;
        let mut len = [0u8; 2];
        match within(what, s.read_exact(&mut len)).await {
            Ok(_) => {
                let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                within(what, s.read_exact(&mut body)).await.unwrap();
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ),
                "{what}: {e}"
            ),
        }
    }
    // A length prefix announcing more than is ever sent, then silence: cut by the deadline.
    let mut s = tcp_from(r.addr, "127.0.0.1").await;
    within("prefix", s.write_all(&[0xff, 0xff, 1, 2, 3]))
        .await
        .unwrap();
    assert!(closed_without_a_word(&mut s).await);
    let m = udp(
        r.addr,
        "127.0.0.1",
        &query("web.big.app.localspace.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
}
