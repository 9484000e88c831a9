//! Connecting to etcd as `[fleet]` says: endpoints, optional TLS, optional user.

use std::path::Path;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use spaced_config::Fleet;

use crate::error::FleetError;

/// How long one attempt to reach an endpoint may take: a dead member must not hold up the
/// others (the client balances over every endpoint).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings on idle connections: how a watch notices a store that went away without
/// closing its sockets (a partition, a killed host) rather than waiting on TCP timeouts.
const KEEPALIVE: Duration = Duration::from_secs(2);
/// Unary requests (get, put, lease grant): a store that does not answer within this is
/// treated as unreachable, and the caller retries with backoff.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, FleetError> {
    std::fs::read(path).map_err(|e| FleetError::File {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Connects to the fleet's etcd.
///
/// # Errors
/// An unreadable TLS or password file, or no endpoint answering.
pub async fn connect(cfg: &Fleet) -> Result<Client, FleetError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(KEEPALIVE, KEEPALIVE)
        .with_keep_alive_while_idle(true);
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(p) => String::from_utf8_lossy(&read("fleet.password_file", p)?)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => String::new(),
        };
        opts = opts.with_user(user.clone(), password);
    }
    let tls_wanted = cfg.ca.is_some()
        || cfg.cert.is_some()
        || cfg.etcd.iter().any(|u| u.starts_with("https://"));
    if tls_wanted {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &cfg.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read("fleet.ca", ca)?));
        }
        match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read("fleet.cert", cert)?,
                    read("fleet.key", key)?,
                ));
            }
            (None, None) => {}
            _ => return Err(FleetError::HalfIdentity),
        }
        opts = opts.with_tls(tls);
    }
    Ok(Client::connect(&cfg.etcd, Some(opts)).await?)
}
