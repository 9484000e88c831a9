//! `syslog+udp://`: one RFC 5424 message per datagram (RFC 5426).

use std::sync::Arc;

use spaced_config::DrainUrl;
use tokio::net::UdpSocket;

use super::error::SendError;
use crate::record::Record;
use crate::syslog::message;

/// Datagrams carry at most this much (an IPv4 UDP payload); longer messages are cut.
const MAX_DATAGRAM: usize = 65_507;

/// A connected UDP socket.
pub(crate) struct Conn {
    sock: UdpSocket,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn connect(url: &DrainUrl) -> Result<Self, SendError> {
        let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
        let bind: std::net::SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(addr).await?;
        Ok(Self {
            sock,
            buf: Vec::with_capacity(2048),
        })
    }

    pub(crate) async fn send(
        &mut self,
        batch: &[Arc<Record>],
        space: &str,
    ) -> Result<(), SendError> {
        for r in batch {
            self.buf.clear();
            message(r, space, &mut self.buf);
            self.buf.truncate(MAX_DATAGRAM);
            self.sock.send(&self.buf).await?;
        }
        Ok(())
    }
}
