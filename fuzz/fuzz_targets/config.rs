//! Fuzzes config parsing (`spaced_config::parse`) on arbitrary bytes, with a reader that
//! fails every file it is asked for (no disk access): it never panics, never reports more
//! than 100 errors, and every error is located inside the text, 1-based. A policy that
//! parses is diffed against itself (empty) and answers host lookups.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spaced_config::{Source, parse};

fuzz_target!(|data: &[u8]| {
    let read = |_: &Path| -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    let source = Source {
        name: "fuzz.toml",
        dir: Path::new("/nonexistent"),
        read: &read,
    };
    match parse(data, &source) {
        Ok(policy) => {
            assert!(policy.diff(&policy).is_empty());
            for app in &policy.apps {
                for host in &app.hosts {
                    assert!(policy.app_for_host(host).is_some(), "{host}");
                }
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty() && errors.0.len() <= 100);
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            for e in &errors.0 {
                assert!(e.line >= 1 && e.col >= 1, "{e}");
                if e.file == "fuzz.toml" {
                    assert!(e.line <= lines, "{e}");
                }
                let _ = e.to_string();
            }
        }
    }
});
