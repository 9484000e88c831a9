//! Who a client is, decided from the policy alone (pure): inside the space or not, and
//! which app, by credentials or else by its address matching a dyno's.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use spaced_config::{App, Policy};

use crate::pin::PinKey;

/// A user name and password, as bytes.
pub type UserPass = (Vec<u8>, Vec<u8>);

/// A client the gateway serves.
#[derive(Debug, Clone)]
pub enum Client {
    /// A known app (by credentials or by dyno address).
    App(Arc<App>),
    /// An in-space client that is no app: pinned by its address, logged with `app=` empty.
    Anonymous(IpAddr),
}

impl Client {
    /// The app name, or `""`.
    pub fn app_name(&self) -> &str {
        match self {
            Self::App(app) => &app.name,
            Self::Anonymous(_) => "",
        }
    }

    /// What the client is pinned by.
    pub fn pin_key(&self) -> PinKey<'_> {
        match self {
            Self::App(app) => PinKey::App(&app.name),
            Self::Anonymous(ip) => PinKey::Addr(*ip),
        }
    }
}

/// Why a client is not served; the answer is given before any dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client address is not in `space.internal`.
    #[error("client is outside the space")]
    Outside,
    /// Credentials were given and match no app's `egress_token` (or are unreadable).
    #[error("wrong egress credentials")]
    BadCredentials,
    /// No credentials, the address is no dyno's, and apps in this space use credentials.
    #[error("egress credentials required")]
    MissingCredentials,
}

impl Refusal {
    /// The HTTP status: 403 outside, 407 for credentials.
    pub fn status(self) -> u16 {
        match self {
            Self::Outside => 403,
            Self::BadCredentials | Self::MissingCredentials => 407,
        }
    }

    /// The label used in metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Outside => "outside",
            Self::BadCredentials | Self::MissingCredentials => "auth",
        }
    }
}

/// Whether `peer` may use the gateway at all (checked at accept, before anything is read):
/// in `space.internal` and not in `space.blocked`, which wins over it.
pub fn is_internal(policy: &Policy, peer: IpAddr) -> bool {
    let peer = spaced_config::canonical(peer);
    policy.space.internal.contains(peer) && !policy.space.blocked.contains(peer)
}

/// Whether credentials are required of clients not known by address: when some app has
/// an `egress_token`. Without any token nobody could authenticate, so in-space clients are
/// served as anonymous ones (pinned by address).
pub fn credentials_required(policy: &Policy) -> bool {
    policy.apps.iter().any(|a| a.egress_token.is_some())
}

/// Decides who `peer` is. `creds` are the user and password the client presented, if any.
///
/// # Errors
/// Outside the space; wrong or missing credentials (missing ones only when required) from
/// an address that is no dyno's. A dyno's address is its app whatever credentials come
/// with it (BEHAVIOR.md "Precise answers": 407 only "when the client is not known by
/// address"): wrong ones cannot claim another app, and refusing would deny a client what
/// it gets by sending none.
pub fn identify(
    policy: &Policy,
    peer: IpAddr,
    creds: Option<(&[u8], &[u8])>,
) -> Result<Client, Refusal> {
    let peer = spaced_config::canonical(peer);
    if !is_internal(policy, peer) {
        return Err(Refusal::Outside);
    }
    if let Some(app) = creds.and_then(|(user, pass)| app_by_credentials(policy, user, pass)) {
        return Ok(Client::App(app.clone()));
    }
    if let Some(app) = policy.dyno_ips.get(&peer).and_then(|&i| policy.apps.get(i)) {
        return Ok(Client::App(app.clone()));
    }
    if creds.is_some() {
        return Err(Refusal::BadCredentials);
    }
    if credentials_required(policy) {
        return Err(Refusal::MissingCredentials);
    }
    Ok(Client::Anonymous(peer))
}

fn app_by_credentials<'p>(policy: &'p Policy, user: &[u8], pass: &[u8]) -> Option<&'p Arc<App>> {
    let app = policy.apps.iter().find(|a| a.name.as_bytes() == user)?;
    let token = app.egress_token.as_deref()?;
    constant_time_eq(token.as_bytes(), pass).then_some(app)
}

