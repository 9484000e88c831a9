//! One socket address named by two listeners: an error at the second one's value, rather
//! than a bind error at start or, with `SO_REUSEPORT`, two components silently sharing
//! one port's connections. A wildcard and a specific address on one port are fine (the
//! contract's own example has `0.0.0.0:80` and `10.0.0.2:80`): the kernel hands each
//! connection to the most specific socket.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Cx;
use super::claim::Claim;
use crate::error::ErrorKind;

impl Cx<'_> {
    /// Parses a listener list and records each address for [`Cx::check_listeners`].
    pub(crate) fn listeners(
        &mut self,
        key: &'static str,
        list: &[toml::Spanned<String>],
    ) -> Vec<SocketAddr> {
        let mut out = Vec::with_capacity(list.len());
        for s in list {
            if let Some(addr) = self.socket_addr(s) {
                self.claims.push(Claim {
                    addr,
                    key,
                    span: s.span(),
                });
                out.push(addr);
            }
        }
        out
    }

    /// Reports each listener whose address an earlier one (in section order) already
    /// names. Port 0 asks the kernel for a fresh port, so it never conflicts.
    pub(super) fn check_listeners(&mut self) {
        let claims = std::mem::take(&mut self.claims);
        let mut first: HashMap<SocketAddr, usize> = HashMap::with_capacity(claims.len());
        for (i, c) in claims.iter().enumerate() {
            if c.addr.port() == 0 {
                continue;
            }
            // Mapped IPv6 is the IPv4 address on a dual-stack socket.
            let addr = SocketAddr::new(crate::ipset::canonical(c.addr.ip()), c.addr.port());
            match first.get(&addr) {
                Some(&j) => {
                    let other = &claims[j];
                    self.push(
                        c.span.clone(),
                        ErrorKind::ListenerConflict {
                            addr: c.addr,
                            key: c.key,
                            other: other.addr,
                            other_key: other.key,
                        },
                    );
                }
                None => {
                    first.insert(addr, i);
                }
            }
        }
    }
}
