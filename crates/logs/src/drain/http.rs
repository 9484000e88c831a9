//! `https://`/`http://` (logplex: octet-counted RFC 5424 messages, `application/logplex-1`)
//! and `otlp+http(s)://` (OTLP/HTTP protobuf to `/v1/logs`), over one kept-alive HTTP/1.1
//! connection.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use spaced_config::{Drain, DrainScheme};
use tokio::net::TcpStream;

use super::error::SendError;
use super::tls;
use crate::otlp;
use crate::record::Record;
use crate::syslog::{MAX_MSG, framed};

/// An HTTP/1.1 connection to the receiver.
pub(crate) struct Conn {
    tx: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub(crate) async fn connect(d: &Drain) -> Result<Self, SendError> {
        let tcp = TcpStream::connect((d.url.host.as_str(), d.url.port)).await?;
        let _ = tcp.set_nodelay(true);
        let tx = if d.url.scheme.is_tls() {
            let io = tls::connect(tcp, &d.url.host, d.ca.as_deref(), &[b"http/1.1"]).await?;
            handshake(TokioIo::new(io)).await?
        } else {
            handshake(TokioIo::new(tcp)).await?
        };
        Ok(Self { tx })
    }

    pub(crate) async fn send(
        &mut self,
        d: &Drain,
        batch: &[Arc<Record>],
        space: &str,
        frame_id: &str,
    ) -> Result<(), SendError> {
        let url = &d.url;
        let otlp = matches!(url.scheme, DrainScheme::OtlpHttp | DrainScheme::OtlpHttps);
        let mut body = Vec::with_capacity(batch.len() * 400);
        let mut req = Request::post(if otlp {
            format!("{}/v1/logs", url.path.trim_end_matches('/'))
        } else {
            url.path.clone()
        })
        .header(header::HOST, host_header(d))
        .header(header::USER_AGENT, "spaced");
        if otlp {
            otlp::encode(batch, space, &mut body);
            req = req.header(header::CONTENT_TYPE, "application/x-protobuf");
        } else {
            let mut count = 0;
            for r in batch {
                count += framed(r, space, MAX_MSG, &mut body);
            }
            req = req
                .header(header::CONTENT_TYPE, "application/logplex-1")
                .header("Logplex-Msg-Count", count)
                .header("Logplex-Frame-Id", frame_id);
        }
        if let Some(user) = &url.user {
            let creds = format!("{user}:{}", url.password.as_deref().unwrap_or(""));
            let b64 = base64::engine::general_purpose::STANDARD.encode(creds);
            req = req.header(header::AUTHORIZATION, format!("Basic {b64}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Tls(format!("request: {e}")))?;
        self.tx.ready().await?;
        let resp = self.tx.send_request(req).await?;
        let status = resp.status();
        // Read (a bounded amount of) the answer so the connection can be reused.
        let _ = Limited::new(resp.into_body(), 64 * 1024).collect().await;
        if !status.is_success() {
            return Err(SendError::Status(status));
        }
        Ok(())
    }
}

fn host_header(d: &Drain) -> String {
    let default = if d.url.scheme.is_tls() { 443 } else { 80 };
    let host = if d.url.host.contains(':') {
        format!("[{}]", d.url.host)
    } else {
        d.url.host.clone()
    };
    if d.url.port == default {
        host
    } else {
        format!("{host}:{}", d.url.port)
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, SendError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (tx, conn) = http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}
