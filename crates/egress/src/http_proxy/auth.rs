//! Who the client of a proxy request is: its `Proxy-Authorization` credentials, else its
//! address ([`crate::identity`] decides); a refusal is counted and logged here, for the
//! first request (`CONNECT` on the strict path) and for those hyper serves alike.

use std::net::IpAddr;

use spaced_config::Policy;

use crate::address::{Address, address_text};
use crate::identity::{self, Client, Refusal, UserPass};
use crate::logline::{Proto, refusal_line};
use crate::state::Shared;

/// The credentials of a `Proxy-Authorization` header, if one was sent.
pub(super) fn credentials(value: Option<&[u8]>) -> Result<Option<UserPass>, Refusal> {
    value.map(identity::basic_credentials).transpose()
}

/// Identifies the client of one request, counting and logging a refusal. `dest` is only
/// formatted for the log line of a refusal (not per tunnel).
pub(super) fn identify(
    shared: &Shared,
    policy: &Policy,
    peer: IpAddr,
    auth: Option<&[u8]>,
    dest: &Address,
    proto: Proto,
) -> Result<Client, Refusal> {
    let result = if !identity::is_internal(policy, peer) {
        Err(Refusal::Outside)
    } else {
        match credentials(auth) {
            Ok(c) => {
                let c = c.as_ref().map(|(u, p)| (u.as_slice(), p.as_slice()));
                identity::identify(policy, peer, c)
            }
            // Unreadable credentials are wrong ones (no app has an empty name): still a
            // dyno address's app, else 407.
            Err(_) => identity::identify(policy, peer, Some((&[], &[]))),
        }
    };
    if let Err(r) = result {
        shared.refused.identity(r).inc();
        let dest = address_text(dest);
        tracing::warn!(target: "egress", "{}", refusal_line("", peer, &dest, proto, r.reason(), ""));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_authorization() {
        assert_eq!(credentials(None), Ok(None));
        assert_eq!(
            credentials(Some(b"Basic YTpi")),
            Ok(Some((b"a".to_vec(), b"b".to_vec())))
        );
        assert_eq!(credentials(Some(b"Bearer x")), Err(Refusal::BadCredentials));
    }
}
