//! The HTTP proxy: CONNECT and absolute-form requests leave from the pinned source IP;
//! credentials, outside clients, destination policy and `max_per_destination`.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use crate::harness::*;
use tokio::io::AsyncWriteExt;

const POOL: [&str; 2] = ["127.0.0.10", "127.0.0.11"];

fn space() -> String {
    config(&format!("{POOL2}\ndefault_deny = false"), APPS)
}

#[tokio::test]
async fn connect_leaves_from_the_pinned_source_every_time() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let want = pinned("api", &POOL);
    for _ in 0..3 {
        let (s, head) = http_connect(
            "127.0.0.1",
            gw.http(),
            &who.addr.to_string(),
            Some(("api", "s3cret")),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(get_through(s).await, want);
    }
    let (s, head) = http_connect(
        "127.0.0.1",
        gw.http(),
        &who.addr.to_string(),
        Some(("web", "w3b")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(get_through(s).await, pinned("web", &POOL));
}

#[tokio::test]
async fn absolute_form_is_forwarded_with_keep_alive_and_without_proxy_headers() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    let auth = basic("api", "s3cret");
    for i in 0..2 {
        let req = format!(
            "GET http://{}/path?i={i} HTTP/1.1\r\nHost: {}\r\nProxy-Authorization: Basic {auth}\r\nProxy-Connection: keep-alive\r\n\r\n",
            who.addr, who.addr
        );
        within(s.write_all(req.as_bytes())).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("x-saw-proxy-auth: 0"),
            "{head}"
        );
        assert_eq!(read_body(&mut s, &head).await, pinned("api", &POOL));
    }
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_407() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let t = who.addr.to_string();
    for creds in [
        Some(("api", "nope")),
        Some(("nobody", "s3cret")),
        Some(("api", "w3b")),
        None,
    ] {
        let (_s, head) = http_connect("127.0.0.1", gw.http(), &t, creds).await;
        assert!(head.starts_with("HTTP/1.1 407"), "{creds:?}: {head}");
        assert!(head.contains("Proxy-Authenticate: Basic"), "{head}");
    }
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    let req = format!(
        "GET http://{t}/ HTTP/1.1\r\nHost: {t}\r\nProxy-Authorization: Basic {}\r\n\r\n",
        basic("api", "x")
    );
    within(s.write_all(req.as_bytes())).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 407"), "{head}");
    assert_eq!(who.count(), 0);
}

#[tokio::test]
async fn clients_without_tokens_in_the_space_are_served_by_address() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), "")).await;
    let (s, head) = http_connect("127.0.0.2", gw.http(), &who.addr.to_string(), None).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let pool: Vec<std::net::IpAddr> = POOL.iter().map(|p| p.parse().unwrap()).collect();
    let key = spaced_egress::pin::PinKey::Addr("127.0.0.2".parse().unwrap());
    let want = spaced_egress::pin::choose(key, &pool).unwrap().to_string();
    assert_eq!(get_through(s).await, want);
}

#[tokio::test]
async fn a_dyno_address_is_its_app() {
    let who = Whoami::start("127.0.0.1:0").await;
    let apps = format!(
        "{APPS}\n[[app]]\nname = \"worker\"\n[[app.dyno]]\nprocess = \"worker\"\naddr = \"127.0.0.2:5000\"\n"
    );
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), &apps)).await;
    let (s, head) = http_connect("127.0.0.2", gw.http(), &who.addr.to_string(), None).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(get_through(s).await, pinned("worker", &POOL));
}

