//! Who may talk to the router, and to which app: the L4 admission check right after accept,
//! the trusted-proxy walk of `X-Forwarded-For`, and the L7 routing check by Host.
//!
//! Pure functions over a [`Policy`] (no sockets, no allocation on the allowed path), so the
//! accept loop, the request path and `spaced explain` all give the same answer. Decisions
//! follow `shared/spec/BEHAVIOR.md`, "Who may connect" and "Which app".

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use spaced_config::{App, Policy, Routing, canonical};

mod forwarded;

pub use forwarded::{
    Client, client, client_from, client_ip, client_ip_from, parse_forwarded_entry,
};

/// Which kind of listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `router.listen` and `router.tls_listen`: reachable from `space.trusted`, serves
    /// external apps only.
    External,
    /// `router.internal_listen`: reachable from `space.internal`, serves every app.
    Internal,
}

impl Listener {
    /// `"external"` or `"internal"`, as operators write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::External => "external",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a connection or request was refused. Carries only what the message needs (addresses,
/// counts, the app), so refusing costs no formatting until someone logs it.
#[derive(Debug, Clone)]
pub enum Denied {
    /// L4, external listener: the client is outside `space.trusted`.
    NotTrusted {
        /// The client, canonical.
        client: IpAddr,
        /// How many CIDRs `space.trusted` holds.
        ranges: usize,
    },
    /// L4: the client is in `space.blocked` (which wins over trusted and internal).
    Blocked {
        /// The client, canonical.
        client: IpAddr,
    },
    /// L4, internal listener: the peer is outside `space.internal`.
    NotInternal {
        /// The peer, canonical.
        client: IpAddr,
        /// How many CIDRs `space.internal` holds.
        ranges: usize,
    },
    /// L4, external listener with `proxy_protocol = true`: the peer may not send a PROXY
    /// header, so nothing it says about the client can be believed.
    UntrustedProxy {
        /// The peer, canonical.
        peer: IpAddr,
        /// How many CIDRs `router.trusted_proxies` holds.
        ranges: usize,
    },
    /// L7 `S11`: no app for this host on this listener (unknown host, or an internal app
    /// asked for on an external listener: the same answer, so nothing leaks).
    NoApp {
        /// The Host (or `:authority`) as the client sent it, cut to 255 bytes.
        host: Box<str>,
        /// Where it was asked.
        listener: Listener,
    },
    /// L7 `S10`: the app has `trusted` ranges and the client is outside them.
    AppNotTrusted {
        /// The client IP the decision was made on (after the trusted-proxy walk), canonical.
        client: IpAddr,
        /// The app's index in `policy.apps`.
        index: usize,
        /// The app (for its name in messages; a refcount, not a copy).
        app: Arc<App>,
        /// How many CIDRs the app's `trusted` holds.
        ranges: usize,
    },
    /// L7 `S10`: the app has `trusted` ranges and the client behind trusted proxies is
    /// unknown (an `X-Forwarded-For` entry where the walk needed an address is none).
    ClientUnknown {
        /// The last trusted address the walk reached (the peer or a trusted hop).
        via: IpAddr,
        /// The app's index in `policy.apps`.
        index: usize,
        /// The app (for its name in messages).
        app: Arc<App>,
    },
    /// L7 `S10`: the client as derived behind trusted proxies is in `space.blocked`.
    ClientBlocked {
        /// The client, canonical.
        client: IpAddr,
    },
}

impl Denied {
    /// The Heroku-style code: `S10`/`S11` for L7 refusals, `None` at L4 (nothing is written).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::NoApp { .. } => Some("S11"),
            Self::AppNotTrusted { .. }
            | Self::ClientUnknown { .. }
            | Self::ClientBlocked { .. } => Some("S10"),
            Self::NotTrusted { .. }
            | Self::Blocked { .. }
            | Self::NotInternal { .. }
            | Self::UntrustedProxy { .. } => None,
        }
    }

    /// The HTTP status for L7 refusals (404 for `S11`, 403 for `S10`); `None` at L4, where
    /// the connection is closed without a word.
    pub fn status(&self) -> Option<u16> {
        match self.code() {
            Some("S11") => Some(404),
            Some(_) => Some(403),
            None => None,
        }
    }

    /// The short description the router log line carries as `desc` (the same text as
    /// `code::Code::desc` for `S10`/`S11`).
    pub fn desc(&self) -> &'static str {
        match self {
            Self::NoApp { .. } => "No such app",
            Self::AppNotTrusted { .. } | Self::ClientUnknown { .. } => {
                "Forbidden by app trusted ranges"
            }
            Self::ClientBlocked { .. } => "Client blocked",
            Self::NotTrusted { .. } => "Client not trusted",
            Self::Blocked { .. } => "Client blocked",
            Self::NotInternal { .. } => "Client not internal",
            Self::UntrustedProxy { .. } => "Untrusted proxy",
        }
    }

    /// Whether the refusal happens at L4 (before a byte is read; close, write nothing).
    pub fn is_l4(&self) -> bool {
        self.code().is_none()
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotTrusted { client, ranges } => write!(
                f,
                "denied at L4: {client} is not in space.trusted ({})",
                Ranges(*ranges)
            ),
            Self::Blocked { client } => write!(f, "denied at L4: {client} is in space.blocked"),
            Self::NotInternal { client, ranges } => write!(
                f,
                "denied at L4: {client} is not in space.internal ({})",
                Ranges(*ranges)
            ),
            Self::UntrustedProxy { peer, ranges } => write!(
                f,
                "denied at L4: {peer} is not in router.trusted_proxies ({}) and \
                 router.proxy_protocol requires a PROXY header from one",
                Ranges(*ranges)
            ),
            // `{:?}` quotes and escapes: the host is the client's text and must not be able
            // to forge log fields.
            Self::NoApp { host, listener } => write!(
                f,
                "denied at L7 (S11): no app for host {:?} on the {listener} listener",
                &**host
            ),
            Self::AppNotTrusted {
                client,
                app,
                ranges,
                ..
            } => write!(
                f,
                "denied at L7 (S10): {client} is not in app {}'s trusted ranges ({})",
                app.name,
                Ranges(*ranges)
            ),
            Self::ClientUnknown { via, app, .. } => write!(
                f,
                "denied at L7 (S10): the client behind trusted proxy {via} is unknown (an \
                 X-Forwarded-For entry is not an address) and app {} has trusted ranges",
                app.name
            ),
            Self::ClientBlocked { client } => {
                write!(f, "denied at L7 (S10): client {client} is in space.blocked")
            }
        }
    }
}

