//! The router log line as emitted: one `router` event per request whose message is the
//! whole line, at info/warn/error by outcome.
#![allow(clippy::unwrap_used)]

use crate::harness::*;
use spaced_testkit::capture::Capture;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::Level;

// Current-thread runtime: every task runs on this thread, under the thread's subscriber.
#[tokio::test]
async fn one_line_per_request_in_the_spec_format() {
    let (capture, _guard) = Capture::install("router");
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let mut c = Client::connect(r.addr).await;
    let req = http::Request::get("/orders?id=1")
        .header("host", "api.test")
        .header("x-request-id", "abcdefghij0123456789")
        .body(http_body_util::Full::default())
        .unwrap();
    c.send(req).await.unwrap();
    c.get("nope.test", "/x%20y").await;
    drop(c);
    eventually("both log lines", || capture.lines().len() >= 2).await;
    let lines = capture.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");

    let (level, ok) = &lines[0];
    assert_eq!(*level, Level::INFO);
    let prefix = "at=info method=GET path=\"/orders?id=1\" host=api.test request_id=abcdefghij0123456789 fwd=\"127.0.0.1\" dyno=web.1 connect=";
    assert!(ok.starts_with(prefix), "{ok}");
    assert!(ok.contains("ms service="), "{ok}");
    assert!(
        ok.ends_with("ms status=200 bytes=1 protocol=http1.1 tls=false tls_version=unknown"),
        "{ok}"
    );

    let (level, err) = &lines[1];
    assert_eq!(*level, Level::ERROR);
    assert!(
        err.starts_with("at=error code=S11 desc=\"No such app\" method=GET path=\"/x%20y\" host=nope.test request_id="),
        "{err}"
    );
    assert!(
        err.contains(" fwd=\"127.0.0.1\" dyno= connect= service= status=404 bytes="),
        "{err}"
    );
}

/// A head hyper refuses before the router sees a request (here conflicting Content-Length)
/// still gets its line and its count.
#[tokio::test]
async fn head_refused_by_the_parser_is_logged_and_counted() {
    let (capture, _guard) = Capture::install("router");
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let got = raw(
        r.addr,
        b"POST / HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    eventually("the log line", || !capture.lines().is_empty()).await;
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (level, line) = &lines[0];
    assert_eq!(*level, Level::ERROR);
    assert!(
        line.starts_with(
            "at=error code=H26 desc=\"Request Error\" method=- path=\"-\" host= request_id="
        ),
        "{line}"
    );
    // The line and the page the client got carry the same id.
    let id = got
        .split("\r\n")
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect(&got);
    assert!(
        line.contains(&format!(" request_id={id} ")),
        "{line}\n{got}"
    );
    let body_len = got.split_once("\r\n\r\n").unwrap().1.len();
    assert!(
        line.contains(&format!(" status=400 bytes={body_len} ")),
        "{line}"
    );
    assert_eq!(b.count(), 0);
    let mut m = String::new();
    r.handle.render_metrics(&mut m);
    assert!(m.contains("code=\"H26\"} 1"), "{m}");
}

/// A client that leaves while the dyno works gets an H27 warning naming the dyno it was
/// sent to, with connect and service times (Heroku's line does), on both dyno paths
/// (without a body: raw connection; with one: hyper's).
#[tokio::test]
async fn h27_line_names_the_dyno_the_request_went_to() {
    let (capture, _guard) = Capture::install("router");
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let heads: [&[u8]; 2] = [
        b"GET /slow/300 HTTP/1.1\r\nhost: api.test\r\n\r\n",
        b"POST /slow/300 HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1\r\n\r\nx",
    ];
    for (n, head) in heads.into_iter().enumerate() {
        let s = send(r.addr, head).await;
        eventually("request reached the dyno", || b.count() == n + 1).await;
        drop(s);
        eventually("H27 logged", || capture.lines().len() == n + 1).await;
        let (level, line) = capture.lines().pop().unwrap();
        assert_eq!(level, Level::WARN);
        assert!(
            line.starts_with("at=warning code=H27 desc=\"Client Request Interrupted\" method="),
            "{line}"
        );
        assert!(line.contains(" dyno=web.1 connect="), "{line}");
        assert!(line.contains("ms service="), "{line}");
        assert!(line.contains("ms status=499 bytes=0 "), "{line}");
    }
}

/// A client that leaves in the middle of its upload is sent nothing: its H27 line counts
/// no bytes, like the line of one that leaves while the dyno works.
#[tokio::test]
async fn h27_mid_upload_counts_no_bytes() {
    let (capture, _guard) = Capture::install("router");
    let b = Backend::start("b").await;
    let r = Router::start(&space("", &app("api", &["api.test"], &[b.addr]))).await;
    let s = send(
        r.addr,
        b"POST /echo HTTP/1.1\r\nhost: api.test\r\ncontent-length: 1000\r\n\r\n0123456789",
    )
    .await;
    // The dyno counts a request once its body is in: wait for the connection instead, and
    // for the head and the first bytes to be relayed.
    eventually("the dyno is connected", || {
        b.open.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    eventually("H27 logged", || capture.lines().len() == 1).await;
    let (_, line) = capture.lines().pop().unwrap();
    assert!(line.starts_with("at=warning code=H27 "), "{line}");
    assert!(line.contains(" status=499 bytes=0 "), "{line}");
}

/// Every dyno refusing: the H21 line names the last dyno tried and its connect time, with
/// no service time (nothing was sent), as Heroku's does.
#[tokio::test]
async fn h21_line_names_the_last_dyno_tried() {
    let (capture, _guard) = Capture::install("router");
    let r = Router::start(&space("", &app("api", &["api.test"], &[dead_addr().await]))).await;
    let got = get(r.addr, "api.test", "/").await;
    assert_eq!(got.status, 503);
    eventually("H21 logged", || capture.lines().len() == 1).await;
    let (level, line) = capture.lines().pop().unwrap();
    assert_eq!(level, Level::ERROR);
    assert!(
        line.starts_with("at=error code=H21 desc=\"Backend connection refused\" method=GET"),
        "{line}"
    );
    assert!(line.contains(" dyno=web.1 connect="), "{line}");
    assert!(line.contains("ms service= status=503 "), "{line}");
}