/// Compares without an early exit on the first differing byte, so the time taken does not
/// tell an attacker how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes a `Proxy-Authorization` value: `Some(Ok((user, pass)))` for `Basic base64(u:p)`.
///
/// # Errors
/// `Some(Err(BadCredentials))` for any other scheme or a value that does not decode.
pub fn basic_credentials(value: &[u8]) -> Result<UserPass, Refusal> {
    let value = value.trim_ascii();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
        None => return Err(Refusal::BadCredentials),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") || rest.len() > 1024 {
        return Err(Refusal::BadCredentials);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| Refusal::BadCredentials)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(Refusal::BadCredentials)?;
    Ok((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy(extra: &str) -> Policy {
        let text = format!("[space]\nname = \"t\"\ninternal = [\"10.0.0.0/16\"]\n{extra}\n");
        let src = spaced_config::Source {
            name: "t.toml",
            dir: Path::new("."),
            read: &|p| std::fs::read(p),
        };
        spaced_config::parse(text.as_bytes(), &src).unwrap()
    }

    const APPS: &str = r#"
[[app]]
name = "api"
egress_token = "s3cret"
[[app.dyno]]
addr = "10.0.1.5:5000"
[[app]]
name = "web"
[[app.dyno]]
addr = "10.0.1.6:5000"
"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn outside_first() {
        let p = policy(APPS);
        assert_eq!(
            identify(&p, ip("192.0.2.1"), Some((b"api", b"s3cret"))).unwrap_err(),
            Refusal::Outside
        );
        assert_eq!(Refusal::Outside.status(), 403);
    }

    #[test]
    fn by_credentials() {
        let p = policy(APPS);
        let c = identify(&p, ip("10.0.9.9"), Some((b"api", b"s3cret"))).unwrap();
        assert_eq!(c.app_name(), "api");
        let c = identify(&p, ip("::ffff:10.0.9.9"), Some((b"api", b"s3cret"))).unwrap();
        assert_eq!(c.app_name(), "api");
        for (u, pw) in [
            (&b"api"[..], &b"wrong"[..]),
            (b"api", b"s3cre"),
            (b"web", b""),
            (b"nope", b"s3cret"),
        ] {
            assert_eq!(
                identify(&p, ip("10.0.9.9"), Some((u, pw))).unwrap_err(),
                Refusal::BadCredentials
            );
        }
        // A dyno address is its app whatever credentials come with it; right ones win.
        let c = identify(&p, ip("10.0.1.5"), Some((b"api", b"x"))).unwrap();
        assert_eq!(c.app_name(), "api");
        assert_eq!(Refusal::BadCredentials.status(), 407);
    }

    #[test]
    fn by_address() {
        let p = policy(APPS);
        assert_eq!(
            identify(&p, ip("10.0.1.6"), None).unwrap().app_name(),
            "web"
        );
        assert_eq!(
            identify(&p, ip("10.0.1.5"), None).unwrap().app_name(),
            "api"
        );
        assert_eq!(
            identify(&p, ip("10.0.9.9"), None).unwrap_err(),
            Refusal::MissingCredentials
        );
    }

    #[test]
    fn anonymous_without_tokens() {
        let p = policy("");
        let c = identify(&p, ip("10.0.9.9"), None).unwrap();
        assert_eq!(c.app_name(), "");
        assert_eq!(c.pin_key(), PinKey::Addr(ip("10.0.9.9")));
        assert_eq!(
            identify(&p, ip("10.0.9.9"), Some((b"a", b"b"))).unwrap_err(),
            Refusal::BadCredentials
        );
    }

    #[test]
    fn basic_header() {
        assert_eq!(
            basic_credentials(b"Basic YXBpOnMzY3JldA=="),
            Ok((b"api".to_vec(), b"s3cret".to_vec()))
        );
        assert_eq!(
            basic_credentials(b"basic  YXBpOg== "),
            Ok((b"api".to_vec(), Vec::new()))
        );
        for bad in [&b"Bearer x"[..], b"Basic", b"Basic !!!", b"Basic YXBp", b""] {
            assert_eq!(
                basic_credentials(bad),
                Err(Refusal::BadCredentials),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn constant_time() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