impl std::error::Error for Denied {}

/// "1 range" / "2 ranges".
struct Ranges(usize);

impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 range"),
            n => write!(f, "{n} ranges"),
        }
    }
}

/// The L4 check, right after accept and before any byte is read.
///
/// External listeners admit `space.trusted` minus `space.blocked`; internal listeners
/// admit `space.internal` minus `space.blocked` (blocked wins everywhere). `client` is
/// the peer, or the PROXY header's source once [`admit_proxy_peer`] has vouched for the
/// peer.
///
/// # Errors
/// [`Denied::Blocked`], [`Denied::NotTrusted`] or [`Denied::NotInternal`].
#[inline]
pub fn admit_l4(policy: &Policy, listener: Listener, client: IpAddr) -> Result<(), Denied> {
    // Canonical first: a dual-stack socket reports IPv4 clients as `::ffff:a.b.c.d`, which
    // must meet the IPv4 rules (IpSet folds too, but the message must name the IPv4 address).
    let client = canonical(client);
    let space = &policy.space;
    match listener {
        Listener::External => {
            if space.blocked.contains(client) {
                Err(Denied::Blocked { client })
            } else if space.trusted.contains(client) {
                Ok(())
            } else {
                Err(Denied::NotTrusted {
                    client,
                    ranges: space.trusted.source_len(),
                })
            }
        }
        Listener::Internal => {
            if space.blocked.contains(client) {
                Err(Denied::Blocked { client })
            } else if space.internal.contains(client) {
                Ok(())
            } else {
                Err(Denied::NotInternal {
                    client,
                    ranges: space.internal.source_len(),
                })
            }
        }
    }
}

