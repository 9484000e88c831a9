//! Which `Host` the admin listener answers: the address the client connected to (with or
//! without a port) or `localhost`. Anything else is a name that resolved to this listener
//! without being its name, which is how DNS rebinding lets a web page in a browser on the
//! host read `/config` and `POST /reload` (issue 19).
//!
//! The port is not compared: a rebinding page is told apart by its name, and tunnels
//! (`ssh -L`, `kubectl port-forward`) reach the listener under another port.

use std::net::{IpAddr, SocketAddr};

/// Whether a request whose authority (absolute-form target, else `Host`) is `host` may be
/// answered by a listener the client reached at `local`. `None`: no Host at all, which no
/// browser sends (and HTTP/1.0 clients may omit).
pub(crate) fn allowed(host: Option<&[u8]>, local: SocketAddr) -> bool {
    let Some(host) = host else {
        return true;
    };
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let Some(name) = strip_port(host) else {
        return false;
    };
    if name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => spaced_config::canonical(ip) == local.ip(),
        Err(_) => false,
    }
}

/// `name[:port]` or `[v6][:port]` → the name (brackets dropped); `None` when the port is
/// not a number or a bracket is unclosed.
fn strip_port(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return match after {
            "" => Some(inside),
            _ => port_ok(after.strip_prefix(':')?).then_some(inside),
        };
    }
    match host.split_once(':') {
        None => Some(host),
        Some((name, port)) => port_ok(port).then_some(name),
    }
}

fn port_ok(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_address_and_localhost_only() {
        let v4: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let v6: SocketAddr = "[::1]:9901".parse().unwrap();
        let ok = |h: &str, at| allowed(Some(h.as_bytes()), at);
        for h in [
            "127.0.0.1",
            "127.0.0.1:9901",
            "127.0.0.1:8080",
            "localhost",
            "LocalHost:9901",
            "localhost.",
            "[::ffff:127.0.0.1]:9901",
        ] {
            assert!(ok(h, v4), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:9901",
            "127.0.0.2:9901",
            "127.0.0.1.nip.io",
            "x.localhost",
            "localhost:",
            "localhost:http",
            "127.0.0.1:99999x",
            "[::1]:9901",
            "",
            "admin",
        ] {
            assert!(!ok(h, v4), "{h}");
        }
        assert!(ok("[::1]:9901", v6));
        assert!(ok("[::1]", v6));
        assert!(!ok("[::1", v6));
        assert!(!ok("::1", v6));
        assert!(allowed(None, v4));
        assert!(!allowed(Some(b"\xff"), v4));
    }
}
