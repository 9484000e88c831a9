//! A fake dyno: an HTTP/1.1 server on 127.0.0.1:0 that answers with its name and records
//! what it saw (peer address and headers), so tests can assert on both.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the backend saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) peer: SocketAddr,
    pub(crate) path: String,
    pub(crate) headers: http::HeaderMap,
}

/// A running fake dyno.
#[derive(Clone)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    /// Starts a backend answering `name` to every request (`/health` too).
    pub(crate) async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let me = Self {
            addr,
            name: name.to_string(),
            seen: seen.clone(),
        };
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        seen.lock().unwrap().push(Seen {
                            peer,
                            path: req.uri().path().to_string(),
                            headers: req.headers().clone(),
                        });
                        let body = Bytes::from(name.clone());
                        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        me
    }

    /// Requests seen so far, health checks excluded.
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path != "/health")
            .cloned()
            .collect()
    }
}
