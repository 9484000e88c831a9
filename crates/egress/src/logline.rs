//! The log lines the gateway writes, built as text (pure) and emitted by the caller with
//! `tracing::info!(target: "egress", "{line}")` (refusals, whose text says `at=warning`,
//! with `warn!`), so the message is the whole line.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How the client reached the gateway (the `proto=` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP `CONNECT`.
    Connect,
    /// An absolute-form HTTP request forwarded by the proxy.
    Http,
    /// SOCKS5 CONNECT.
    Socks5,
    /// SOCKS5 UDP ASSOCIATE.
    Socks5Udp,
    /// A connection redirected to the transparent listener.
    Transparent,
}

impl Proto {
    /// The field value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Http => "http",
            Self::Socks5 => "socks5",
            Self::Socks5Udp => "socks5-udp",
            Self::Transparent => "transparent",
        }
    }
}

/// What one finished tunnel did.
#[derive(Debug, Clone)]
pub struct TunnelRecord<'a> {
    /// The app, or `""` for a client that is no app.
    pub app: &'a str,
    /// The client's address.
    pub client: IpAddr,
    /// The source address the tunnel left from.
    pub egress_ip: IpAddr,
    /// The dialled destination (`None` for a UDP association that sent nothing).
    pub dest: Option<SocketAddr>,
    /// How the client came.
    pub proto: Proto,
    /// Bytes client → destination.
    pub bytes_out: u64,
    /// Bytes destination → client.
    pub bytes_in: u64,
    /// Dial to close.
    pub duration: Duration,
}

impl TunnelRecord<'_> {
    /// `at=info app=api client=10.0.1.5 egress_ip=203.0.113.10 dest=93.184.216.34:443
    /// proto=connect bytes_out=… bytes_in=… duration=…ms` (one line).
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(160);
        let _ = write!(
            s,
            "at=info app={} client={} egress_ip={} dest=",
            self.app, self.client, self.egress_ip
        );
        if let Some(d) = self.dest {
            let _ = write!(s, "{d}");
        }
        let _ = write!(
            s,
            " proto={} bytes_out={} bytes_in={} duration={}ms",
            self.proto.as_str(),
            self.bytes_out,
            self.bytes_in,
            self.duration.as_millis()
        );
        s
    }
}

/// A refusal line: `at=warning app=… client=… dest=… proto=… refused=… rule=…`; `rule` is
/// empty unless the destination policy refused (then it names the rule).
pub fn refusal_line(
    app: &str,
    client: IpAddr,
    dest: &str,
    proto: Proto,
    refused: &str,
    rule: &str,
) -> String {
    let dest = if dest.contains([' ', '"']) {
        format!("{dest:?}")
    } else {
        dest.to_owned()
    };
    format!(
        "at=warning app={app} client={client} dest={dest} proto={} refused={refused} rule={rule}",
        proto.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_line_matches_the_spec() {
        let r = TunnelRecord {
            app: "api",
            client: "10.0.1.5".parse().unwrap(),
            egress_ip: "203.0.113.10".parse().unwrap(),
            dest: Some("93.184.216.34:443".parse().unwrap()),
            proto: Proto::Connect,
            bytes_out: 517,
            bytes_in: 4096,
            duration: Duration::from_micros(12_900),
        };
        assert_eq!(
            r.line(),
            "at=info app=api client=10.0.1.5 egress_ip=203.0.113.10 dest=93.184.216.34:443 proto=connect bytes_out=517 bytes_in=4096 duration=12ms"
        );
        let r = TunnelRecord {
            app: "",
            dest: Some("[::1]:53".parse().unwrap()),
            proto: Proto::Socks5Udp,
            ..r
        };
        assert!(r.line().starts_with("at=info app= client=10.0.1.5 "));
        assert!(r.line().contains(" dest=[::1]:53 proto=socks5-udp "));
    }

    #[test]
    fn refusal() {
        let l = refusal_line(
            "",
            "10.0.0.1".parse().unwrap(),
            "localhost:80",
            Proto::Http,
            "denied",
            "deny:127.0.0.0/8",
        );
        assert_eq!(
            l,
            "at=warning app= client=10.0.0.1 dest=localhost:80 proto=http refused=denied rule=deny:127.0.0.0/8"
        );
        assert!(
            refusal_line(
                "",
                "10.0.0.1".parse().unwrap(),
                "a b",
                Proto::Socks5,
                "x",
                ""
            )
            .contains("dest=\"a b\"")
        );
        for p in [
            Proto::Connect,
            Proto::Http,
            Proto::Socks5,
            Proto::Socks5Udp,
            Proto::Transparent,
        ] {
            assert!(!p.as_str().is_empty());
        }
    }
}
