use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn fwd<'a>(peer: &'a HeaderValue, port: &'a HeaderValue, id: &'a HeaderValue) -> Forward<'a> {
    Forward {
        peer,
        https: false,
        port,
        start_ms: 1234,
        request_id: id,
        upgrade: false,
    }
}

#[test]
fn request_id_rule() {
    assert!(valid_request_id(b"abcdefghij0123456789"));
    assert!(!valid_request_id(b"abcdefghij012345678"));
    assert!(valid_request_id(&[b'a'; 200]));
    assert!(!valid_request_id(&[b'a'; 201]));
    assert!(valid_request_id(b"AZaz09+/=-AZaz09+/=-"));
    assert!(!valid_request_id(b"abcdefghij0123456789_"));
    let kept = map(&[("x-request-id", "abcdefghij0123456789")]);
    assert_eq!(request_id(&kept), "abcdefghij0123456789");
    let replaced = request_id(&map(&[("x-request-id", "short")]));
    assert_eq!(replaced.len(), 36);
    assert_eq!(replaced.as_bytes()[14], b'4');
}

#[test]
fn limits() {
    assert_eq!(check_limits(10, &map(&[("host", "a")])), Ok(()));
    assert_eq!(
        check_limits(MAX_LINE + 1, &HeaderMap::new()),
        Err(Malformed::RequestLine)
    );
    let long = "x".repeat(MAX_LINE - 4);
    assert_eq!(check_limits(10, &map(&[("ab", &long)])), Ok(()));
    let long = "x".repeat(MAX_LINE - 3);
    assert_eq!(
        check_limits(10, &map(&[("ab", &long)])),
        Err(Malformed::HeaderLine)
    );
    assert_eq!(
        check_limits(10, &map(&[("host", "a"), ("host", "b")])),
        Err(Malformed::DuplicateHost)
    );
    assert_eq!(
        check_limits(
            10,
            &map(&[("content-length", "3"), ("content-length", "4")])
        ),
        Err(Malformed::ContentLength)
    );
    assert_eq!(
        check_limits(
            10,
            &map(&[("content-length", "3"), ("content-length", "3")])
        ),
        Ok(())
    );
    assert_eq!(
        check_limits(10, &map(&[("content-length", "-3")])),
        Err(Malformed::ContentLength)
    );
    let mut many = HeaderMap::new();
    for i in 0..=MAX_HEADERS {
        many.append(
            HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
    }
    assert_eq!(check_limits(10, &many), Err(Malformed::TooManyHeaders));
}

#[test]
fn expect_classes() {
    assert_eq!(expect(&HeaderMap::new()), Expect::None);
    assert_eq!(
        expect(&map(&[("expect", "100-Continue")])),
        Expect::Continue
    );
    assert_eq!(expect(&map(&[("expect", "200-ok")])), Expect::Unsupported);
}

#[test]
fn forwarding_headers() {
    let peer = HeaderValue::from_static("127.0.0.9");
    let port = HeaderValue::from_static("8080");
    let id = HeaderValue::from_static("abcdefghij0123456789");
    let mut h = map(&[
        ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
        ("x-forwarded-for", "3.3.3.3"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "1"),
        ("via", "1.0 fred"),
        ("host", "a"),
    ]);
    rewrite_request(&mut h, &fwd(&peer, &port, &id));
    assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.9");
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], "8080");
    assert_eq!(h["x-request-start"], "1234");
    assert_eq!(h["x-request-id"], "abcdefghij0123456789");
    assert_eq!(h["via"], "1.0 fred, 1.1 spaced");
    assert_eq!(h["host"], "a");

    let mut h = HeaderMap::new();
    rewrite_request(&mut h, &fwd(&peer, &port, &id));
    assert_eq!(h["x-forwarded-for"], "127.0.0.9");
    assert_eq!(h["via"], "1.1 spaced");
}

#[test]
fn hop_by_hop_removed() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret"),
        ("x-secret", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "x"),
        ("proxy-connection", "x"),
        ("x-kept", "1"),
    ]);
    strip_hop_by_hop(&mut h, false);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, vec!["x-kept"]);
}

#[test]
fn upgrade_kept_on_upgrades() {
    let mut h = map(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("expect", "x"),
    ]);
    assert!(is_upgrade(&h));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["connection"], "upgrade");
    assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
}

#[test]
fn response_gets_request_id() {
    let id = HeaderValue::from_static("abcdefghij0123456789");
    let mut h = map(&[
        ("connection", "close"),
        ("x-request-id", "other"),
        ("content-length", "5"),
    ]);
    rewrite_response(&mut h, &id, false);
    assert_eq!(h["x-request-id"], "abcdefghij0123456789");
    assert!(!h.contains_key("connection"));
    assert_eq!(h["content-length"], "5");
}

#[test]
fn last_request_of_a_connection() {
    use http::Version;
    let none = map(&[]);
    assert!(!closes_connection(Version::HTTP_11, &none));
    assert!(closes_connection(Version::HTTP_10, &none));
    assert!(closes_connection(
        Version::HTTP_11,
        &map(&[("connection", "TE, Close")])
    ));
    assert!(!closes_connection(
        Version::HTTP_10,
        &map(&[("connection", "Keep-Alive")])
    ));
    assert!(!closes_connection(
        Version::HTTP_11,
        &map(&[("connection", "closed, upgrade")])
    ));
    assert!(!closes_connection(
        Version::HTTP_2,
        &map(&[("connection", "close")])
    ));
}

#[test]
fn host_syntax() {
    for ok in [
        "api.test",
        "API.test.",
        "api.test:8080",
        "api.test:",
        "127.0.0.1:80",
        "[::1]",
        "[::ffff:127.0.0.1]:443",
        "xn--bcher-kva.test",
        "",
    ] {
        assert!(valid_host(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "api.test:abc",
        "api.test:80:80",
        "a:b",
        "api.test/x",
        "api test",
        "api.test\\",
        "[::1",
        "[::1]x",
        "[::1]:8a",
        "[]",
        "[zz]",
        "api.test:-1",
        "ä.test",
    ] {
        assert!(!valid_host(bad.as_bytes()), "{bad}");
    }
    let h = map(&[("host", "api.test:abc")]);
    assert!(matches!(check_limits(10, &h), Err(Malformed::InvalidHost)));
}
