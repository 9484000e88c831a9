use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use http::{HeaderMap, HeaderValue};
use spaced_config::Policy;

use super::*;

/// A policy from TOML text; files named in it are read from `files`.
pub(crate) fn policy_with(toml: &str, files: &[(&str, Vec<u8>)]) -> Policy {
    let read = |p: &Path| {
        files
            .iter()
            .find(|(name, _)| Path::new(name) == p || p.ends_with(name))
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    let source = spaced_config::Source {
        name: "test.toml",
        dir: Path::new("."),
        read: &read,
    };
    match spaced_config::parse(toml.as_bytes(), &source) {
        Ok(p) => p,
        Err(e) => panic!("test policy does not parse: {e}"),
    }
}

pub(crate) fn policy(toml: &str) -> Policy {
    policy_with(toml, &[])
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) const BASE: &str = r#"
[space]
name = "t"
internal = ["10.0.0.0/16"]
trusted = ["203.0.113.0/24", "2001:db8::/32"]
blocked = ["203.0.113.66"]

[router]
listen = ["127.0.0.1:0"]
internal_listen = ["10.0.0.2:80"]
trusted_proxies = ["10.9.0.0/16", "192.0.2.1", "2001:db8:ffff::/48"]

[[app]]
name = "api"
hosts = ["api.example.com", "*.api.example.com"]
trusted = ["198.51.100.0/24"]
[[app.dyno]]
process = "web"
addr = "10.0.1.5:5000"
[[app.dyno]]
process = "web"
addr = "10.0.1.6:5000"
[[app.dyno]]
process = "worker"
addr = "10.0.1.7:5000"

[[app]]
name = "web"
hosts = ["www.example.com"]

[[app]]
name = "secret"
hosts = ["secret.example.com"]
routing = "internal"
"#;

fn xff(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
    }
    h
}

// === admit_l4 ===

#[test]
fn external_admits_trusted_only() {
    let p = policy(BASE);
    assert!(admit_l4(&p, Listener::External, ip("203.0.113.9")).is_ok());
    assert!(admit_l4(&p, Listener::External, ip("2001:db8::9")).is_ok());
    let e = admit_l4(&p, Listener::External, ip("198.51.100.9")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "denied at L4: 198.51.100.9 is not in space.trusted (2 ranges)"
    );
    assert_eq!(e.code(), None);
    assert_eq!(e.status(), None);
    assert!(e.is_l4());
}