/// BEHAVIOR.md "Precise answers": 407 only "when the client is not known by address". A
/// dyno's address is its app whatever credentials it sends (wrong, unreadable or another
/// scheme), over HTTP and SOCKS5; right credentials still name their own app.
#[tokio::test]
async fn a_dyno_address_with_wrong_credentials_is_still_its_app() {
    let who = Whoami::start("127.0.0.1:0").await;
    let apps = format!(
        "{APPS}\n[[app]]\nname = \"worker\"\n[[app.dyno]]\nprocess = \"worker\"\naddr = \"127.0.0.2:5000\"\n"
    );
    let gw = Gateway::start(&config(&format!("{POOL2}\ndefault_deny = false"), &apps)).await;
    let target = who.addr.to_string();
    for creds in [("api", "wrong"), ("worker", ""), ("nobody", "x")] {
        let (s, head) = http_connect("127.0.0.2", gw.http(), &target, Some(creds)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{creds:?}: {head}");
        assert_eq!(get_through(s).await, pinned("worker", &POOL));
        let (s, code) =
            socks_connect("127.0.0.2", gw.socks(), &socks_addr(who.addr), Some(creds)).await;
        assert_eq!(code, 0, "{creds:?}");
        assert_eq!(get_through(s).await, pinned("worker", &POOL));
    }
    let mut s = connect_from("127.0.0.2", gw.http()).await;
    let req = format!("CONNECT {target} HTTP/1.1\r\nProxy-Authorization: Bearer x\r\n\r\n");
    within(s.write_all(req.as_bytes())).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    // Right credentials name their app; from an address that is no dyno, wrong ones are
    // still a 407.
    let (s, _) = http_connect("127.0.0.2", gw.http(), &target, Some(("api", "s3cret"))).await;
    assert_eq!(get_through(s).await, pinned("api", &POOL));
    let (_s, head) = http_connect("127.0.0.1", gw.http(), &target, Some(("api", "x"))).await;
    assert!(head.starts_with("HTTP/1.1 407"), "{head}");
}

/// Outsiders are closed at accept, before a byte is read, as the router's listeners do
/// (issue 19: they were read and held up to the 10 s handshake timeout, then answered 403).
#[tokio::test]
async fn outside_clients_are_closed_at_accept_before_any_dial() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let mut s = connect_from("127.0.0.3", gw.http()).await;
    assert_closed_without_a_word(&mut s, "silent outsider").await;
    let mut s = connect_from("127.0.0.3", gw.http()).await;
    let req = format!("GET http://{0}/ HTTP/1.1\r\nHost: {0}\r\n\r\n", who.addr);
    // The write may already meet the closed socket.
    let _ = within(s.write_all(req.as_bytes())).await;
    assert_closed_without_a_word(&mut s, "outsider with a request").await;
    assert_eq!(who.count(), 0);
    assert_metric(&gw, "spaced_egress_refused_total{reason=\"outside\"} 2");
}

#[tokio::test]
async fn denied_destinations_and_ports_never_see_a_connection() {
    let who = Whoami::start("127.0.0.1:0").await;
    let t = who.addr.to_string();
    for rule in [
        "deny = [\"127.0.0.1/32\"]".to_owned(),
        format!(
            "default_deny = false\nports = [{}]",
            who.addr.port().wrapping_add(1).max(1)
        ),
        "default_deny = false\nallow = [\"10.0.0.0/8\"]".to_owned(),
    ] {
        let gw = Gateway::start(&config(&format!("{POOL2}\n{rule}"), APPS)).await;
        let (_s, head) = http_connect("127.0.0.1", gw.http(), &t, Some(("api", "s3cret"))).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{rule}: {head}");
        let mut s = connect_from("127.0.0.1", gw.http()).await;
        let req = format!(
            "GET http://{t}/ HTTP/1.1\r\nHost: {t}\r\nProxy-Authorization: Basic {}\r\n\r\n",
            basic("api", "s3cret")
        );
        within(s.write_all(req.as_bytes())).await.unwrap();
        assert!(
            read_head(&mut s).await.starts_with("HTTP/1.1 403"),
            "{rule}"
        );
    }
    assert_eq!(who.count(), 0);
}

#[tokio::test]
async fn a_name_resolving_to_a_denied_address_is_refused() {
    let who = Whoami::start("127.0.0.1:0").await;
    // The default deny list (loopback among others) applies when `deny` is absent.
    for deny in ["deny = [\"127.0.0.0/8\"]", ""] {
        let gw = Gateway::start(&config(&format!("{POOL2}\n{deny}"), APPS)).await;
        let target = format!("localhost:{}", who.addr.port());
        let (_s, head) =
            http_connect("127.0.0.1", gw.http(), &target, Some(("api", "s3cret"))).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{deny}: {head}");
    }
    assert_eq!(who.count(), 0);
}

