//! Real clients, as users run them: curl (HTTP proxy, CONNECT, SOCKS5 with remote DNS),
//! Python requests (`HTTP_PROXY=http://app:token@host:port`), Node (an HTTP CONNECT like
//! its proxy agents make) and Java's own SOCKS5 client (what JDBC drivers use). Each is
//! skipped, with the reason printed, when the tool is not installed.

#![allow(clippy::unwrap_used)] // tests: a failed step should panic with its location

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;
use tokio::process::Command;

const POOL: [&str; 2] = ["127.0.0.10", "127.0.0.11"];

fn space() -> String {
    config(&format!("{POOL2}\ndefault_deny = false"), APPS)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Runs a client; `None` (after printing why) when it is not installed.
async fn run(program: &str, args: &[String], env: &[(&str, String)]) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args).kill_on_drop(true);
    // Only the proxies given here: never a proxy from the environment of the test run.
    for v in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            spaced_testkit::skip(&format!("{program} is not installed"));
            return None;
        }
        Ok(Err(e)) => panic!("{program}: {e}"),
        Err(_) => panic!("{program} timed out"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

#[tokio::test]
async fn curl_http_proxy_connect_and_socks5() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let url = format!("http://{}/", who.addr);
    let want = pinned("api", &POOL);
    let http = format!("http://api:s3cret@{}", gw.http());
    let socks = format!("socks5h://api:s3cret@127.0.0.1:{}", gw.socks().port());
    let localhost_url = format!("http://localhost:{}/", who.addr.port());
    for args in [
        vec!["-sS", "-m", "10", "-x", &http, &url],
        vec!["-sS", "-m", "10", "-p", "-x", &http, &url],
        vec!["-sS", "-m", "10", "-x", &socks, &url],
        vec!["-sS", "-m", "10", "-x", &socks, &localhost_url],
    ] {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let Some(out) = run("curl", &args, &[]).await else {
            return;
        };
        assert_eq!(out, want, "curl {args:?}");
    }
    // Wrong credentials: curl reports the 407.
    let bad = format!("http://api:nope@{}", gw.http());
    let args: Vec<String> = [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "10",
        "-x",
        &bad,
        &url,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(run("curl", &args, &[]).await.unwrap(), "407");
}

#[tokio::test]
async fn python_requests_with_http_proxy_in_the_environment() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    // python3 without the requests package is a machine without the client: skip.
    let probe = Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .await;
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        spaced_testkit::skip("python3 with the requests package is not installed");
        return;
    }
    let code = "import requests, sys\nr = requests.get(sys.argv[1], timeout=10)\nr.raise_for_status()\nsys.stdout.write(r.text)";
    let args = vec![
        "-c".to_owned(),
        code.to_owned(),
        format!("http://{}/", who.addr),
    ];
    let env = [("HTTP_PROXY", format!("http://web:w3b@{}", gw.http()))];
    let Some(out) = run("python3", &args, &env).await else {
        return;
    };
    assert_eq!(out, pinned("web", &POOL));
}

#[tokio::test]
async fn node_connect_tunnel() {
    let who = Whoami::start("127.0.0.1:0").await;
    let gw = Gateway::start(&space()).await;
    let args = vec![
        script("connect.js").display().to_string(),
        "127.0.0.1".to_owned(),
        gw.http().port().to_string(),
        who.addr.to_string(),
        "web".to_owned(),
        "w3b".to_owned(),
    ];
    let Some(out) = run("node", &args, &[]).await else {
        return;
    };
    assert_eq!(out, pinned("web", &POOL));
}

#[tokio::test]
async fn java_socks5_client_as_jdbc_uses_it() {
    let who = Whoami::start("127.0.0.1:0").await;
    // Java offers no-auth and user/password; credentials being required here, it is asked
    // for them and answers from its Authenticator.
    let gw = Gateway::start(&space()).await;
    let mut args = vec![
        script("Socks.java").display().to_string(),
        "127.0.0.1".to_owned(),
        gw.socks().port().to_string(),
        "127.0.0.1".to_owned(),
        who.addr.port().to_string(),
    ];
    args.extend(["api".to_owned(), "s3cret".to_owned()]);
    let Some(out) = run("java", &args, &[]).await else {
        return;
    };
    assert_eq!(out, pinned("api", &POOL));
}