#[test]
fn blocked_wins_over_trusted() {
    let p = policy(BASE);
    let e = admit_l4(&p, Listener::External, ip("203.0.113.66")).unwrap_err();
    assert!(matches!(e, Denied::Blocked { .. }));
    assert_eq!(
        e.to_string(),
        "denied at L4: 203.0.113.66 is in space.blocked"
    );
    // Blocked but not trusted either: still reported as blocked (the stronger rule).
    let p = policy(&BASE.replace(r#"blocked = ["203.0.113.66"]"#, r#"blocked = ["8.8.8.8"]"#));
    let e = admit_l4(&p, Listener::External, ip("8.8.8.8")).unwrap_err();
    assert_eq!(e.to_string(), "denied at L4: 8.8.8.8 is in space.blocked");
}

#[test]
fn mapped_addresses_are_folded_in_decisions_and_messages() {
    let p = policy(BASE);
    assert!(admit_l4(&p, Listener::External, ip("::ffff:203.0.113.9")).is_ok());
    let e = admit_l4(&p, Listener::External, ip("::ffff:203.0.113.66")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "denied at L4: 203.0.113.66 is in space.blocked"
    );
    let e = admit_l4(&p, Listener::Internal, ip("::ffff:192.0.2.200")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "denied at L4: 192.0.2.200 is not in space.internal (1 range)"
    );
    assert!(admit_l4(&p, Listener::Internal, ip("::ffff:10.0.3.4")).is_ok());
}

#[test]
fn internal_admits_internal_only() {
    let p = policy(BASE);
    assert!(admit_l4(&p, Listener::Internal, ip("10.0.200.1")).is_ok());
    // Trusted for external use is not inside the space.
    let e = admit_l4(&p, Listener::Internal, ip("203.0.113.9")).unwrap_err();
    assert!(matches!(e, Denied::NotInternal { ranges: 1, .. }));
    assert_eq!(
        e.to_string(),
        "denied at L4: 203.0.113.9 is not in space.internal (1 range)"
    );
    // Internal is not implicitly trusted on external listeners.
    assert!(admit_l4(&p, Listener::External, ip("10.0.0.1")).is_err());
}

#[test]
fn defaults_trust_everyone_and_nobody_is_internal() {
    let p = policy("[space]\nname = \"d\"\n");
    assert!(admit_l4(&p, Listener::External, ip("1.2.3.4")).is_ok());
    assert!(admit_l4(&p, Listener::External, ip("::1")).is_ok());
    let e = admit_l4(&p, Listener::Internal, ip("10.0.0.1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "denied at L4: 10.0.0.1 is not in space.internal (0 ranges)"
    );
}

#[test]
fn proxy_header_rules() {
    let p = policy(BASE);
    assert!(!expects_proxy_header(&p, Listener::External));
    let p = policy(&BASE.replace("[router]\n", "[router]\nproxy_protocol = true\n"));
    assert!(expects_proxy_header(&p, Listener::External));
    assert!(!expects_proxy_header(&p, Listener::Internal));
    assert!(admit_proxy_peer(&p, ip("10.9.1.1")).is_ok());
    assert!(admit_proxy_peer(&p, ip("::ffff:192.0.2.1")).is_ok());
    let e = admit_proxy_peer(&p, ip("203.0.113.9")).unwrap_err();
    assert!(e.is_l4());
    assert_eq!(
        e.to_string(),
        "denied at L4: 203.0.113.9 is not in router.trusted_proxies (3 ranges) and \
         router.proxy_protocol requires a PROXY header from one"
    );
}

// === route ===

#[test]
fn routes_by_host_exact_and_wildcard() {
    let p = policy(BASE);
    let c = ip("198.51.100.1");
    assert_eq!(
        route(&p, Listener::External, "api.example.com", c).unwrap(),
        0
    );
    assert_eq!(
        route(&p, Listener::External, "API.Example.COM:443", c).unwrap(),
        0
    );
    assert_eq!(
        route(&p, Listener::External, "v2.api.example.com", c).unwrap(),
        0
    );
    assert_eq!(
        route(&p, Listener::External, "www.example.com", c).unwrap(),
        1
    );
    assert_eq!(
        route(&p, Listener::Internal, "www.example.com.", c).unwrap(),
        1
    );
}

#[test]
fn unknown_host_is_s11() {
    let p = policy(BASE);
    for listener in [Listener::External, Listener::Internal] {
        let e = route(&p, listener, "x", ip("203.0.113.9")).unwrap_err();
        assert_eq!(e.code(), Some("S11"));
        assert_eq!(e.status(), Some(404));
        assert!(!e.is_l4());
        assert_eq!(
            e.to_string(),
            format!("denied at L7 (S11): no app for host \"x\" on the {listener} listener")
        );
    }
    assert!(route(&p, Listener::External, "", ip("203.0.113.9")).is_err());
    assert!(route(&p, Listener::External, "example.com", ip("203.0.113.9")).is_err());
}

#[test]
fn internal_app_looks_unknown_externally() {
    let p = policy(BASE);
    let c = ip("10.0.0.7");
    let hidden = route(&p, Listener::External, "secret.example.com", c).unwrap_err();
    let unknown = route(&p, Listener::External, "nothere.example.com", c).unwrap_err();
    assert_eq!(hidden.code(), unknown.code());
    assert_eq!(
        hidden.to_string().replace("secret", "nothere"),
        unknown.to_string()
    );
    assert_eq!(
        route(&p, Listener::Internal, "secret.example.com", c).unwrap(),
        2
    );
}

#[test]
fn app_trusted_is_s10() {
    let p = policy(BASE);
    let e = route(&p, Listener::External, "api.example.com", ip("203.0.113.9")).unwrap_err();
    assert_eq!(e.code(), Some("S10"));
    assert_eq!(e.status(), Some(403));
    assert_eq!(
        e.to_string(),
        "denied at L7 (S10): 203.0.113.9 is not in app api's trusted ranges (1 range)"
    );
    match e {
        Denied::AppNotTrusted { index, app, .. } => {
            assert_eq!(index, 0);
            assert_eq!(app.name, "api");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Internal listeners check app trust too.
    assert!(route(&p, Listener::Internal, "api.example.com", ip("10.0.0.1")).is_err());
    // Mapped client folded.
    assert_eq!(
        route(
            &p,
            Listener::External,
            "api.example.com",
            ip("::ffff:198.51.100.3")
        )
        .unwrap(),
        0
    );
    let e = route(
        &p,
        Listener::External,
        "api.example.com",
        ip("::ffff:1.2.3.4"),
    )
    .unwrap_err();
    assert!(e.to_string().contains(" 1.2.3.4 is not in app api's"));
}

#[test]
fn hostile_hosts_are_escaped_and_bounded() {
    let p = policy(BASE);
    let e = route(&p, Listener::External, "a\" at=info x=\"\n", ip("1.1.1.1")).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains('\n'));
    assert!(text.contains(r#"host "a\" at=info x=\"\n""#), "{text}");
    let long = "é".repeat(400);
    match route(&p, Listener::External, &long, ip("1.1.1.1")).unwrap_err() {
        Denied::NoApp { host, .. } => assert!(host.len() <= 255 && host.len() >= 250),
        other => panic!("unexpected {other:?}"),
    }
}

// === client_ip ===

#[test]
fn untrusted_peer_xff_is_ignored() {
    let p = policy(BASE);
    let h = xff(&["198.51.100.1"]);
    assert_eq!(client_ip(&p, ip("203.0.113.9"), &h), ip("203.0.113.9"));
    assert_eq!(
        client_ip(&p, ip("::ffff:203.0.113.9"), &h),
        ip("203.0.113.9")
    );
}

#[test]
fn trusted_peer_walks_from_the_right() {
    let p = policy(BASE);
    let peer = ip("10.9.0.1");
    assert_eq!(client_ip(&p, peer, &HeaderMap::new()), peer);
    assert_eq!(
        client_ip(&p, peer, &xff(&["198.51.100.1"])),
        ip("198.51.100.1")
    );
    // A client-supplied left part is ignored: the right-most untrusted entry wins.
    let h = xff(&["198.51.100.1, 203.0.113.9, 10.9.3.3"]);
    assert_eq!(client_ip(&p, peer, &h), ip("203.0.113.9"));
    // Several headers are one list, in order.
    let h = xff(&["198.51.100.1", "203.0.113.9,10.9.3.3", " 192.0.2.1 "]);
    assert_eq!(client_ip(&p, peer, &h), ip("203.0.113.9"));
    // Every entry trusted: the left-most.
    let h = xff(&["10.9.0.5, 192.0.2.1", "10.9.7.7"]);
    assert_eq!(client_ip(&p, peer, &h), ip("10.9.0.5"));
    // Mapped entries and peers fold.
    let h = xff(&["::ffff:198.51.100.4, ::ffff:10.9.0.3"]);
    assert_eq!(client_ip(&p, ip("::ffff:10.9.0.1"), &h), ip("198.51.100.4"));
    // IPv6 proxies.
    let h = xff(&["2001:db8::5, 2001:db8:ffff::1"]);
    assert_eq!(client_ip(&p, ip("2001:db8:ffff::2"), &h), ip("2001:db8::5"));
}

#[test]
fn garbage_stops_the_walk() {
    let p = policy(BASE);
    let peer = ip("10.9.0.1");
    // Right-most entry unparsable: nothing believable, the peer.
    assert_eq!(client_ip(&p, peer, &xff(&["198.51.100.1, unknown"])), peer);
    assert_eq!(client_ip(&p, peer, &xff(&["198.51.100.1,"])), peer);
    assert_eq!(client_ip(&p, peer, &xff(&[""])), peer);
    // Garbage behind a trusted hop: that hop, never anything left of the garbage.
    let h = xff(&["198.51.100.1, _hidden, 10.9.0.9"]);
    assert_eq!(client_ip(&p, peer, &h), ip("10.9.0.9"));
    let h = xff(&["198.51.100.1, , 10.9.0.9"]);
    assert_eq!(client_ip(&p, peer, &h), ip("10.9.0.9"));
    // A non-ASCII header value is garbage too.
    let mut h = xff(&["198.51.100.1"]);
    h.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap(),
    );
    assert_eq!(client_ip(&p, peer, &h), peer);
    // Over-long entries.
    let h = xff(&[&format!("198.51.100.1, {}", "1".repeat(100))]);
    assert_eq!(client_ip(&p, peer, &h), peer);
}

/// Issue 19: an entry the walk cannot read where it needs an address makes the client
/// unknown, never the proxy (whose address an app's `trusted` may cover); garbage left of
/// the client changes nothing.
#[test]
fn an_unreadable_entry_makes_the_client_unknown() {
    let p = policy(BASE);
    let peer = ip("10.9.0.1");
    let unknown = |via| Client::Unknown { via: ip(via) };
    let known = |c| Client::Known(ip(c));
    let walk = |values: &[&[u8]]| client_from(&p, peer, values.iter().copied());
    assert_eq!(walk(&["é, 203.0.113.9".as_bytes()]), known("203.0.113.9"));
    assert_eq!(
        walk(&[b"\xff, 203.0.113.9, 10.9.3.3"]),
        known("203.0.113.9")
    );
    assert_eq!(walk(&["é".as_bytes()]), unknown("10.9.0.1"));
    assert_eq!(walk(&[b"203.0.113.9, \xff1.2.3.4"]), unknown("10.9.0.1"));
    assert_eq!(
        walk(&[b"203.0.113.9, unknown, 10.9.0.9"]),
        unknown("10.9.0.9")
    );
    assert_eq!(walk(&[b"203.0.113.9,"]), unknown("10.9.0.1"));
    assert_eq!(walk(&[b""]), unknown("10.9.0.1"));
    // Lines are one list: garbage on an earlier line left of the client is ignored.
    assert_eq!(walk(&[b"junk", b"203.0.113.9"]), known("203.0.113.9"));
    assert_eq!(walk(&[b"203.0.113.9", b"junk"]), unknown("10.9.0.1"));
    assert_eq!(walk(&[]), known("10.9.0.1"));
    // From a peer that is no proxy, the header is not read at all.
    assert_eq!(
        client_from(&p, ip("203.0.113.9"), [&b"junk"[..]].into_iter()),
        known("203.0.113.9")
    );
    // An unknown client is refused by an app with `trusted`, served by one without.
    let c = walk(&["é".as_bytes()]);
    assert!(matches!(
        route_client(&p, Listener::External, "api.example.com", c),
        Err(Denied::ClientUnknown { .. })
    ));
    assert_eq!(
        route_client(&p, Listener::External, "www.example.com", c).unwrap(),
        1
    );
}

/// `space.blocked` applies to the client behind a trusted proxy (L7) and on internal
/// listeners (L4).
#[test]
fn blocked_applies_to_the_derived_client_and_internal_listeners() {
    let p = policy(BASE);
    let c = client_from(&p, ip("10.9.0.1"), [&b"203.0.113.66"[..]].into_iter());
    let refused = route_client(&p, Listener::External, "www.example.com", c).unwrap_err();
    assert!(matches!(refused, Denied::ClientBlocked { .. }), "{refused}");
    assert_eq!(refused.status(), Some(403));
    let internal = policy(&BASE.replace(
        r#"blocked = ["203.0.113.66"]"#,
        r#"blocked = ["203.0.113.66", "10.0.0.9"]"#,
    ));
    assert!(matches!(
        admit_l4(&internal, Listener::Internal, ip("10.0.0.9")),
        Err(Denied::Blocked { .. })
    ));
    assert!(admit_l4(&internal, Listener::Internal, ip("10.0.0.8")).is_ok());
}

#[test]
fn entries_with_ports() {
    let cases = [
        ("1.2.3.4", Some("1.2.3.4")),
        (" 1.2.3.4:5678 ", Some("1.2.3.4")),
        ("[::1]:80", Some("::1")),
        ("[2001:db8::1]", Some("2001:db8::1")),
        ("2001:db8::1", Some("2001:db8::1")),
        ("::ffff:1.2.3.4", Some("1.2.3.4")),
        ("[::ffff:1.2.3.4]:9", Some("1.2.3.4")),
        ("\t10.0.0.1\t", Some("10.0.0.1")),
        ("1.2.3.4:", None),
        ("1.2.3.4:99999", None),
        ("[::1", None),
        ("::1]", None),
        ("fe80::1%eth0", None),
        ("unknown", None),
        ("_obf", None),
        ("", None),
        ("1.2.3", None),
        ("01.2.3.4", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_forwarded_entry(text), want.map(ip), "{text:?}");
    }
}

#[test]
fn a_trusted_proxy_xff_passes_the_app_check_and_spoofing_does_not() {
    let p = policy(BASE);
    let h = xff(&["198.51.100.7"]);
    let spoofer = client_ip(&p, ip("203.0.113.9"), &h);
    assert!(route(&p, Listener::External, "api.example.com", spoofer).is_err());
    let proxied = client_ip(&p, ip("192.0.2.1"), &h);
    assert_eq!(
        route(&p, Listener::External, "api.example.com", proxied).unwrap(),
        0
    );
}

#[test]
fn peer_ip_folds() {
    let sa: SocketAddr = "[::ffff:127.0.0.2]:80".parse().unwrap();
    assert_eq!(peer_ip(sa), ip("127.0.0.2"));
}

// === properties ===

mod props {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn outsider() -> impl Strategy<Value = IpAddr> {
        any::<u32>()
            .prop_map(|x| IpAddr::V4(Ipv4Addr::from(x)))
            .prop_filter("not a trusted proxy", |ip| {
                !policy(BASE).router.trusted_proxies.contains(*ip)
            })
    }

    fn proxy() -> impl Strategy<Value = IpAddr> {
        any::<u16>().prop_map(|x| IpAddr::V4(Ipv4Addr::new(10, 9, (x >> 8) as u8, x as u8)))
    }

    proptest! {
        #[test]
        fn entries_never_panic_and_fold(s in ".{0,80}") {
            if let Some(ip) = parse_forwarded_entry(&s) {
                prop_assert_eq!(ip, canonical(ip));
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(values in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..60), 0..4)) {
            let p = policy(BASE);
            let mut h = HeaderMap::new();
            for v in values {
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    h.append("x-forwarded-for", v);
                }
            }
            let got = client_ip(&p, ip("10.9.0.1"), &h);
            prop_assert_eq!(got, canonical(got));
        }

        /// Whatever the client writes to the left, the answer is the address the first
        /// trusted hop saw.
        #[test]
        fn the_client_cannot_choose_its_address(
            forged in proptest::collection::vec("[0-9a-f.:\\[\\] ]{0,20}", 0..4),
            client in outsider(),
            hops in proptest::collection::vec(proxy(), 0..4),
            peer in proxy(),
        ) {
            let p = policy(BASE);
            let mut list: Vec<String> = forged;
            list.push(client.to_string());
            list.extend(hops.iter().map(ToString::to_string));
            let h = xff(&[&list.join(", ")]);
            prop_assert_eq!(client_ip(&p, peer, &h), client);
            // The same header from the client itself is ignored.
            prop_assert_eq!(client_ip(&p, client, &h), client);
        }
    }
}