#[tokio::test]
async fn max_per_destination_answers_503() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&config(
        &format!("{POOL2}\ndefault_deny = false\nmax_per_destination = 1"),
        APPS,
    ))
    .await;
    let t = who.addr.to_string();
    let (held, head) = http_connect("127.0.0.1", gw.http(), &t, Some(("api", "s3cret"))).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_s, head) = http_connect("127.0.0.1", gw.http(), &t, Some(("api", "s3cret"))).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let src: std::net::IpAddr = pinned("api", &POOL).parse().unwrap();
    assert_eq!(gw.handle.connections_to(src, who.addr), 1);
    // Closing the first tunnel frees the slot.
    assert_eq!(get_through(held).await, src.to_string());
    let mut ok = false;
    for _ in 0..50 {
        let (_s, head) = http_connect("127.0.0.1", gw.http(), &t, Some(("api", "s3cret"))).await;
        if head.starts_with("HTTP/1.1 200") {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ok, "the slot was never released");
    assert_metric(
        &gw,
        &format!("spaced_egress_connections_total{{source_ip=\"{src}\",result=\"limit\"}} 1"),
    );
}

#[tokio::test]
async fn malformed_and_origin_form_requests_get_400() {
    let gw = Gateway::start(&space()).await;
    for req in [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT nohost HTTP/1.1\r\n\r\n",
        "BLAH\r\n\r\n",
    ] {
        let mut s = connect_from("127.0.0.1", gw.http()).await;
        within(s.write_all(req.as_bytes())).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{req:?}: {head}");
    }
}

#[tokio::test]
async fn https_urls_get_501_telling_to_use_connect() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let t = who.addr;
    let auth = basic("api", "s3cret");
    // As the connection's first request (the strict head parser) ...
    let req = format!(
        "GET https://{t}/ HTTP/1.1\r\nHost: {t}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
    );
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    within(s.write_all(req.as_bytes())).await.unwrap();
    let answer = read_all(&mut s).await;
    assert!(
        answer.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("use CONNECT host:443 for https"),
        "{answer}"
    );
    // ... and on a kept-alive connection after a forwarded request (hyper's parser).
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    forwarded_get(&mut s, t, &auth).await;
    within(s.write_all(req.as_bytes())).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 501"), "{head}");
    // Another scheme: 501 too, with its own reason; nothing was dialled for either.
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    within(s.write_all(format!("GET ftp://{t}/ HTTP/1.1\r\n\r\n").as_bytes()))
        .await
        .unwrap();
    let answer = read_all(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(answer.contains("unsupported URL scheme"), "{answer}");
    assert_eq!(who.count(), 1);
}

#[tokio::test]
async fn metrics_and_nat_report_sources() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let (s, _) = http_connect(
        "127.0.0.1",
        gw.http(),
        &who.addr.to_string(),
        Some(("api", "s3cret")),
    )
    .await;
    let src = get_through(s).await;
    let nat = gw.handle.nat_json();
    assert_eq!(nat["state"], "enabled");
    let sources = nat["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    let used = sources.iter().find(|s| s["ip"] == src.as_str()).unwrap();
    assert_eq!(used["connections"], 1);
    assert_metric(
        &gw,
        &format!("spaced_egress_connections_total{{source_ip=\"{src}\",result=\"ok\"}} 1"),
    );
    assert_metric(&gw, "spaced_egress_bytes_total");
}

#[tokio::test]
async fn connect_after_a_forwarded_request_on_the_same_connection() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    let auth = basic("web", "w3b");
    let t = who.addr;
    forwarded_get(&mut s, t, &auth).await;
    let req =
        format!("CONNECT {t} HTTP/1.1\r\nHost: {t}\r\nProxy-Authorization: Basic {auth}\r\n\r\n");
    within(s.write_all(req.as_bytes())).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(get_through(s).await, pinned("web", &POOL));
}

