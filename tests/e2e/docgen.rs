//! The hidden packaging subcommands: `spaced completions SHELL` and `spaced man`.

use std::process::Command;

use crate::harness::{ConfigDir, bin};

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "spaced {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_cover_the_subcommands_in_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty");
        for sub in ["run", "check", "explain"] {
            assert!(script.contains(sub), "{shell}: no {sub}:\n{script}");
        }
        // Options of a subcommand are completed too, not just the names.
        assert!(script.contains("no-watch"), "{shell}: no --no-watch");
        // The packaging subcommands stay out of an operator's completions.
        assert!(!script.contains("completions"), "{shell}: lists itself");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let out = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bash"), "{stderr}");
}

#[test]
fn man_page_is_roff_naming_the_subcommands() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie"),
        "roff: {}",
        &page[..page.len().min(200)]
    );
    assert!(page.contains(".TH spaced 1"), "{page}");
    for sub in ["run", "check", "demo", "explain"] {
        assert!(page.contains(sub), "no {sub}:\n{page}");
    }
    assert!(
        !page.contains("completions"),
        "hidden subcommands stay hidden"
    );
}

#[test]
fn man_out_dir_writes_a_page_per_subcommand() {
    let dir = ConfigDir::new();
    let out = dir.path("man1");
    stdout_of(&["man", "--out-dir", out.to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "spaced-check.1",
            "spaced-demo.1",
            "spaced-explain.1",
            "spaced-fleet-put.1",
            "spaced-fleet-register.1",
            "spaced-fleet-status.1",
            "spaced-fleet.1",
            "spaced-run.1",
            "spaced.1"
        ]
    );
    let run = std::fs::read_to_string(out.join("spaced-run.1")).unwrap();
    assert!(run.contains("no\\-watch"), "{run}");
}

#[test]
fn help_does_not_list_the_packaging_subcommands() {
    let help = stdout_of(&["--help"]);
    assert!(help.contains("check"), "{help}");
    assert!(
        !help.contains("completions") && !help.contains("man "),
        "{help}"
    );
}
