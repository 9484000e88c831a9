//! Policies from TOML text, as every component's tests build them: through the real
//! parser and compiler (`spaced_config::parse`), so a test policy is checked exactly as an
//! operator's file is.

use std::path::Path;

use spaced_config::{Policy, Source};

/// A policy from TOML text; files it names (`trusted_file`, certificates) are read from
/// disk relative to the current directory.
///
/// # Panics
/// When the text does not compile: the test's own policy is wrong.
pub fn policy(toml: &str) -> Policy {
    parse(toml, Path::new("."), &|p: &Path| std::fs::read(p))
}

/// A policy whose relative file names are resolved against `dir` (a test's temp dir).
///
/// # Panics
/// When the text does not compile.
pub fn policy_in(toml: &str, dir: &Path) -> Policy {
    parse(toml, dir, &|p: &Path| std::fs::read(p))
}

/// A policy whose named files are served from memory: `(file name, bytes)`, matched on
/// the path's last components, so no test writes certificates to disk.
///
/// # Panics
/// When the text does not compile.
pub fn policy_with_files<S: AsRef<str>>(toml: &str, files: &[(S, Vec<u8>)]) -> Policy {
    let read = |p: &Path| {
        files
            .iter()
            .find(|(name, _)| p.ends_with(name.as_ref()))
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    parse(toml, Path::new("."), &read)
}

fn parse(toml: &str, dir: &Path, read: &dyn Fn(&Path) -> std::io::Result<Vec<u8>>) -> Policy {
    let source = Source {
        name: "test.toml",
        dir,
        read,
    };
    match spaced_config::parse(toml.as_bytes(), &source) {
        Ok(p) => p,
        Err(e) => panic!("test policy does not compile: {e}\n{toml}"),
    }
}
