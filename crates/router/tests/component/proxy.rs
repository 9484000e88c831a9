//! The proxy path end to end: headers both ways, spreading, retries, routing refusals.
#![allow(clippy::unwrap_used)]

use crate::harness::*;
use http::Request;
use http_body_util::Full;

async fn one_app(backends: &[&Backend], router_keys: &str) -> Router {
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    Router::start(&space(
        router_keys,
        &app("api", &["api.test", "*.api.test"], &addrs),
    ))
    .await
}

#[tokio::test]
async fn forwards_with_heroku_headers() {
    let b = Backend::start("one").await;
    let r = one_app(&[&b], "").await;
    let mut c = Client::connect(r.addr).await;
    let req = Request::get("/orders?id=1")
        .header("host", "API.test:8080")
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "1")
        .header("x-request-id", "abcdefghij0123456789+/=-")
        .header("via", "1.0 fred")
        .body(Full::default())
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let got = c.send(req).await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "one");
    assert_eq!(got.headers["x-request-id"], "abcdefghij0123456789+/=-");
    let seen = b.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/orders?id=1");
    assert_eq!(seen.headers["host"], "API.test:8080");
    assert_eq!(
        seen.headers["x-forwarded-for"],
        "203.0.113.9, 198.51.100.1, 127.0.0.1"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["x-forwarded-port"],
        r.addr.port().to_string().as_str()
    );
    assert_eq!(seen.headers["x-request-id"], "abcdefghij0123456789+/=-");
    assert_eq!(seen.headers["via"], "1.0 fred, 1.1 spaced");
    let start: u64 = seen.headers["x-request-start"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        start >= before && start < before + 60_000,
        "{start} vs {before}"
    );
}

#[tokio::test]
async fn request_id_replaced_when_invalid_and_same_both_ways() {
    let b = Backend::start("one").await;
    let r = one_app(&[&b], "").await;
    for bad in [
        "short",
        "has spaces in it but is long enough",
        &"a".repeat(201),
    ] {
        let mut c = Client::connect(r.addr).await;
        let req = Request::get("/")
            .header("host", "api.test")
            .header("x-request-id", bad)
            .body(Full::default())
            .unwrap();
        let got = c.send(req).await.unwrap();
        let id = got.headers["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "{id}");
        assert_ne!(id, bad);
        assert_eq!(b.last().headers["x-request-id"], id.as_str());
    }
    // None at all: a fresh id too.
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.headers["x-request-id"].len(), 36);
}

#[tokio::test]
async fn hop_by_hop_removed_both_ways() {
    let b = Backend::start("one").await;
    let r = one_app(&[&b], "").await;
    let mut c = Client::connect(r.addr).await;
    let req = Request::get("/hop")
        .header("host", "api.test")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eA==")
        .header("proxy-foo", "1")
        .header("trailer", "x-t")
        .header("upgrade", "h2c")
        .header("x-kept", "1")
        .body(Full::default())
        .unwrap();
    let got = c.send(req).await.unwrap();
    let seen = b.last();
    for h in [
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-foo",
        "trailer",
        "upgrade",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} reached the dyno");
    }
    assert_eq!(seen.headers["x-kept"], "1");
    assert!(!got.headers.contains_key("x-hop"));
    assert!(!got.headers.contains_key("keep-alive"));
    assert_eq!(got.headers["x-end"], "1");
    assert_ne!(got.headers["x-request-id"], "dyno-chose-this");
}

/// A body of unknown length reaches the dyno whatever the method: a GET's chunked body
/// was dropped (hyper's client sends none with a GET unless the framing is set).
#[tokio::test]
async fn a_chunked_body_reaches_the_dyno_with_any_method() {
    let b = Backend::start("b").await;
    let r = one_app(&[&b], "").await;
    for method in ["GET", "POST", "DELETE"] {
        let req = format!(
            "{method} / HTTP/1.1\r\nhost: api.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let got = raw(r.addr, req.as_bytes()).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{method}: {got}");
        let seen = b.last();
        assert_eq!(seen.method, method);
        assert_eq!(&seen.body[..], b"hello", "{method}");
    }
}

#[tokio::test]
async fn spreads_over_dynos() {
    let bs = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    for balance in ["least-request", "round-robin", "random"] {
        let r = one_app(
            &[&bs[0], &bs[1], &bs[2]],
            &format!("balance = \"{balance}\""),
        )
        .await;
        let before: Vec<usize> = bs.iter().map(Backend::count).collect();
        let mut c = Client::connect(r.addr).await;
        for _ in 0..60 {
            assert_eq!(c.get("x.api.test", "/").await.status, 200);
        }
        let got: Vec<usize> = bs.iter().zip(&before).map(|(b, n)| b.count() - n).collect();
        assert_eq!(got.iter().sum::<usize>(), 60);
        assert!(got.iter().all(|&n| n > 0), "{balance}: {got:?}");
        if balance == "round-robin" {
            assert_eq!(got, vec![20, 20, 20]);
        }
    }
}

