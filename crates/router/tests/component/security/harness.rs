//! What the security and hostile-input tests add to the router harness (whose `Router`
//! they share): a dyno that echoes the `X-Forwarded-For` it got, clients bound to chosen
//! loopback sources, raw exchanges read until the router closes, a TLS client trusting a
//! throwaway CA.

use std::convert::Infallible;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub(crate) use spaced_testkit::pki::{Leaf, Pki};
pub(crate) use spaced_testkit::{policy, policy_with_files, within};

pub(crate) use crate::harness::Router;

/// A dyno answering every request `200 ok`, with the `X-Forwarded-For` it received echoed
/// in `x-seen-xff`.
pub(crate) async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .cloned()
                        .unwrap_or_else(|| http::HeaderValue::from_static(""));
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("x-seen-xff", xff)
                            .body(Full::new(Bytes::from_static(b"ok")))
                            .unwrap(),
                    )
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A TCP connection to `to` from the loopback source `from` (127.0.0.x plays a network).
pub(crate) async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    within("connect", socket.connect(to)).await.unwrap()
}

/// Writes `prefix` then a `Connection: close` GET for `host` with `extra` header lines, and
/// reads everything until the router closes. A reset counts as a close.
pub(crate) async fn exchange<S>(mut s: S, prefix: &[u8], host: &str, extra: &str) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = prefix.to_vec();
    req.extend_from_slice(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    );
    // A write can fail when the router already closed (L4 denial): that is an answer too.
    if s.write_all(&req).await.is_err() {
        return Vec::new();
    }
    read_to_close(&mut s).await
}

/// Everything until EOF or reset.
pub(crate) async fn read_to_close<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within("read until close", s.read(&mut buf)).await {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if is_close(&e) => return out,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn is_close(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// One request from `from` to `to`, `Connection: close`: the raw response bytes.
pub(crate) async fn get(from: &str, to: SocketAddr, host: &str, extra: &str) -> Vec<u8> {
    let s = connect_from(from, to).await;
    exchange(s, b"", host, extra).await
}

/// The status code of a raw HTTP/1 response, `None` for nothing or garbage.
pub(crate) fn status(resp: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(resp.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A header's value in a raw response (case-insensitive name).
pub(crate) fn header(resp: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(resp);
    let head = text.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// A keep-alive GET on an open connection; reads exactly one response (`Content-Length`).
pub(crate) async fn get_keepalive(s: &mut TcpStream, host: &str) -> u16 {
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    within("write", s.write_all(req.as_bytes())).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = within("read response", s.read(&mut buf)).await.unwrap();
        assert!(n > 0, "closed before a full response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let len: usize = header(&got, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return status(&got).unwrap_or(0);
            }
        }
    }
}

/// A client configuration trusting `pki`'s CA, offering `alpn`.
pub(crate) fn client(pki: &Pki, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    crate::harness::tls_client(pki.ca_der(), alpn)
}
