//! Hot reload through every trigger, as an operator would do it, against a real subprocess.

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::harness::{ConfigDir, Spaced, config_json, free_port, http, policy, wait_for};

const APP_A: &str =
    "\n[[app]]\nname = \"a\"\nhosts = [\"a.example\"]\n[[app.dyno]]\naddr = \"127.0.0.1:1\"\n";
const APP_B: &str = "\n[[app]]\nname = \"b\"\nhosts = [\"b.example\"]\n[[app.dyno]]\naddr = \"127.0.0.1:2\"\n[[app.dyno]]\naddr = \"127.0.0.1:3\"\n";
const WAIT: Duration = Duration::from_secs(10);

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn file_edits_by_rename_and_symlink_swap_reload_and_bad_edits_do_not() {
    let dir = ConfigDir::new();
    let admin = admin_addr();
    std::fs::write(dir.path("trusted.txt"), "127.0.0.0/8\n").unwrap();
    dir.write_atomic("spaced.toml", &policy(admin, APP_A));
    let mut spaced = Spaced::start(&dir.path("spaced.toml"), admin, &[]);
    let first = config_json(admin);
    assert_eq!(first["version"], 1);
    assert_eq!(first["apps"], 1);
    assert_eq!(first["dynos"], 1);
    assert!(first["last_error"].is_null());
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);

    // An editor's atomic rename.
    dir.write_atomic("spaced.toml", &policy(admin, &format!("{APP_A}{APP_B}")));
    wait_for("version 2 after rename", WAIT, || spaced.version() == 2);
    assert_eq!(config_json(admin)["dynos"], 3);

    // A named file (trusted_file) edited alone also reloads.
    dir.write_atomic("trusted.txt", "127.0.0.0/8\n10.0.0.0/8 # office\n");
    wait_for("version 3 after trusted_file edit", WAIT, || {
        spaced.version() == 3
    });

    // An invalid edit: rejected, the old policy keeps serving, the error is shown.
    dir.write_atomic(
        "spaced.toml",
        &policy(
            admin,
            "\n[[app]]\nname = \"a\"\nhosts = [\"a.example\"]\nnope = 1\n",
        ),
    );
    wait_for("last_error after a bad edit", WAIT, || {
        !config_json(admin)["last_error"].is_null()
    });
    let after_bad = config_json(admin);
    assert_eq!(after_bad["version"], 3);
    assert_eq!(after_bad["dynos"], 3);
    assert!(
        after_bad["last_error"]
            .as_str()
            .unwrap()
            .contains("spaced.toml:"),
        "{after_bad}"
    );
    let (status, body) = http(admin, "POST", "/reload").unwrap();
    assert_eq!(status, 422, "{body}");

    // Fixed: applied, error cleared.
    dir.write_atomic("spaced.toml", &policy(admin, APP_B));
    wait_for("version 4 after the fix", WAIT, || spaced.version() == 4);
    assert!(config_json(admin)["last_error"].is_null());

    // Unchanged file: 200 with the same version.
    let (status, body) = http(admin, "POST", "/reload").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], 4);

    spaced.signal(15);
    assert_eq!(
        spaced.wait_exit(Duration::from_secs(35)),
        Some(0),
        "SIGTERM exits 0"
    );
}

#[test]
fn kubernetes_style_symlinked_directory_swap_reloads() {
    // ConfigMap layout: spaced.toml -> ..data/spaced.toml, ..data -> ..v1; an update writes
    // ..v2, then renames a new ..data symlink over the old one.
    let dir = ConfigDir::new();
    let admin = admin_addr();
    let root = dir.dir.path();
    for (v, apps) in [("..v1", APP_A), ("..v2", APP_B)] {
        std::fs::create_dir(root.join(v)).unwrap();
        std::fs::write(root.join(v).join("spaced.toml"), policy(admin, apps)).unwrap();
        std::fs::write(root.join(v).join("trusted.txt"), "127.0.0.0/8\n").unwrap();
    }
    symlink("..v1", root.join("..data")).unwrap();
    symlink("..data/spaced.toml", root.join("spaced.toml")).unwrap();
    symlink("..data/trusted.txt", root.join("trusted.txt")).unwrap();
    let spaced = Spaced::start(&root.join("spaced.toml"), admin, &[]);
    assert_eq!(config_json(admin)["dynos"], 1);

    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    wait_for("version 2 after the symlink swap", WAIT, || {
        spaced.version() == 2
    });
    assert_eq!(config_json(admin)["dynos"], 2);
}

