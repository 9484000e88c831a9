//! The key layout under a space's `prefix`.

/// The shared policy document.
pub fn policy(prefix: &str) -> String {
    format!("{prefix}/policy")
}

/// Every key of the space (the watch range): the prefix and a `/`, so that a space named
/// `/spaced/demo2` is not read as part of `/spaced/demo`.
pub fn all(prefix: &str) -> String {
    format!("{prefix}/")
}

/// The dyno registry's folder.
pub fn dynos(prefix: &str) -> String {
    format!("{prefix}/dynos/")
}

/// The instance registry's folder.
pub fn instances(prefix: &str) -> String {
    format!("{prefix}/instances/")
}

/// One dyno's key.
pub fn dyno(prefix: &str, app: &str, process: &str, number: u32) -> String {
    format!("{prefix}/dynos/{app}/{process}/{number}")
}

/// One instance's key.
pub fn instance(prefix: &str, name: &str) -> String {
    format!("{prefix}/instances/{name}")
}

/// How a policy document's errors are named: `etcd:PREFIX/policy`.
pub fn policy_name(prefix: &str) -> String {
    format!("etcd:{prefix}/policy")
}
