//! `spaced explain`: what the router would decide for a client, and the exact rule, from
//! the same functions the data path calls ([`crate::access`]), so the answer cannot drift
//! from what a real connection gets.

use std::fmt;
use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use spaced_config::{Policy, canonical};

use crate::access::{self, Denied, Listener};

/// One hypothetical request.
#[derive(Debug, Clone)]
pub struct Query {
    /// The listener it arrives on.
    pub listener: Listener,
    /// The client: the peer itself, or the PROXY header's source when `peer` is a trusted
    /// proxy and `router.proxy_protocol` is on.
    pub client: IpAddr,
    /// What opens the TCP connection; `None` means the client itself.
    pub peer: Option<IpAddr>,
    /// The `X-Forwarded-For` header, as sent (`"a, b"`).
    pub xff: Option<String>,
    /// The Host header.
    pub host: String,
}

/// The decision for a [`Query`]; `Display` gives the decision and the rule.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Whether the request would reach a dyno (or get `H14` for lack of one).
    pub allowed: bool,
    /// The refusal, when not allowed.
    pub denied: Option<Denied>,
    /// The app chosen, when allowed.
    pub app: Option<String>,
    /// How many `web` dynos the app has, when allowed.
    pub web_dynos: usize,
    /// The address checked at L4 (the peer, or the PROXY source).
    pub l4_client: IpAddr,
    /// The address the per-app check used (after the `X-Forwarded-For` walk), once L4
    /// passed; `None` too when the walk found the client unknown.
    pub client: Option<IpAddr>,
    /// Notes on how the addresses were derived, in order.
    notes: Vec<Note>,
}

#[derive(Debug, Clone)]
enum Note {
    /// The PROXY header's source was used as the client.
    ProxySource { peer: IpAddr, client: IpAddr },
    /// `--client` differs from `--peer`, but nothing would carry it to the router.
    ClientIgnored { client: IpAddr, peer: IpAddr },
    /// The client came from X-Forwarded-For through trusted proxies.
    Forwarded { from: IpAddr, client: IpAddr },
    /// X-Forwarded-For was sent by a peer that is not a trusted proxy.
    ForwardedIgnored { from: IpAddr },
    /// The X-Forwarded-For text is not a valid header value.
    ForwardedInvalid,
    /// The walk met an entry that is not an address: the client is unknown.
    ForwardedUnknown { from: IpAddr, via: IpAddr },
}

/// What the router would do with `q` under `policy`.
pub fn explain(policy: &Policy, q: &Query) -> Explanation {
    let client = canonical(q.client);
    let peer = canonical(q.peer.unwrap_or(client));
    let mut notes = Vec::new();
    let out = |l4_client, denied: Denied, notes: Vec<Note>| Explanation {
        allowed: false,
        denied: Some(denied),
        app: None,
        web_dynos: 0,
        l4_client,
        client: None,
        notes,
    };

    // L4: which address is checked depends on who may speak PROXY.
    let l4_client = if access::expects_proxy_header(policy, q.listener) {
        if let Err(d) = access::admit_proxy_peer(policy, peer) {
            return out(peer, d, notes);
        }
        if client != peer {
            notes.push(Note::ProxySource { peer, client });
        }
        client
    } else {
        if client != peer {
            notes.push(Note::ClientIgnored { client, peer });
        }
        peer
    };
    if let Err(d) = access::admit_l4(policy, q.listener, l4_client) {
        return out(l4_client, d, notes);
    }

    // L7: the client for per-app checks, through trusted proxies.
    let mut headers = HeaderMap::new();
    if let Some(xff) = &q.xff {
        match HeaderValue::from_str(xff) {
            Ok(v) => {
                headers.insert("x-forwarded-for", v);
            }
            Err(_) => notes.push(Note::ForwardedInvalid),
        }
    }
    let derived = access::client(policy, l4_client, &headers);
    let l7_client = derived.addr();
    if let access::Client::Unknown { via } = derived {
        notes.push(Note::ForwardedUnknown {
            from: l4_client,
            via,
        });
    } else if headers.contains_key("x-forwarded-for") {
        if l7_client != l4_client {
            notes.push(Note::Forwarded {
                from: l4_client,
                client: l7_client,
            });
        } else if !policy.router.trusted_proxies.contains(l4_client) {
            notes.push(Note::ForwardedIgnored { from: l4_client });
        }
    }
    match access::route_client(policy, q.listener, &q.host, derived) {
        Ok(i) => {
            let app = &policy.apps[i];
            Explanation {
                allowed: true,
                denied: None,
                app: Some(app.name.clone()),
                web_dynos: app.web.len(),
                l4_client,
                client: derived.known(),
                notes,
            }
        }
        Err(d) => {
            let mut e = out(l4_client, d, notes);
            e.client = derived.known();
            e
        }
    }
}

impl Explanation {
    /// The code a refused request gets (`S10`, `S11`), `None` at L4 or when allowed.
    pub fn code(&self) -> Option<&'static str> {
        self.denied.as_ref().and_then(Denied::code)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.denied, &self.app) {
            (Some(d), _) => write!(f, "{d}")?,
            (None, Some(app)) => {
                write!(f, "allowed: app {app}, web dynos {}", self.web_dynos)?;
                if self.web_dynos == 0 {
                    f.write_str(" (requests get 503 H14)")?;
                }
            }
            (None, None) => f.write_str("allowed")?,
        }
        for note in &self.notes {
            f.write_str("; ")?;
            match note {
                Note::ProxySource { peer, client } => write!(
                    f,
                    "client {client} from the PROXY header of trusted proxy {peer}"
                )?,
                Note::ClientIgnored { client, peer } => write!(
                    f,
                    "--client {client} ignored: no PROXY header is read from {peer}, \
                     the router sees the peer"
                )?,
                Note::Forwarded { from, client } => write!(
                    f,
                    "client {client} derived from X-Forwarded-For (peer {from} is in \
                     router.trusted_proxies)"
                )?,
                Note::ForwardedIgnored { from } => write!(
                    f,
                    "X-Forwarded-For ignored: {from} is not in router.trusted_proxies"
                )?,
                Note::ForwardedInvalid => {
                    f.write_str("X-Forwarded-For ignored: not a valid header value")?
                }
                Note::ForwardedUnknown { from, via } => write!(
                    f,
                    "client unknown: X-Forwarded-For (peer {from} is in \
                     router.trusted_proxies) has an entry that is not an address right of \
                     the client, reached from {via}; apps with trusted ranges refuse it"
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
