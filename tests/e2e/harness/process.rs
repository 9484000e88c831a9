//! A `spaced run` subprocess started by any command line (prlimit, systemd-socket-activate,
//! a copy of the binary), with its log lines captured, and blocking load clients that count
//! every failure: keep-alive HTTP, one connection per request, DNS over UDP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// A program `spaced` runs under, found or (under CI) a loud failure; `None` (skip, with the
/// reason printed) otherwise.
pub(crate) fn tool(name: &str, package: &str) -> Option<String> {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return Some(p);
        }
    }
    spaced_testkit::skip(&format!("{name} not found (Debian package {package})"));
    None
}

/// A process whose output is read line by line into `lines` (and echoed).
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) lines: Arc<Mutex<Vec<String>>>,
    /// PIDs of processes it upgraded into, killed on drop too.
    pub(crate) others: Vec<u32>,
}

impl Proc {
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        // Log lines go to stdout; start-up failures and other programs' words to stderr.
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let sink = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("spaced: {line}");
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Self {
            child,
            lines,
            others: Vec::new(),
        }
    }

    /// Waits until a log line contains every one of `parts`; returns it.
    pub(crate) fn wait_line(&self, parts: &[&str], timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            assert!(
                start.elapsed() < timeout,
                "no log line with {parts:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many log lines contain `part`.
    pub(crate) fn count(&self, part: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(part))
            .count()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        for pid in &self.others {
            kill(*pid, 9);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `sig` to `pid` (std cannot; the `kill` command can).
pub(crate) fn kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped).
pub(crate) fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// One request on `s`: its status and whether the response closes the connection.
fn exchange(s: &mut TcpStream, host: &str, close: bool) -> std::io::Result<(u16, bool)> {
    let extra = if close { "Connection: close\r\n" } else { "" };
    write!(s, "GET / HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((status, text.contains("\r\nconnection: close")))
}

/// Counts of a load client.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// What the failures were, for the assertion message.
    pub(crate) errors: Mutex<Vec<String>>,
}

impl Counts {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }

    /// Fails the test with the summary when any request failed; `what` names the clients.
    pub(crate) fn assert_none_failed(&self, what: &str) {
        assert_eq!(
            self.failed.load(Ordering::Relaxed),
            0,
            "{what}: {}",
            self.summary()
        );
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "ok {} failed {} {:?}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.errors.lock().unwrap()
        )
    }
}

/// Load clients running until `stop`.
pub(crate) struct Load {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) keepalive: Arc<Counts>,
    pub(crate) fresh: Arc<Counts>,
    pub(crate) dns: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `keepalive` clients reusing their connection until told `Connection: close`, one
    /// client opening a connection per request, and (when `dns` is given) one sending UDP
    /// queries for `name`, each of which must be answered.
    pub(crate) fn start(
        router: SocketAddr,
        host: &str,
        keepalive: usize,
        dns: Option<(SocketAddr, &str)>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut me = Self {
            stop: Arc::clone(&stop),
            keepalive: Arc::default(),
            fresh: Arc::default(),
            dns: Arc::default(),
            threads: Vec::new(),
        };
        for _ in 0..keepalive {
            let (stop, counts, host) = (
                Arc::clone(&stop),
                Arc::clone(&me.keepalive),
                host.to_string(),
            );
            me.threads.push(std::thread::spawn(move || {
                let mut conn: Option<TcpStream> = None;
                while !stop.load(Ordering::Relaxed) {
                    let s = match conn.as_mut() {
                        Some(s) => s,
                        None => match TcpStream::connect(router) {
                            Ok(s) => {
                                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                                conn.insert(s)
                            }
                            Err(e) => {
                                counts.fail(format!("connect: {e}"));
                                continue;
                            }
                        },
                    };
                    match exchange(s, &host, false) {
                        Ok((200, close)) => {
                            counts.ok.fetch_add(1, Ordering::Relaxed);
                            if close {
                                conn = None;
                            }
                        }
                        Ok((status, _)) => {
                            counts.fail(format!("status {status}"));
                            conn = None;
                        }
                        Err(e) => {
                            counts.fail(format!("keep-alive exchange: {e}"));
                            conn = None;
                        }
                    }
                }
            }));
        }
        {
            let (stop, counts, host) = (Arc::clone(&stop), Arc::clone(&me.fresh), host.to_string());
            me.threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let got = TcpStream::connect(router).and_then(|mut s| {
                        s.set_read_timeout(Some(Duration::from_secs(10)))?;
                        exchange(&mut s, &host, true)
                    });
                    match got {
                        Ok((200, _)) => {
                            counts.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, _)) => counts.fail(format!("status {status}")),
                        Err(e) => counts.fail(format!("new connection: {e}")),
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        if let Some((server, name)) = dns {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&me.dns));
            let name = Name::from_ascii(name).unwrap();
            me.threads.push(std::thread::spawn(move || {
                let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                let mut id: u16 = 0;
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    id = id.wrapping_add(1);
                    let mut q = Message::query();
                    q.metadata.id = id;
                    q.add_query(Query::query(name.clone(), RecordType::A));
                    udp.send_to(&q.to_vec().unwrap(), server).unwrap();
                    // Answers to an earlier, late query are skipped: only this id counts.
                    let answered = loop {
                        match udp.recv_from(&mut buf) {
                            Ok((n, _)) => match Message::from_vec(&buf[..n]) {
                                Ok(m) if m.metadata.id == id => break !m.answers.is_empty(),
                                _ => continue,
                            },
                            Err(_) => break false,
                        }
                    };
                    if answered {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counts.fail(format!("query {id} unanswered"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        me
    }

    pub(crate) fn finish(self) -> Self {
        self.stop.store(true, Ordering::Relaxed);
        let Self {
            stop,
            keepalive,
            fresh,
            dns,
            threads,
        } = self;
        for t in threads {
            t.join().unwrap();
        }
        Self {
            stop,
            keepalive,
            fresh,
            dns,
            threads: Vec::new(),
        }
    }
}
