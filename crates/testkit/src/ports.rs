//! Free loopback ports for configurations that must name a port before a process starts.
//!
//! A port found by binding port 0 and releasing it is only *probably* free: the kernel
//! keeps separate TCP and UDP tables and may hand the same number out again to the next
//! caller, which is how one test once got the same port for a router's TCP listener and a
//! resolver's UDP one. So every port given out here is free for both TCP and UDP when
//! found, and never given out twice by one test binary.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Mutex, PoisonError};

static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on 127.0.0.1 free for TCP and UDP right now and not given out before by this
/// process: for any listener (TCP, UDP or both).
///
/// # Panics
/// When the loopback address cannot be bound at all.
pub fn free() -> u16 {
    for _ in 0..1000 {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = tcp.local_addr().map(|a| a.port()) else {
            continue;
        };
        // Held while the UDP side is checked, so the number is free on both at once.
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port after 1000 tries");
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_the_same_port_twice() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            assert!(seen.insert(super::free()));
        }
    }
}
