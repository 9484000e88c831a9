//! Logplex (`https://`, `http://`) and OTLP drains against a real HTTP receiver run by the
//! test (hyper, rustls with an rcgen certificate): headers, batches, splitting, auth,
//! retries with the same frame id, faults, and the OTLP records decoded.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Got {
    headers: http::HeaderMap,
    path: String,
    body: Vec<u8>,
}

/// A receiver that records every request and answers the next queued status (200 once
/// the queue is empty); `garbage` makes it answer bytes that are not HTTP.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
        garbage: bool,
    ) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.serve(l, tls, garbage)
    }

    /// On a given port (a drain that was down comes back on the same address).
    async fn start_on(self, port: u16) -> std::net::SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        self.serve(l, None, false)
    }

    fn serve(
        self,
        l: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        garbage: bool,
    ) -> std::net::SocketAddr {
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                let me = self.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    if garbage {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut tcp = tcp;
                        let mut b = [0u8; 4096];
                        let _ = tcp.read(&mut b).await;
                        let _ = tcp.write_all(b"\x00\xffnot http at all\r\n\r\n").await;
                        return;
                    }
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            let headers = req.headers().clone();
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await?.to_bytes().to_vec();
                            me.got.lock().unwrap().push(Got {
                                headers,
                                path,
                                body,
                            });
                            let status = me.statuses.lock().unwrap().pop_front().unwrap_or(200);
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    match tls {
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(s), svc)
                                .await;
                        }
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(tcp), svc)
                                .await;
                        }
                    }
                });
            }
        });
        addr
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// Parses a logplex body: `LEN SP MSG` frames.
fn frames(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        out.push(String::from_utf8(rest[sp + 1..sp + 1 + len].to_vec()).unwrap());
        rest = &rest[sp + 1 + len..];
    }
    out
}