#[test]
fn sighup_reloads_without_a_watcher() {
    let dir = ConfigDir::new();
    let admin = admin_addr();
    std::fs::write(dir.path("trusted.txt"), "127.0.0.0/8\n").unwrap();
    dir.write_atomic("spaced.toml", &policy(admin, APP_A));
    let mut spaced = Spaced::start(&dir.path("spaced.toml"), admin, &["--no-watch"]);
    dir.write_atomic("spaced.toml", &policy(admin, APP_B));
    // The pause is the test: a window in which a watcher would have reloaded.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        spaced.version(),
        1,
        "no watcher: nothing happens until asked"
    );
    spaced.signal(1);
    wait_for("version 2 after SIGHUP", WAIT, || spaced.version() == 2);
    let (status, metrics) = http(admin, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("spaced_config_version 2"), "{metrics}");
    assert!(
        metrics.contains("spaced_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    spaced.signal(2);
    assert_eq!(
        spaced.wait_exit(Duration::from_secs(35)),
        Some(0),
        "SIGINT exits 0"
    );
}

#[test]
fn other_files_written_beside_the_config_do_not_reload() {
    let dir = ConfigDir::new();
    let admin = admin_addr();
    std::fs::write(dir.path("trusted.txt"), "127.0.0.0/8\n").unwrap();
    dir.write_atomic("spaced.toml", &policy(admin, APP_A));
    let spaced = Spaced::start(&dir.path("spaced.toml"), admin, &[]);
    let reloads = || {
        let (status, metrics) = http(admin, "GET", "/metrics").unwrap();
        assert_eq!(status, 200);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("spaced_reloads_total{result=\"ok\"} "))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let before = reloads();
    // A log written line by line and a file renamed into place, as other tools in the
    // same directory do.
    for i in 0..5 {
        std::fs::write(dir.path("app.log"), format!("line {i}\n")).unwrap();
        dir.write_atomic("notes.txt", &format!("{i}\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pause is the test: a window in which a reload must not happen.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        reloads(),
        before,
        "writes to other files reloaded the config"
    );

    // The config itself still reloads.
    dir.write_atomic("spaced.toml", &policy(admin, APP_B));
    wait_for("version 2 after the edit", WAIT, || spaced.version() == 2);
    assert_ne!(reloads(), before);
}

/// Issue 19: a secret mistyped in an edit (an integer `egress_token`) is rejected by key
/// and problem; neither `POST /reload` nor `GET /config`'s `last_error` shows the value.
#[test]
fn a_rejected_secret_is_not_published_by_the_admin_api() {
    let dir = ConfigDir::new();
    let admin = admin_addr();
    std::fs::write(dir.path("trusted.txt"), "127.0.0.0/8\n").unwrap();
    dir.write_atomic("spaced.toml", &policy(admin, APP_A));
    let _spaced = Spaced::start(&dir.path("spaced.toml"), admin, &["--no-watch"]);
    for bad in [
        "egress_token = 987654321",
        "egress_token = [\"s3cr3t-987654321\"]",
        "egress_token = \"s3cr3t\\u0007987654321\"",
    ] {
        dir.write_atomic("spaced.toml", &policy(admin, &format!("{APP_A}{bad}\n")));
        let (status, body) = http(admin, "POST", "/reload").unwrap();
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("egress_token"), "{body}");
        assert!(!body.contains("987654321"), "{bad}: {body}");
        let last = config_json(admin)["last_error"].to_string();
        assert!(last.contains("egress_token"), "{last}");
        assert!(!last.contains("987654321"), "{bad}: {last}");
    }
}
