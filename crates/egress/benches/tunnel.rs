//! One whole tunnel through the gateway on loopback, in-process: connect to the proxy,
//! `CONNECT` (or SOCKS5), one small request and its answer, close. Compared with the same
//! exchange made directly, the difference is the gateway's cost per tunnel (both ends run
//! on the same runtime, so this is a latency, not a CPU, measurement; the load script
//! `benches/load/egress.sh` measures CPU against the peers).
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONFIG: &str = r#"
[space]
name = "bench"
internal = ["127.0.0.0/8"]
[egress]
listen = ["127.0.0.1:0"]
socks_listen = ["127.0.0.1:0"]
source_ips = ["127.0.0.10"]
default_deny = false
"#;

async fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                    )
                    .await;
            });
        }
    });
    addr
}

async fn finish(mut s: TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"));
}

async fn via_connect(proxy: SocketAddr, target: SocketAddr) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 256];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0);
        head.extend_from_slice(&b[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    finish(s).await;
}

async fn via_socks(proxy: SocketAddr, target: SocketAddr) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.set_nodelay(true).unwrap();
    let SocketAddr::V4(t) = target else {
        panic!("v4 target")
    };
    let mut msg = vec![5, 1, 0, 5, 1, 0, 1];
    msg.extend_from_slice(&t.ip().octets());
    msg.extend_from_slice(&t.port().to_be_bytes());
    s.write_all(&msg).await.unwrap();
    let mut rep = [0u8; 12];
    s.read_exact(&mut rep).await.unwrap();
    assert_eq!((rep[1], rep[3]), (0, 0));
    finish(s).await;
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (proxy, socks, target) = rt.block_on(async {
        let src = spaced_config::Source {
            name: "bench.toml",
            dir: Path::new("."),
            read: &|p| std::fs::read(p),
        };
        let policy = spaced_config::parse(CONFIG.as_bytes(), &src).unwrap();
        let store = Arc::new(spaced_config::Store::new(policy, String::new()));
        let handle = spaced_egress::spawn(store, spaced_net::Shutdown::new())
            .await
            .unwrap();
        (handle.listen[0], handle.socks_listen[0], origin().await)
    });
    if std::env::var_os("TUNNEL_CPU").is_some() {
        // Process CPU (client + origin + gateway) per tunnel, direct vs through the gateway:
        // the difference is the gateway's CPU per tunnel, roughly.
        let n = 3000;
        let cpu = || {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
            let f: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) * 1e6 / 100.0
        };
        for (name, mode) in [("direct", 0), ("connect", 1), ("socks5", 2)] {
            let c0 = cpu();
            rt.block_on(async {
                for _ in 0..n {
                    match mode {
                        0 => finish(TcpStream::connect(target).await.unwrap()).await,
                        1 => via_connect(proxy, target).await,
                        _ => via_socks(socks, target).await,
                    }
                }
            });
            eprintln!(
                "cpu/{name}: {:.1} us per tunnel (whole process)",
                (cpu() - c0) / f64::from(n)
            );
        }
    }
    c.bench_function("tunnel/direct", |b| {
        b.iter(|| rt.block_on(async { finish(TcpStream::connect(target).await.unwrap()).await }))
    });
    c.bench_function("tunnel/connect", |b| {
        b.iter(|| rt.block_on(via_connect(proxy, target)))
    });
    c.bench_function("tunnel/socks5", |b| {
        b.iter(|| rt.block_on(via_socks(socks, target)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