fn tls_config(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, String) {
    let leaf = spaced_testkit::pki::self_signed(&["localhost"]);
    let ca = dir.join("drain-ca.pem");
    std::fs::write(&ca, &leaf.cert_pem).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.cert_der.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_der.into()),
        )
        .unwrap();
    (Arc::new(cfg), ca.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_logplex_headers_batches_auth_and_splitting() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = tls_config(dir.path());
    let rx = Receiver::default();
    let addr = rx.clone().start(Some(tls), false).await;
    let p = policy(
        &format!(
            "[[drain]]\nurl = \"https://user:s%3Acret@localhost:{}/logs\"\nca = \"{ca}\"",
            addr.port()
        ),
        "",
        100_000,
    );
    let hub = hub_with(&p);
    // 1200 lines at once: batches of 500, 500, 200; then one long line, split.
    for i in 0..1200 {
        line(&hub, "api", i);
    }
    let long = format!("at=info msg={}", "x".repeat(25_000));
    hub.emit(
        spaced_logs::Level::Info,
        spaced_logs::Source::Spaced,
        spaced_logs::Kind::Text,
        "",
        &long,
    );
    assert!(
        eventually(30, || metric(
            &hub,
            "spaced_drain_lines_total",
            &["result=\"sent\""]
        ) == 1201)
        .await
    );
    let got = rx.got();
    let mut msgs = Vec::new();
    for g in &got {
        assert_eq!(g.path, "/logs");
        assert_eq!(g.headers["content-type"], "application/logplex-1");
        // base64("user:s:cret")
        assert_eq!(g.headers["authorization"], "Basic dXNlcjpzOmNyZXQ=");
        assert!(g.headers.contains_key("logplex-frame-id"));
        let f = frames(&g.body);
        assert_eq!(g.headers["logplex-msg-count"], f.len().to_string().as_str());
        assert!(f.len() <= 503, "{}", f.len());
        msgs.extend(f);
    }
    assert!(
        got.iter().take(2).all(|g| frames(&g.body).len() == 500),
        "first batches are full"
    );
    // Every line once, in order.
    for (i, m) in msgs.iter().take(1200).enumerate() {
        assert!(m.starts_with("<190>1 "), "{m}");
        assert!(m.contains(" demo api router - - at=info "), "{m}");
        assert!(m.contains(&format!("path=\"/n/{i}\" ")), "{i}: {m}");
    }
    let tail: Vec<_> = msgs[1200..].iter().collect();
    assert_eq!(tail.len(), 3, "25 kB split into 10 kB pieces");
    let body: usize = tail
        .iter()
        .map(|m| m.split_once(" - - ").unwrap().1.len())
        .sum();
    assert_eq!(body, long.len());
    // The password never shows.
    let j = hub.drains_json().to_string();
    assert!(j.contains("user:***@localhost"), "{j}");
    assert!(!j.contains("cret"), "{j}");
    let mut m = String::new();
    hub.render_metrics(&mut m);
    assert!(!m.contains("cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_leaves_after_250ms_and_500s_are_retried_with_the_same_frame_id() {
    let rx = Receiver::default();
    rx.statuses.lock().unwrap().extend([500, 500]);
    let addr = rx.clone().start(None, false).await;
    let p = policy(&format!("[[drain]]\nurl = \"http://{addr}/\""), "", 1000);
    let hub = hub_with(&p);
    for i in 0..3 {
        line(&hub, "", i);
    }
    assert!(
        eventually(30, || metric(
            &hub,
            "spaced_drain_lines_total",
            &["result=\"sent\""]
        ) == 3)
        .await
    );
    let got = rx.got();
    assert_eq!(got.len(), 3, "two 500s, then accepted");
    let ids: Vec<_> = got
        .iter()
        .map(|g| g.headers["logplex-frame-id"].clone())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(got.iter().all(|g| g.body == got[0].body));
    assert_eq!(
        metric(&hub, "spaced_drain_lines_total", &["result=\"failed\""]),
        6
    );
    // A new batch, a new id.
    line(&hub, "", 9);
    assert!(eventually(30, || rx.got().len() == 4).await);
    assert_ne!(rx.got()[3].headers["logplex-frame-id"], ids[0]);
    assert_eq!(
        hub.drains_json()[0]["last_error"],
        "receiver answered 500 Internal Server Error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_app_drains_get_only_their_apps_lines() {
    let space_rx = Receiver::default();
    let api_rx = Receiver::default();
    let s = space_rx.clone().start(None, false).await;
    let a = api_rx.clone().start(None, false).await;
    let p = policy(
        &format!("[[drain]]\nurl = \"http://{s}/\""),
        &format!("\"http://{a}/\""),
        1000,
    );
    let hub = hub_with(&p);
    for i in 0..10 {
        line(&hub, if i % 2 == 0 { "api" } else { "web" }, i);
    }
    hub.emit(
        spaced_logs::Level::Info,
        spaced_logs::Source::Spaced,
        spaced_logs::Kind::Text,
        "",
        "spaced ready",
    );
    assert!(
        eventually(30, || metric(
            &hub,
            "spaced_drain_lines_total",
            &["result=\"sent\""]
        ) == 16)
        .await
    );
    let api: Vec<String> = api_rx.got().iter().flat_map(|g| frames(&g.body)).collect();
    assert_eq!(api.len(), 5);
    assert!(
        api.iter().all(|m| m.contains(" demo api router ")),
        "{api:?}"
    );
    let all: Vec<String> = space_rx
        .got()
        .iter()
        .flat_map(|g| frames(&g.body))
        .collect();
    assert_eq!(all.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_down_for_a_while_gets_its_queued_lines_in_order_and_drops_are_exact() {
    // Reserve a port, keep it closed (refusing), then start the receiver on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ok_rx = Receiver::default();
    let ok = ok_rx.clone().start(None, false).await;
    let p = policy(
        &format!(
            "[[drain]]\nurl = \"http://127.0.0.1:{port}/\"\n\n[[drain]]\nurl = \"http://{ok}/\""
        ),
        "",
        100,
    );
    let hub = hub_with(&p);
    for i in 0..250 {
        line(&hub, "", i);
    }
    // The healthy drain keeps flowing while the other is down (its own queue of 100 may
    // drop some of a burst of 250, counted).
    let ok_sel = format!("drain=\"http://{ok}\"");
    let ok_sent = || {
        metric(
            &hub,
            "spaced_drain_lines_total",
            &[&ok_sel, "result=\"sent\""],
        )
    };
    let ok_dropped = || {
        metric(
            &hub,
            "spaced_drain_lines_total",
            &[&ok_sel, "result=\"dropped\""],
        )
    };
    assert!(eventually(30, || ok_sent() > 0 && ok_sent() + ok_dropped() == 250).await);
    let ok_got: usize = ok_rx.got().iter().map(|g| frames(&g.body).len()).sum();
    assert_eq!(ok_got as u64, ok_sent());
    let down = &["drain=\"http://127.0.0.1:"];
    assert!(
        eventually(30, || metric(
            &hub,
            "spaced_drain_lines_total",
            &[down[0], &format!(":{port}"), "result=\"failed\""]
        ) > 0)
        .await
    );
    // Up again: what was queued (the newest, within buffer + the batch in hand) arrives in order.
    let rx = Receiver::default();
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    drop(l);
    let _ = rx.clone().start_on(port).await;
    let sel = [format!(":{port}")];
    let sent = || {
        metric(
            &hub,
            "spaced_drain_lines_total",
            &[&sel[0], "result=\"sent\""],
        )
    };
    let dropped = || {
        metric(
            &hub,
            "spaced_drain_lines_total",
            &[&sel[0], "result=\"dropped\""],
        )
    };
    assert!(
        eventually(60, || sent() > 0 && sent() + dropped() == 250).await,
        "sent {} dropped {}",
        sent(),
        dropped()
    );
    let msgs: Vec<String> = rx.got().iter().flat_map(|g| frames(&g.body)).collect();
    let nums: Vec<usize> = msgs
        .iter()
        .map(|m| {
            m.split("path=\"/n/")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "in order: {nums:?}");
    assert_eq!(*nums.last().unwrap(), 249, "the newest lines are kept");
    assert_eq!(nums.len() as u64, sent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_garbage_is_counted_not_a_panic() {
    let rx = Receiver::default();
    let addr = rx.clone().start(None, true).await;
    let p = policy(&format!("[[drain]]\nurl = \"http://{addr}/\""), "", 10);
    let hub = hub_with(&p);
    line(&hub, "", 1);
    assert!(
        eventually(30, || metric(
            &hub,
            "spaced_drain_lines_total",
            &["result=\"failed\""]
        ) >= 2)
        .await
    );
    let j = hub.drains_json();
    assert_eq!(j[0]["state"], "retrying");
    assert!(
        j[0]["last_error"].as_str().unwrap().starts_with("http: "),
        "{j}"
    );
    assert_eq!(j[0]["queued"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_records_carry_their_fields_as_attributes() {
    let rx = Receiver::default();
    let addr = rx.clone().start(None, false).await;
    let p = policy(&format!("[[drain]]\nurl = \"otlp+http://{addr}\""), "", 100);
    let hub = hub_with(&p);
    for i in 0..4 {
        line(&hub, if i < 2 { "api" } else { "" }, i);
    }
    assert!(
        eventually(30, || metric(
            &hub,
            "spaced_drain_lines_total",
            &["result=\"sent\""]
        ) == 4)
        .await
    );
    let got = rx.got();
    assert!(
        got.iter()
            .all(|g| g.path == "/v1/logs" && g.headers["content-type"] == "application/x-protobuf")
    );
    let mut records = Vec::new();
    for g in &got {
        let req = crate::otlp_decode::Request::decode(&g.body);
        for rl in req.resource_logs {
            let res = rl.resource_attrs();
            assert_eq!(res["service.name"], "spaced");
            assert_eq!(res["spaced.space"], "demo");
            for r in rl.records {
                records.push((res["spaced.app"].clone(), r));
            }
        }
    }
    assert_eq!(records.len(), 4);
    for (i, (app, r)) in records.iter().enumerate() {
        assert_eq!(app, if i < 2 { "api" } else { "spaced" });
        assert_eq!(r.severity_number, 9);
        assert_eq!(r.attrs["status"], crate::otlp_decode::Any::Int(200));
        assert_eq!(r.attrs["service"], crate::otlp_decode::Any::Int(i as i64));
        assert_eq!(
            r.attrs["path"],
            crate::otlp_decode::Any::Str(format!("/n/{i}"))
        );
        assert_eq!(r.attrs["tls"], crate::otlp_decode::Any::Bool(false));
        assert_eq!(
            r.attrs["request_id"],
            crate::otlp_decode::Any::Str(format!("r{i}"))
        );
        assert_eq!(
            r.attrs["source"],
            crate::otlp_decode::Any::Str("router".into())
        );
        assert!(r.body.starts_with("at=info method=GET"));
    }
}