#[tokio::test]
async fn retries_on_another_dyno_after_refusal_and_quarantines() {
    let live = Backend::start("live").await;
    let dead = dead_addr().await;
    let addrs = [dead, live.addr];
    let r = Router::start(&space(
        "retries = 2\nbalance = \"round-robin\"",
        &app("api", &["api.test"], &addrs),
    ))
    .await;
    let mut c = Client::connect(r.addr).await;
    for _ in 0..10 {
        let got = c.get("api.test", "/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "live");
    }
    let dynos = r.handle.dynos_json();
    let dead_entry = dynos
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["addr"] == dead.to_string())
        .unwrap();
    assert_eq!(dead_entry["quarantined"], true);
    assert_eq!(dead_entry["up"], false);
}

#[tokio::test]
async fn every_dyno_refusing_is_h21_with_html_body() {
    let addrs = [dead_addr().await, dead_addr().await];
    let r = Router::start(&space("retries = 5", &app("api", &["api.test"], &addrs))).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.headers["content-type"], "text/html");
    let id = got.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(got.text().contains("H21") && got.text().contains(&id));
    // Both quarantined now: fail-open still tries them (and fails the same way).
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("H21"));
}

#[tokio::test]
async fn no_web_dynos_is_h14() {
    let b = Backend::start("w").await;
    let toml = space(
        "",
        &format!(
            "\n[[app]]\nname = \"api\"\nhosts = [\"api.test\"]\n\n[[app.dyno]]\nprocess = \"worker\"\naddr = \"{}\"\n",
            b.addr
        ),
    );
    let r = Router::start(&toml).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("H14"));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn unknown_host_and_internal_app_are_s11_on_external() {
    let b = Backend::start("b").await;
    let toml = space(
        "",
        &format!(
            "{}\nrouting = \"internal\"\n\n[[app.dyno]]\naddr = \"{}\"\n",
            "\n[[app]]\nname = \"inner\"\nhosts = [\"inner.test\"]", b.addr
        ),
    );
    let r = Router::start(&toml).await;
    let got = get(r.addr, "nope.test", "/").await;
    assert_eq!(got.status, 404);
    assert!(got.text().contains("S11"));
    let got = get(r.addr, "inner.test", "/").await;
    assert_eq!(got.status, 404);
    assert!(got.text().contains("S11"));
    // The internal listener serves it.
    let got = get(r.internal, "inner.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "b");
}

/// BEHAVIOR.md "Which app": port and case ignored, exact names win over wildcards, a
/// wildcard matches one or more labels (not the bare suffix, nor an empty label).
#[tokio::test]
async fn host_matching_exact_wins_and_wildcards_need_real_labels() {
    let wild = Backend::start("wild").await;
    let exact = Backend::start("exact").await;
    let toml = space(
        "",
        &(app("wild", &["*.api.test"], &[wild.addr])
            + &app("exact", &["x.api.test"], &[exact.addr])),
    );
    let r = Router::start(&toml).await;
    for (host, want) in [
        ("x.api.test", Some("exact")),
        ("X.API.Test:8080", Some("exact")),
        ("y.api.test", Some("wild")),
        ("a.b.x.api.test", Some("wild")),
        ("Y.api.test.:80", Some("wild")),
        ("api.test", None),
        (".api.test", None),
        ("a..api.test", None),
        ("x..api.test", None),
    ] {
        let got = get(r.addr, host, "/").await;
        match want {
            Some(name) => assert_eq!(
                (got.status.as_u16(), got.text()),
                (200, name.into()),
                "{host}"
            ),
            None => {
                assert_eq!(got.status, 404, "{host}");
                assert!(got.text().contains("S11"), "{host}: {}", got.text());
            }
        }
    }
}

#[tokio::test]
async fn app_trusted_ranges_are_s10() {
    let b = Backend::start("b").await;
    let toml = space(
        "",
        &format!(
            "\n[[app]]\nname = \"api\"\nhosts = [\"api.test\"]\ntrusted = [\"127.0.0.2\"]\n\n[[app.dyno]]\naddr = \"{}\"\n",
            b.addr
        ),
    );
    let r = Router::start(&toml).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 403);
    assert!(got.text().contains("S10"));
    let got = Client::connect_from(r.addr, "127.0.0.2")
        .await
        .get("api.test", "/")
        .await;
    assert_eq!(got.status, 200);
    get(r.addr, "nope.test", "/").await;
    get(r.addr, "nope.test", "/").await;
    // L7 denials have a metric of their own beside the L4 one (BEHAVIOR.md "Admin").
    let mut m = String::new();
    r.handle.render_metrics(&mut m);
    assert!(
        m.contains("spaced_router_l7_denied_total{code=\"S10\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("spaced_router_l7_denied_total{code=\"S11\"} 2\n"),
        "{m}"
    );
    // The S10 request is the app's: it was refused by the app's own ranges.
    assert!(
        m.contains("spaced_router_requests_total{app=\"api\",status=\"403\",code=\"S10\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("spaced_router_requests_total{app=\"\",status=\"404\",code=\"S11\"} 2\n"),
        "{m}"
    );
    // A reload that removes the app takes its series away, not the denial counter.
    r.reload(&space("", &app("other", &["other.test"], &[b.addr])));
    let mut m = String::new();
    r.handle.render_metrics(&mut m);
    assert!(
        m.contains("spaced_router_l7_denied_total{code=\"S10\"} 1\n"),
        "{m}"
    );
}

#[tokio::test]
async fn metrics_and_dynos_json() {
    let b = Backend::start("b").await;
    let r = one_app(&[&b], "").await;
    get(r.addr, "api.test", "/").await;
    get(r.addr, "nope.test", "/").await;
    let mut m = String::new();
    r.handle.render_metrics(&mut m);
    assert!(
        m.contains("spaced_router_requests_total{app=\"api\",status=\"200\",code=\"\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("spaced_router_requests_total{app=\"\",status=\"404\",code=\"S11\"} 1"),
        "{m}"
    );
    assert!(m.contains("spaced_router_l4_denied_total 0"));
    assert!(m.contains("spaced_router_dyno_up{app=\"api\",dyno=\"web.1\""));
    let d = r.handle.dynos_json();
    assert_eq!(d[0]["app"], "api");
    assert_eq!(d[0]["process"], "web");
    assert_eq!(d[0]["number"], 1);
    assert_eq!(d[0]["up"], true);
    assert_eq!(d[0]["in_flight"], 0);
}

#[tokio::test]
async fn bench_config_routes_what_wrk_sends() {
    // benches/load/sut_http.sh: hosts "127.0.0.1" and "localhost"; wrk sends the port too.
    let b = Backend::start("b").await;
    let r = Router::start(&space(
        "balance = \"round-robin\"",
        &app("bench", &["127.0.0.1", "localhost"], &[b.addr]),
    ))
    .await;
    let host = format!("127.0.0.1:{}", r.addr.port());
    assert_eq!(get(r.addr, &host, "/").await.status, 200);
    assert_eq!(get(r.addr, "localhost", "/").await.status, 200);
}

#[tokio::test]
async fn head_and_no_host() {
    let b = Backend::start("b").await;
    let r = one_app(&[&b], "").await;
    let mut c = Client::connect(r.addr).await;
    let req = Request::head("/big/1234")
        .header("host", "api.test")
        .body(Full::default())
        .unwrap();
    let got = c.send(req).await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-length"], "1234");
    assert!(got.body.is_empty());
    // The connection is still usable after a HEAD.
    assert_eq!(c.get("api.test", "/").await.text(), "b");
    let out = raw(r.addr, b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let out = raw(r.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.1 404") || out.starts_with("HTTP/1.0 404"),
        "{out}"
    );
}

#[tokio::test]
async fn zone_preferred_while_half_healthy() {
    let near = Backend::start("near").await;
    let far = Backend::start("far").await;
    let toml = space(
        "zone = \"a\"",
        &format!(
            "\n[[app]]\nname = \"api\"\nhosts = [\"api.test\"]\n\n[[app.dyno]]\naddr = \"{}\"\nzone = \"a\"\n\n[[app.dyno]]\naddr = \"{}\"\nzone = \"b\"\n",
            near.addr, far.addr
        ),
    );
    let r = Router::start(&toml).await;
    let mut c = Client::connect(r.addr).await;
    for _ in 0..20 {
        assert_eq!(c.get("api.test", "/").await.text(), "near");
    }
    // The zone's only dyno refuses: quarantined, so the other zone takes over.
    near.stop();
    eventually("the near dyno refuses", || {
        std::net::TcpStream::connect(near.addr).is_err()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(get(r.addr, "api.test", "/").await.text(), "far");
    }
}

#[tokio::test]
async fn client_leaving_before_the_response_is_h27() {
    let b = Backend::start("b").await;
    let r = one_app(&[&b], "").await;
    let mut s = within("connect", tokio::net::TcpStream::connect(r.addr))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut s,
        b"GET /slow/300 HTTP/1.1\r\nhost: api.test\r\n\r\n",
    )
    .await
    .unwrap();
    eventually("request reached the dyno", || b.count() == 1).await;
    drop(s);
    let h27 = "spaced_router_requests_total{app=\"api\",status=\"499\",code=\"H27\"} 1";
    eventually("H27 counted", || {
        let mut m = String::new();
        r.handle.render_metrics(&mut m);
        m.contains(h27)
    })
    .await;
}
