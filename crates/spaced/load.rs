//! Reading a config file into a compiled policy, with the digests a reload compares:
//! shared by file reloads (`reload.rs`) and the fleet's merge with etcd (`fleet.rs`).

use std::cell::RefCell;
use std::path::Path;

use sha2::{Digest, Sha256};
use spaced_config::{self as config, Errors, Policy};

/// A policy read from disk with its digests.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled policy.
    pub policy: Policy,
    /// sha256 of the config file's bytes (what `/config` shows).
    pub sha256: String,
    /// sha256 over the config file and every file it names (what decides "changed").
    pub content: String,
}

/// Reads and compiles the config at `path`, hashing every file it reads on the way.
///
/// # Errors
/// Every problem found, located.
pub fn load(path: &Path) -> Result<Loaded, Errors> {
    load_with(path, config::parse)
}

/// [`load`] with another parse step: the fleet's merges the file with etcd's `policy`
/// (`fleet.rs`). Reading, the "no such file" error and both digests are the same.
pub(crate) fn load_with(
    path: &Path,
    parse: impl FnOnce(&[u8], &config::Source<'_>) -> Result<Policy, Errors>,
) -> Result<Loaded, Errors> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| Errors(vec![config::ConfigError::config_file(&name, &e)]))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let content = RefCell::new(Sha256::new());
    content.borrow_mut().update(&bytes);
    let read = |p: &Path| {
        let data = std::fs::read(p)?;
        let mut h = content.borrow_mut();
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(&data);
        Ok(data)
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let source = config::Source {
        name: &name,
        dir,
        read: &read,
    };
    let mut policy = parse(&bytes, &source)?;
    policy.files.insert(0, path.to_path_buf());
    let content = hex(&content.into_inner().finalize());
    Ok(Loaded {
        policy,
        sha256,
        content,
    })
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
