use super::*;
use crate::access::tests::{BASE, ip, policy};

fn q(listener: Listener, client: &str, host: &str) -> Query {
    Query {
        listener,
        client: ip(client),
        peer: None,
        xff: None,
        host: host.into(),
    }
}

fn say(p: &Policy, q: &Query) -> (bool, String) {
    let e = explain(p, q);
    (e.allowed, e.to_string())
}

#[test]
fn l4_denials_name_the_rule() {
    let p = policy(BASE);
    assert_eq!(
        say(&p, &q(Listener::External, "192.0.2.200", "www.example.com")),
        (
            false,
            "denied at L4: 192.0.2.200 is not in space.trusted (2 ranges)".into()
        )
    );
    assert_eq!(
        say(
            &p,
            &q(Listener::External, "::ffff:203.0.113.66", "www.example.com")
        ),
        (
            false,
            "denied at L4: 203.0.113.66 is in space.blocked".into()
        )
    );
    assert_eq!(
        say(&p, &q(Listener::Internal, "203.0.113.9", "www.example.com")),
        (
            false,
            "denied at L4: 203.0.113.9 is not in space.internal (1 range)".into()
        )
    );
    let e = explain(&p, &q(Listener::External, "192.0.2.200", "x"));
    assert_eq!(e.code(), None);
    assert_eq!(e.client, None);
}

#[test]
fn allowed_names_the_app_and_dynos() {
    let p = policy(BASE);
    let e = explain(&p, &q(Listener::External, "203.0.113.9", "www.example.com"));
    assert!(e.allowed);
    assert_eq!(e.app.as_deref(), Some("web"));
    assert_eq!(
        e.to_string(),
        "allowed: app web, web dynos 0 (requests get 503 H14)"
    );
    let (ok, text) = say(&p, &q(Listener::Internal, "10.0.0.9", "x.api.example.com"));
    assert!(!ok);
    assert_eq!(
        text,
        "denied at L7 (S10): 10.0.0.9 is not in app api's trusted ranges (1 range)"
    );
    assert_eq!(
        say(&p, &q(Listener::Internal, "10.0.0.9", "secret.example.com")),
        (
            true,
            "allowed: app secret, web dynos 0 (requests get 503 H14)".into()
        )
    );
}

#[test]
fn l7_denials() {
    let p = policy(BASE);
    assert_eq!(
        say(
            &p,
            &q(Listener::External, "203.0.113.9", "secret.example.com")
        ),
        (
            false,
            "denied at L7 (S11): no app for host \"secret.example.com\" on the external listener"
                .into()
        )
    );
    let e = explain(&p, &q(Listener::External, "203.0.113.9", "api.example.com"));
    assert_eq!(e.code(), Some("S10"));
    assert_eq!(e.client, Some(ip("203.0.113.9")));
}

#[test]
fn xff_through_a_trusted_proxy_is_shown() {
    let p = policy(&BASE.replace(
        r#"trusted = ["203.0.113.0/24", "2001:db8::/32"]"#,
        r#"trusted = ["203.0.113.0/24", "2001:db8::/32", "192.0.2.1"]"#,
    ));
    let mut query = q(Listener::External, "192.0.2.1", "api.example.com");
    query.xff = Some("6.6.6.6, 198.51.100.4".into());
    let e = explain(&p, &query);
    assert!(e.allowed, "{e}");
    assert_eq!(e.client, Some(ip("198.51.100.4")));
    assert_eq!(e.l4_client, ip("192.0.2.1"));
    assert_eq!(
        e.to_string(),
        "allowed: app api, web dynos 2; client 198.51.100.4 derived from X-Forwarded-For \
         (peer 192.0.2.1 is in router.trusted_proxies)"
    );
    // The same header from an untrusted peer is ignored.
    let mut query = q(Listener::External, "203.0.113.9", "api.example.com");
    query.xff = Some("198.51.100.4".into());
    let (ok, text) = say(&p, &query);
    assert!(!ok);
    assert_eq!(
        text,
        "denied at L7 (S10): 203.0.113.9 is not in app api's trusted ranges (1 range); \
         X-Forwarded-For ignored: 203.0.113.9 is not in router.trusted_proxies"
    );
    // A header value that cannot be sent.
    let mut query = q(Listener::External, "192.0.2.1", "api.example.com");
    query.xff = Some("198.51.100.4\n".into());
    let (ok, text) = say(&p, &query);
    assert!(!ok);
    assert!(
        text.ends_with("; X-Forwarded-For ignored: not a valid header value"),
        "{text}"
    );
}

#[test]
fn proxy_protocol_source_is_the_l4_client() {
    let p = policy(&BASE.replace("[router]\n", "[router]\nproxy_protocol = true\n"));
    // A trusted proxy relays a client from 198.51.100.4: L4 checks the header's source.
    let mut query = q(Listener::External, "198.51.100.4", "api.example.com");
    query.peer = Some(ip("10.9.0.1"));
    let e = explain(&p, &query);
    assert!(!e.allowed);
    assert_eq!(e.l4_client, ip("198.51.100.4"));
    assert_eq!(
        e.to_string(),
        "denied at L4: 198.51.100.4 is not in space.trusted (2 ranges); client 198.51.100.4 \
         from the PROXY header of trusted proxy 10.9.0.1"
    );
    let mut query = q(Listener::External, "203.0.113.9", "www.example.com");
    query.peer = Some(ip("10.9.0.1"));
    let (ok, text) = say(&p, &query);
    assert!(ok, "{text}");
    // A peer that is not a trusted proxy cannot speak PROXY at all.
    let (ok, text) = say(&p, &q(Listener::External, "203.0.113.9", "www.example.com"));
    assert!(!ok);
    assert!(text.starts_with("denied at L4: 203.0.113.9 is not in router.trusted_proxies"));
    // Internal listeners take no PROXY header.
    assert!(explain(&p, &q(Listener::Internal, "10.0.0.3", "www.example.com")).allowed);
}

#[test]
fn client_without_proxy_protocol_is_the_peer() {
    let p = policy(BASE);
    let mut query = q(Listener::External, "198.51.100.4", "www.example.com");
    query.peer = Some(ip("203.0.113.9"));
    let e = explain(&p, &query);
    assert!(e.allowed);
    assert_eq!(e.l4_client, ip("203.0.113.9"));
    assert_eq!(
        e.to_string(),
        "allowed: app web, web dynos 0 (requests get 503 H14); --client 198.51.100.4 \
         ignored: no PROXY header is read from 203.0.113.9, the router sees the peer"
    );
}
