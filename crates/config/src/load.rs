//! Reading a config file from disk into a compiled policy, with the digests a reload
//! compares: the one loader the daemon's file reloads, its fleet merge, `spaced check` and
//! the tests share.

use std::cell::RefCell;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::compile::{Source, parse};
use crate::error::{ConfigError, Errors};
use crate::policy::Policy;

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

/// Reads, parses, validates and compiles the config file at `path`, hashing every file it
/// reads on the way. Relative paths inside it are resolved against the file's directory.
///
/// # Errors
/// Every problem found, located.
pub fn load_file(path: &Path) -> Result<Loaded, Errors> {
    load_with(path, parse)
}

/// [`load_file`] with another parse step (the daemon's fleet merges the file with etcd's
/// `policy`). Reading, the "no such file" error and both digests are the same.
///
/// # Errors
/// Every problem found, located.
pub fn load_with(
    path: &Path,
    parse: impl FnOnce(&[u8], &Source<'_>) -> Result<Policy, Errors>,
) -> Result<Loaded, Errors> {
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Errors(vec![ConfigError::config_file(&name, &e)]))?;
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
    let source = Source {
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
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
