//! Real etcd processes for tests: one member or a cluster, on loopback ports, each with a
//! temporary data directory removed on drop. Not a mock: the tests talk to Debian's
//! `etcd-server` through the same client the daemon uses.
//!
//! Without an `etcd` binary, [`Etcd::start`] returns `None` after printing why, so a
//! developer without it sees the tests skip; under `CI=true` it panics instead, since CI
//! installs it and a skipped test there would hide a broken setup.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn etcd_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        crate::skip("no `etcd` on PATH (Debian: apt-get install etcd-server)");
    }
    found
}

/// TLS for a test etcd: a CA and one certificate (SAN 127.0.0.1) that serves as both the
/// server's and the client's, with its key. PEM files.
#[derive(Clone, Debug)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    fn options(&self) -> Option<etcd_client::TlsOptions> {
        let ca = std::fs::read(&self.ca).ok()?;
        let cert = std::fs::read(&self.cert).ok()?;
        let key = std::fs::read(&self.key).ok()?;
        Some(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(ca))
                .identity(etcd_client::Identity::from_pem(cert, key)),
        )
    }
}

/// One etcd member.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    dir: PathBuf,
    cluster: String,
    tls: Option<Tls>,
    child: Option<Child>,
}

impl Member {
    fn spawn(&mut self, state: &str) {
        let mut cmd = Command::new("etcd");
        cmd.args([
            "--name",
            &self.name,
            "--data-dir",
            &self.dir.display().to_string(),
            "--listen-client-urls",
            &self.client_url,
            "--advertise-client-urls",
            &self.client_url,
            "--listen-peer-urls",
            &self.peer_url,
            "--initial-advertise-peer-urls",
            &self.peer_url,
            "--initial-cluster",
            &self.cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            "spaced-test",
            "--log-level",
            "error",
        ]);
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = cmd.spawn().ok();
    }

    /// Kills the member (SIGKILL: a crash, not a clean stop).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn("existing");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An etcd cluster of one or more members on 127.0.0.1.
pub struct Etcd {
    pub members: Vec<Member>,
    tls: Option<Tls>,
}

impl Etcd {
    /// One member; `None` (printed) when etcd is not installed outside CI.
    pub async fn start() -> Option<Self> {
        Self::cluster(1).await
    }

    /// `n` members forming one cluster.
    pub async fn cluster(n: usize) -> Option<Self> {
        Self::launch(n, None).await
    }

    /// One member serving clients over TLS and requiring a client certificate.
    pub async fn start_tls(tls: Tls) -> Option<Self> {
        Self::launch(1, Some(tls)).await
    }

    async fn launch(n: usize, tls: Option<Tls>) -> Option<Self> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        etcd_binary()?;
        let base = std::env::temp_dir().join(format!(
            "spaced-etcd-{}-{}",
            std::process::id(),
            crate::ports::free()
        ));
        let mut members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_url: format!("{scheme}://127.0.0.1:{}", crate::ports::free()),
                peer_url: format!("http://127.0.0.1:{}", crate::ports::free()),
                dir: base.join(format!("m{i}")),
                cluster: String::new(),
                tls: tls.clone(),
                child: None,
            })
            .collect();
        let cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.cluster = cluster.clone();
            let _ = std::fs::create_dir_all(&m.dir);
            m.spawn("new");
        }
        let etcd = Self { members, tls };
        etcd.wait_ready(Duration::from_secs(30)).await;
        Some(etcd)
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// A client of the whole cluster.
    pub async fn client(&self) -> etcd_client::Client {
        let opts = self.options(Duration::from_secs(2), Duration::from_secs(5));
        match etcd_client::Client::connect(self.endpoints(), Some(opts)).await {
            Ok(c) => c,
            Err(e) => panic!("connect to the test etcd: {e}"),
        }
    }

    fn options(&self, connect: Duration, request: Duration) -> etcd_client::ConnectOptions {
        let opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(connect)
            .with_timeout(request);
        match self.tls.as_ref().and_then(Tls::options) {
            Some(tls) => opts.with_tls(tls),
            None => opts,
        }
    }

    /// Waits until a write goes through (a leader is elected), panicking after `limit`.
    pub async fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let ok = async {
                let mut c = etcd_client::Client::connect(
                    self.endpoints(),
                    Some(self.options(Duration::from_millis(500), Duration::from_secs(2))),
                )
                .await
                .ok()?;
                c.put("/spaced-test-ready", "1", None).await.ok()
            }
            .await
            .is_some();
            if ok {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "etcd did not become ready in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