#[tokio::test]
async fn a_dual_stack_listener_folds_mapped_clients() {
    let who = Whoami::start("127.0.0.1:0").await;
    let text = space().replace("listen = [\"127.0.0.1:0\"]", "listen = [\"[::]:0\"]");
    let gw = Gateway::start(&text).await;
    let port = gw.http().port();
    let (s, head) = http_connect(
        "127.0.0.1",
        ([127, 0, 0, 1], port).into(),
        &who.addr.to_string(),
        Some(("api", "s3cret")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(get_through(s).await, pinned("api", &POOL));
    // A mapped outsider is folded too, and closed at accept.
    let mut s = connect_from("127.0.0.3", ([127, 0, 0, 1], port).into()).await;
    assert_closed_without_a_word(&mut s, "mapped outsider").await;
}

/// A server that answers with the request's method, path, and body as it received it
/// (Content-Length or chunked), to check what the forwarder sends.
async fn echo_server() -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let lower = head.to_ascii_lowercase();
                let mut body = buf[head_end..].to_vec();
                if let Some(len) = lower.lines().find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                }) {
                    while body.len() < len {
                        let n = s.read(&mut chunk).await.unwrap();
                        body.extend_from_slice(&chunk[..n]);
                    }
                } else if lower.contains("transfer-encoding: chunked") {
                    while !body.ends_with(b"0\r\n\r\n") {
                        let n = s.read(&mut chunk).await.unwrap();
                        body.extend_from_slice(&chunk[..n]);
                    }
                    body = dechunk(&body);
                }
                let first = head.lines().next().unwrap_or_default().to_owned();
                let host = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("host: "))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let reply = format!("{first}|{host}|{}", String::from_utf8_lossy(&body));
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, keep-alive\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let i = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}

#[tokio::test]
async fn request_bodies_are_forwarded_in_origin_form() {
    let echo = echo_server().await;
    let gw = Gateway::start(&space()).await;
    let auth = basic("api", "s3cret");
    for (framing, body) in [
        ("Content-Length: 5\r\n", "hello".to_owned()),
        (
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_owned(),
        ),
    ] {
        let mut s = connect_from("127.0.0.1", gw.http()).await;
        let req = format!(
            "POST http://{echo}/submit?x=1 HTTP/1.1\r\nHost: other.example\r\nProxy-Authorization: Basic {auth}\r\n{framing}\r\n{body}"
        );
        within(s.write_all(req.as_bytes())).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("keep-alive: timeout"),
            "hop-by-hop header passed back: {head}"
        );
        let len: usize = lower
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let mut got = vec![0u8; len];
        within(tokio::io::AsyncReadExt::read_exact(&mut s, &mut got))
            .await
            .unwrap();
        let got = String::from_utf8(got).unwrap();
        let want_body = if framing.contains("chunked") {
            "hello world"
        } else {
            "hello"
        };
        assert_eq!(got, format!("POST /submit?x=1 HTTP/1.1|{echo}|{want_body}"));
    }
}

/// An absolute-form request whose destination stalls mid-answer is ended by
/// `idle_timeout`, as a CONNECT tunnel is: the client sees the answer cut short, and the
/// destination's connection and its `max_per_destination` slot are let go (with one slot,
/// the next request to the same destination is served).
#[tokio::test]
async fn a_destination_that_stalls_mid_answer_is_cut_by_idle_timeout() {
    use tokio::io::AsyncReadExt;
    let dest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = dest.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = dest.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        // Then nothing: the gateway must close this connection on its own.
        let _ = s.read(&mut buf).await;
        let _ = closed_tx.send(());
        // The next request, once the slot is free, is answered in full.
        let (mut s, _) = dest.accept().await.unwrap();
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await
            .unwrap();
    });
    let gw = Gateway::start(&config(
        &format!(
            "{POOL2}\ndefault_deny = false\nidle_timeout = \"300ms\"\nmax_per_destination = 1"
        ),
        APPS,
    ))
    .await;
    let req = format!(
        "GET http://{target}/ HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {}\r\n\r\n",
        basic("api", "s3cret")
    );
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    within(s.write_all(req.as_bytes())).await.unwrap();
    let answer = read_all(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nabc"), "{answer}");
    within(closed_rx).await.unwrap();

    let src: std::net::IpAddr = pinned("api", &POOL).parse().unwrap();
    spaced_testkit::eventually("the stalled destination's slot is freed", || {
        gw.handle.connections_to(src, target) == 0
    })
    .await;
    let again = req.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let mut s = connect_from("127.0.0.1", gw.http()).await;
    within(s.write_all(again.as_bytes())).await.unwrap();
    let answer = read_all(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}