/// Whether connections on this listener must begin with a PROXY header
/// (`router.proxy_protocol`, external listeners only).
#[inline]
pub fn expects_proxy_header(policy: &Policy, listener: Listener) -> bool {
    listener == Listener::External && policy.router.proxy_protocol
}

/// When [`expects_proxy_header`]: whether `peer` may send one at all. Call it right after
/// accept, before reading the header; then run [`admit_l4`] on the header's source (or on
/// the peer for a v2 `LOCAL` header).
///
/// # Errors
/// [`Denied::UntrustedProxy`] when the peer is outside `router.trusted_proxies`.
#[inline]
pub fn admit_proxy_peer(policy: &Policy, peer: IpAddr) -> Result<(), Denied> {
    let peer = canonical(peer);
    let proxies = &policy.router.trusted_proxies;
    if proxies.contains(peer) {
        Ok(())
    } else {
        Err(Denied::UntrustedProxy {
            peer,
            ranges: proxies.source_len(),
        })
    }
}

/// The L7 check: the app index for `host` (Host header or `:authority`; port and case
/// ignored), if this listener serves it and `client` may reach it.
///
/// `client` is a known address; [`route_client`] takes the [`Client`] that [`client`]
/// derives, which may be unknown.
///
/// # Errors
/// [`Denied::ClientBlocked`] (`S10`) when `client` is in `space.blocked`;
/// [`Denied::NoApp`] (`S11`) for an unknown host or an internal app on an external
/// listener; [`Denied::AppNotTrusted`] (`S10`) when the app's `trusted` excludes `client`.
#[inline]
pub fn route(
    policy: &Policy,
    listener: Listener,
    host: &str,
    client: IpAddr,
) -> Result<usize, Denied> {
    route_client(policy, listener, host, Client::Known(client))
}

/// [`route`] for a client as [`client`] derives it: refuses a known client in
/// `space.blocked` first (a trusted proxy may have carried it past L4), and an unknown
/// one where the app has `trusted` ranges.
///
/// # Errors
/// As [`route`], and [`Denied::ClientBlocked`] or [`Denied::ClientUnknown`] (`S10`).
#[inline]
pub fn route_client(
    policy: &Policy,
    listener: Listener,
    host: &str,
    client: Client,
) -> Result<usize, Denied> {
    if let Client::Known(ip) = client {
        let ip = canonical(ip);
        if policy.space.blocked.contains(ip) {
            return Err(Denied::ClientBlocked { client: ip });
        }
    }
    let found = policy
        .hosts
        .lookup(host)
        .and_then(|i| policy.apps.get(i).map(|app| (i, app)));
    let Some((index, app)) = found else {
        return Err(no_app(host, listener));
    };
    if listener == Listener::External && app.routing != Routing::External {
        // Same answer as an unknown host: an outsider must not learn internal names.
        return Err(no_app(host, listener));
    }
    if let Some(trusted) = &app.trusted {
        let client = match client {
            Client::Known(ip) => canonical(ip),
            Client::Unknown { via } => {
                return Err(Denied::ClientUnknown {
                    via,
                    index,
                    app: Arc::clone(app),
                });
            }
        };
        if !trusted.contains(client) {
            return Err(Denied::AppNotTrusted {
                client,
                index,
                app: Arc::clone(app),
                ranges: trusted.source_len(),
            });
        }
    }
    Ok(index)
}

/// The longest prefix of `host` of at most 255 bytes, cut on a character boundary, so a
/// hostile header cannot make a refusal allocate much.
fn no_app(host: &str, listener: Listener) -> Denied {
    let mut end = host.len().min(255);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    Denied::NoApp {
        host: host[..end].into(),
        listener,
    }
}

/// A peer's socket address, canonical: what the accept loop hands to [`admit_l4`].
#[inline]
pub fn peer_ip(addr: SocketAddr) -> IpAddr {
    canonical(addr.ip())
}

#[cfg(test)]
pub(crate) mod tests;
