//! Byte relay between a client and a destination: both directions at once, half-close
//! passed on (EOF one way shuts down writing that way; the other way keeps flowing), and
//! an idle timeout that fires only when *both* directions have been quiet that long (a
//! one-way bulk download is not idle).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use spaced_net::metrics::Counter;

/// Small tunnels (one request, one answer) are the common case: start small and grow once
/// a read fills the buffer.
const FIRST_BUF: usize = 8 * 1024;
const BIG_BUF: usize = 64 * 1024;

/// What a relay moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Client → destination.
    pub out: u64,
    /// Destination → client.
    pub into: u64,
}

/// Relays two TCP streams until both directions end, one fails, or both are idle for
/// `idle`. Bytes are added to `out`/`into` as they flow, so metrics see long tunnels live.
pub async fn relay_tcp(
    client: TcpStream,
    dest: TcpStream,
    idle: Duration,
    out: &Counter,
    into: &Counter,
) -> Relayed {
    let (cr, cw) = client.into_split();
    let (dr, dw) = dest.into_split();
    relay_halves(cr, cw, dr, dw, idle, out, into).await
}

/// [`relay_tcp`] for any byte streams (an upgraded HTTP connection, a test pipe).
pub async fn relay<A, B>(
    client: A,
    dest: B,
    idle: Duration,
    out: &Counter,
    into: &Counter,
) -> Relayed
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (dr, dw) = tokio::io::split(dest);
    relay_halves(cr, cw, dr, dw, idle, out, into).await
}

async fn relay_halves<CR, CW, DR, DW>(
    cr: CR,
    cw: CW,
    dr: DR,
    dw: DW,
    idle: Duration,
    out: &Counter,
    into: &Counter,
) -> Relayed
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    DR: AsyncRead + Unpin,
    DW: AsyncWrite + Unpin,
{
    let clock = Activity::new();
    let stop = CancellationToken::new();
    let (o, i) = tokio::join!(
        pump(cr, dw, &clock, &stop, idle, out),
        pump(dr, cw, &clock, &stop, idle, into)
    );
    Relayed { out: o, into: i }
}

/// The last time any byte moved, shared by both directions.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// One direction. Returns the bytes moved.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    clock: &Activity,
    stop: &CancellationToken,
    idle: Duration,
    count: &Counter,
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; FIRST_BUF];
    let mut total = 0u64;
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, r.read(&mut buf)) => r,
        };
        let n = match read {
            // Quiet this way; the tunnel is idle only if the other way is quiet too.
            Err(_) if clock.quiet_for() < idle => continue,
            Err(_) | Ok(Err(_)) => {
                stop.cancel();
                break;
            }
            Ok(Ok(0)) => {
                // Half-close: pass the EOF on; the other direction carries on.
                let _ = w.shutdown().await;
                return total;
            }
            Ok(Ok(n)) => n,
        };
        clock.touch();
        let wrote = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, w.write_all(&buf[..n])) => r,
        };
        if !matches!(wrote, Ok(Ok(()))) {
            stop.cancel();
            break;
        }
        total += n as u64;
        count.add(n as u64);
        if n == buf.len() && buf.len() < BIG_BUF {
            buf.resize(BIG_BUF, 0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn relays_both_ways_with_half_close() {
        let (client_app, client_proxy) = duplex(1024);
        let (dest_proxy, dest_app) = duplex(1024);
        let (out, into) = (Counter::new(), Counter::new());
        let relay = relay(
            client_proxy,
            dest_proxy,
            Duration::from_secs(5),
            &out,
            &into,
        );
        let peers = async {
            let (mut cr, mut cw) = tokio::io::split(client_app);
            let (mut dr, mut dw) = tokio::io::split(dest_app);
            cw.write_all(b"hello").await.unwrap();
            cw.shutdown().await.unwrap();
            let mut got = Vec::new();
            dr.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello");
            // The other way still flows after the client's half-close.
            dw.write_all(b"world!").await.unwrap();
            dw.shutdown().await.unwrap();
            let mut back = Vec::new();
            cr.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"world!");
        };
        let (r, ()) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(relay, peers) })
                .await
                .unwrap();
        assert_eq!(r, Relayed { out: 5, into: 6 });
        assert_eq!((out.get(), into.get()), (5, 6));
    }

    #[tokio::test]
    async fn idle_in_both_directions_ends_it() {
        let (_client_app, client_proxy) = duplex(64);
        let (dest_proxy, _dest_app) = duplex(64);
        let (out, into) = (Counter::new(), Counter::new());
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            relay(
                client_proxy,
                dest_proxy,
                Duration::from_millis(200),
                &out,
                &into,
            ),
        )
        .await
        .unwrap();
        assert_eq!(r, Relayed::default());
    }
}
