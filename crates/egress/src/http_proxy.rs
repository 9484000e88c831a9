//! The HTTP proxy listener. The first request head is read with the strict parser in
//! [`head`]: a `CONNECT` (the common case: HTTPS through a proxy) becomes a tunnel
//! without any HTTP machinery ([`connect`]); an absolute-form request hands the
//! connection, bytes read so far included, to the hyper-based forwarder in [`forward`],
//! which keeps the client connection alive across requests. [`auth`] (who the client is)
//! and [`response`] (the proxy's own answers) serve both.

use std::net::SocketAddr;
use std::sync::Arc;

use spaced_net::Shutdown;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use self::head::{Head, HeadError, Target};
use self::response::{error_response, refuse};
use crate::state::Shared;

mod auth;
mod connect;
mod forward;
pub mod head;
mod response;

pub(crate) async fn serve_conn(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
) {
    let policy = shared.store.load_full();
    let mut buf = Vec::with_capacity(1024);
    let head = match tokio::time::timeout(
        crate::limits::HANDSHAKE_TIMEOUT,
        read_head(&mut stream, &mut buf),
    )
    .await
    {
        Ok(Ok(h)) => h,
        Ok(Err(Some(e))) => {
            shared.refused.bad_request.inc();
            refuse(&mut stream, &error_response(e.status(), &e.to_string())).await;
            return;
        }
        // The client went away or was too slow: nothing useful to say.
        Ok(Err(None)) | Err(_) => return,
    };
    match &head.target {
        Target::Authority { host, port } => {
            let addr = head::to_address(host, *port);
            connect::connect(
                &shared,
                &policy,
                stream,
                peer,
                &head,
                addr,
                &buf[head.len..],
            )
            .await;
        }
        Target::Absolute { .. } => {
            // Boxed: hyper's connection state is large, and every connection task (most of
            // them CONNECTs) would otherwise carry and move its size.
            Box::pin(forward::serve(shared, stream, buf, peer, shutdown)).await;
        }
        Target::Origin(_) | Target::Asterisk => {
            shared.refused.bad_request.inc();
            let msg = "this is a proxy: send absolute-form requests or CONNECT";
            refuse(&mut stream, &error_response(400, msg)).await;
        }
    }
}

/// Reads until a complete head is in `buf`. `Err(None)`: the client closed or failed.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, Option<HeadError>> {
    // Where the search for the blank line resumes: a client sending its head a byte at a
    // time must not make us rescan everything it sent on every read.
    let mut searched: usize = 0;
    loop {
        let from = searched.saturating_sub(3);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return head::parse_request_head(buf).map_err(Some);
        }
        if buf.len() >= head::MAX_HEAD {
            return Err(Some(HeadError::TooLarge));
        }
        searched = buf.len();
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().clamp(1024, head::MAX_HEAD));
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
    }
}
