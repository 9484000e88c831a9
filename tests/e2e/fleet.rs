//! The fleet against a real etcd (Debian's `etcd-server`, started on loopback ports with a
//! temp data dir): several real `spaced` processes sharing one policy and dyno registry.
//! Latencies are measured and printed, asserted only against a generous bound (5 s): this
//! machine is shared, and a 1 s assertion would flake under load.

mod cli;
mod converge;
mod outage;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spaced_testkit::etcd::Etcd;

use crate::harness::{ConfigDir, Spaced, free_port, http};

/// How long convergence may take before a test fails (the spec's 1 s is reported, not
/// asserted, on a shared machine).
pub(crate) const CONVERGE: Duration = Duration::from_secs(5);

/// One spaced of the fleet: its directory, process, router and admin addresses.
pub(crate) struct Instance {
    pub(crate) dir: ConfigDir,
    pub(crate) router: SocketAddr,
    pub(crate) resolver: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) process: Option<Spaced>,
}

impl Instance {
    /// Writes the host's file and starts spaced.
    pub(crate) fn start(etcd: &Etcd, prefix: &str, name: &str) -> Self {
        let dir = ConfigDir::new();
        let router: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let resolver: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let endpoints = etcd
            .endpoints()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            r#"[space]
name = "fleet"

[router]
listen = ["{router}"]

[resolver]
listen = ["{resolver}"]

[admin]
listen = "{admin}"

[daemon]
cache = "cache.json"

[fleet]
etcd = [{endpoints}]
prefix = "{prefix}"
instance = "{name}"
lease_ttl = "3s"
"#
        );
        dir.write_atomic("spaced.toml", &text);
        let mut me = Self {
            dir,
            router,
            resolver,
            admin,
            process: None,
        };
        me.restart();
        me
    }

    pub(crate) fn restart(&mut self) {
        self.process = None;
        self.process = Some(Spaced::start(
            &self.dir.path("spaced.toml"),
            self.admin,
            &[],
        ));
    }

    pub(crate) fn config(&self) -> serde_json::Value {
        match http(self.admin, "GET", "/config") {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    pub(crate) fn metrics(&self) -> String {
        http(self.admin, "GET", "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

/// An HTTP/1.1 GET through a router with a Host header: (status, body).
pub(crate) fn get(router: SocketAddr, host: &str) -> std::io::Result<(u16, String)> {
    crate::harness::exchange(router, "GET", "/", host)
}

/// The A records the instance's resolver answers for `name`.
pub(crate) fn resolve(resolver: SocketAddr, name: &str) -> Vec<std::net::IpAddr> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return Vec::new();
    };
    let _ = udp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut q = Message::query();
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    if udp.send_to(&q.to_vec().unwrap(), resolver).is_err() {
        return Vec::new();
    }
    let mut buf = vec![0u8; 4096];
    let Ok((n, _)) = udp.recv_from(&mut buf) else {
        return Vec::new();
    };
    Message::from_vec(&buf[..n])
        .map(|m| m.answers.iter().filter_map(|r| r.data.ip_addr()).collect())
        .unwrap_or_default()
}

/// Polls (blocking, off the runtime) until `f` holds on every instance; returns how long
/// that took, panicking after [`CONVERGE`].
pub(crate) async fn converge(
    what: &str,
    instances: &[Instance],
    f: impl Fn(&Instance) -> bool + Send + Sync,
) -> Duration {
    let start = Instant::now();
    loop {
        if instances.iter().all(&f) {
            let took = start.elapsed();
            eprintln!(
                "fleet: {what}: served by {} instances after {took:?}",
                instances.len()
            );
            return took;
        }
        assert!(start.elapsed() < CONVERGE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `key` (below the prefix) with `value`.
pub(crate) async fn put(etcd: &Etcd, prefix: &str, key: &str, value: &str) {
    let mut c = etcd.client().await;
    c.put(format!("{prefix}/{key}"), value, None).await.unwrap();
}

/// The `instances/` records, by name.
pub(crate) async fn instances(etcd: &Etcd, prefix: &str) -> Vec<spaced_fleet::InstanceRecord> {
    let mut c = etcd.client().await;
    spaced_fleet::instance::list(&mut c, prefix)
        .await
        .unwrap()
        .1
}

/// A policy document of `apps` apps, `app-0` … with hosts `app-N.test`.
pub(crate) fn policy(apps: usize, extra: &str) -> String {
    let mut text = format!("[space]\ninternal = [\"127.0.0.0/8\"]\n{extra}\n");
    for i in 0..apps {
        text.push_str(&format!(
            "[[app]]\nname = \"app-{i}\"\nhosts = [\"app-{i}.test\"]\n"
        ));
    }
    text
}
