//! Build script of the `spaced` package: records the commit the binary is built from as
//! `SPACED_COMMIT` (`spaced --version`, `spaced_build_info`).
//!
//! `git rev-parse --short HEAD`, or `unknown` outside a checkout (a crate tarball, a
//! source package); a packager without git can set `SPACED_COMMIT` itself. Git's own paths
//! are asked for (`--git-path`) rather than assumed, so a linked worktree, whose `.git` is
//! a file, still reruns the script when HEAD moves.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SPACED_COMMIT");
    let commit = match std::env::var("SPACED_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    // HEAD moves on checkout; the branch's ref (loose or packed) on commit.
    for path in ["HEAD", "refs", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        for path in ["refs", "packed-refs"] {
            let p = std::path::Path::new(&common).join(path);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    // It becomes a Prometheus label value and a line of `--version`: nothing that would
    // need escaping there.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        .take(64)
        .collect();
    let commit = if commit.is_empty() {
        "unknown".into()
    } else {
        commit
    };
    println!("cargo:rustc-env=SPACED_COMMIT={commit}");
}

/// One line of git's output, `None` when git is missing or fails (no checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}
