//! What can go wrong talking to the fleet's store.

/// A fleet operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A file named by `[fleet]` (`ca`, `cert`, `key`, `password_file`) cannot be read.
    #[error("cannot read {what} {path:?}: {reason}")]
    File {
        /// Which key named it.
        what: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// `cert` without `key` or the reverse.
    #[error("fleet.cert and fleet.key must be given together")]
    HalfIdentity,
    /// etcd refused or could not be reached.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A watch ended or was cancelled by etcd.
    #[error("etcd watch: {0}")]
    Watch(String),
    /// A value this crate wrote or reads back is not what it should be.
    #[error("{0}")]
    Invalid(String),
}
