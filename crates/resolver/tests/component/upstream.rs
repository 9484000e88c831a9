//! A tiny upstream DNS server on 127.0.0.1 (UDP and TCP on one port) that records what it
//! was asked and answers according to its mode.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// How the fake upstream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// UDP answers `192.0.2.1`.
    Answer,
    /// UDP answers empty with TC; TCP answers `192.0.2.1`, `192.0.2.2`, `192.0.2.3`.
    Truncate,
    /// UDP answers empty with TC; TCP connections are closed at once.
    TruncateTcpDown,
    /// Never answers.
    Silent,
}

/// One query the upstream saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) id: u16,
    pub(crate) name: String,
    pub(crate) tcp: bool,
}

pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

fn respond(q: &Message, ips: &[u8], tc: bool) -> Vec<u8> {
    let mut r = Message::response(q.id, OpCode::Query);
    r.metadata.message_type = MessageType::Response;
    r.metadata.recursion_desired = q.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.truncation = tc;
    r.add_queries(q.queries.clone());
    let name = q.queries[0].name().clone();
    for &last in ips {
        r.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
        ));
    }
    r.to_vec().unwrap()
}

fn record(seen: &Mutex<Vec<Seen>>, q: &Message, tcp: bool) {
    seen.lock().unwrap().push(Seen {
        id: q.id,
        name: q
            .queries
            .first()
            .map(|q| q.name().to_ascii())
            .unwrap_or_default(),
        tcp,
    });
}

/// Starts the fake upstream; it lives as long as the test's runtime.
pub(crate) async fn start(mode: Mode) -> Upstream {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            record(&s, &q, false);
            let answer = match mode {
                Mode::Answer => respond(&q, &[1], false),
                Mode::Truncate | Mode::TruncateTcpDown => respond(&q, &[], true),
                Mode::Silent => continue,
            };
            let _ = udp.send_to(&answer, peer).await;
        }
    });
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            if mode == Mode::TruncateTcpDown {
                continue;
            }
            let s = s.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while stream.read_exact(&mut len).await.is_ok() {
                    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if stream.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Ok(q) = Message::from_vec(&buf) else {
                        return;
                    };
                    record(&s, &q, true);
                    if mode == Mode::Silent {
                        continue;
                    }
                    let answer = respond(&q, &[1, 2, 3], false);
                    let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&answer);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Upstream { addr, seen }
}
