//! Why a drain's send failed: the error every transport (`stream`, `udp`, `http`, `tls`)
//! returns, kept apart from `drain` so its transports need not import their parent.

/// Why a send failed, for `last_error` and the log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// Connecting, TLS or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A TLS setup problem (bad `ca`).
    #[error("tls: {0}")]
    Tls(String),
    /// The HTTP exchange failed (including a receiver that answers garbage).
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The receiver answered, but not 2xx.
    #[error("receiver answered {0}")]
    Status(::http::StatusCode),
    /// The send took too long.
    #[error("timed out")]
    Timeout,
}
