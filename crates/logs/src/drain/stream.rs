//! `syslog://` and `syslog+tls://`: RFC 5424 messages, octet-counted (RFC 6587 §3.4.1), one
//! write per batch. The receiver's bytes are never read: syslog has no answer.

use std::sync::Arc;

use spaced_config::{Drain, DrainScheme};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::SendError;
use super::tls;
use crate::record::Record;
use crate::syslog::framed;

/// A TCP or TLS connection to a syslog receiver.
pub(crate) struct Conn {
    io: Box<dyn AsyncWrite + Send + Unpin>,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn connect(d: &Drain) -> Result<Self, SendError> {
        let tcp = TcpStream::connect((d.url.host.as_str(), d.url.port)).await?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn AsyncWrite + Send + Unpin> = if d.url.scheme == DrainScheme::SyslogTls {
            Box::new(tls::connect(tcp, &d.url.host, d.ca.as_deref(), &[]).await?)
        } else {
            Box::new(tcp)
        };
        Ok(Self {
            io,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    pub(crate) async fn send(
        &mut self,
        batch: &[Arc<Record>],
        space: &str,
    ) -> Result<(), SendError> {
        self.buf.clear();
        for r in batch {
            // Syslog receivers take long messages whole; only logplex splits.
            framed(r, space, usize::MAX, &mut self.buf);
        }
        self.io.write_all(&self.buf).await?;
        self.io.flush().await?;
        Ok(())
    }
}
