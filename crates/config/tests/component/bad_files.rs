//! Every validation error of CONFIG.md, each asserted as the exact `file:line:col: message`
//! an operator sees. Files named by the config are served from memory: nothing touches disk.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use spaced_config::{Source, parse};

/// A good certificate and key for `demo.test`, and a key of another pair.
struct Pem {
    cert: String,
    key: String,
    other_key: String,
}

fn pem() -> &'static Pem {
    static PEM: OnceLock<Pem> = OnceLock::new();
    PEM.get_or_init(|| {
        let a = rcgen::generate_simple_self_signed(vec!["demo.test".to_string()])
            .expect("rcgen makes a certificate");
        let b = rcgen::generate_simple_self_signed(vec!["other.test".to_string()])
            .expect("rcgen makes a certificate");
        Pem {
            cert: a.cert.pem(),
            key: a.signing_key.serialize_pem(),
            other_key: b.signing_key.serialize_pem(),
        }
    })
}

/// The files a config may name, under `/cfg`.
fn files() -> HashMap<PathBuf, Vec<u8>> {
    let p = pem();
    let mut m = HashMap::new();
    m.insert("/cfg/tls/a.crt".into(), p.cert.clone().into_bytes());
    m.insert("/cfg/tls/a.key".into(), p.key.clone().into_bytes());
    m.insert("/cfg/tls/b.key".into(), p.other_key.clone().into_bytes());
    m.insert("/cfg/tls/junk.crt".into(), b"not pem".to_vec());
    m.insert(
        "/cfg/trusted.txt".into(),
        b"# ranges\n10.0.0.0/8\n\n    192.0.2.1/24   # typo\n  bogus\n".to_vec(),
    );
    m
}

/// Parses `text` as `t.toml` in `/cfg`; returns every error line, or "ok".
fn errors(text: &str) -> String {
    let files = files();
    let read = move |p: &Path| -> io::Result<Vec<u8>> {
        files
            .get(p)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    };
    let source = Source {
        name: "t.toml",
        dir: Path::new("/cfg"),
        read: &read,
    };
    match parse(text.as_bytes(), &source) {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

const SPACE: &str = "[space]\nname = \"s\"\n";

/// `(what, text after the [space] header lines, expected)`; the line numbers in the
/// expectations count the two `SPACE` lines.
const CASES: &[(&str, &str, &str)] = &[
    (
        "unknown key in [space]",
        "bogus = 1\n",
        "t.toml:3:1: unknown key `bogus`, expected one of `name`, `internal`, `trusted`, `trusted_file`, `blocked`",
    ),
    (
        "unknown key nested",
        "[router]\n[router.timeouts]\n  conect = \"5s\"\n",
        "t.toml:5:3: unknown key `conect`, expected one of `connect`, `response`, `idle`, `client_header`, `keepalive`, `pool_idle`",
    ),
    (
        "unknown key in a dyno",
        "[[app]]\nname = \"a\"\n[[app.dyno]]\naddr = \"10.0.0.1:5000\"\nzonne = \"a\"\n",
        "t.toml:7:1: unknown key `zonne`, expected one of `process`, `addr`, `zone`, `number`",
    ),
    (
        "bad app name",
        "[[app]]\nname = \"My_App\"\n",
        "t.toml:4:8: invalid app name \"My_App\": expected 1 to 30 characters of [a-z0-9-]",
    ),
    (
        "app name too long",
        "[[app]]\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
        "t.toml:4:8: invalid app name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": expected 1 to 30 characters of [a-z0-9-]",
    ),
    (
        "bad process name",
        "[[app]]\nname = \"a\"\n[[app.dyno]]\nprocess = \"Web\"\naddr = \"10.0.0.1:5000\"\n",
        "t.toml:6:11: invalid process name \"Web\": expected 1 to 30 characters of [a-z0-9-]",
    ),
    (
        "duplicate app",
        "[[app]]\nname = \"a\"\n[[app]]\nname = \"a\"\n",
        "t.toml:6:8: duplicate app name \"a\"",
    ),
    (
        "host claimed twice",
        "[[app]]\nname = \"a\"\nhosts = [\"x.test\"]\n[[app]]\nname = \"b\"\nhosts = [\"y.test\", \"X.test\"]\n",
        "t.toml:8:20: host \"x.test\" is already claimed by app \"a\"",
    ),
    (
        "wildcard claimed twice",
        "[[app]]\nname = \"a\"\nhosts = [\"*.x.test\"]\n[[app]]\nname = \"b\"\nhosts = [\"*.x.test\"]\n",
        "t.toml:8:10: host \"*.x.test\" is already claimed by app \"a\"",
    ),
    (
        "bad host name",
        "[[app]]\nname = \"a\"\nhosts = [\"a..test\"]\n",
        "t.toml:5:10: invalid host name \"a..test\": expected DNS labels of [a-z0-9-], optionally starting with *.",
    ),
    (
        "host label starting with a hyphen",
        "[[app]]\nname = \"a\"\nhosts = [\"ok.test\", \"-a.test\"]\n",
        "t.toml:5:21: invalid host name \"-a.test\": expected DNS labels of [a-z0-9-], optionally starting with *.",
    ),
    (
        "bad CIDR",
        "[router]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.300/8\"]\n",
        "t.toml:4:34: invalid CIDR \"10.0.0.300/8\": expected an address or address/prefix",
    ),
    (
        "host bits set",
        "[egress]\ndeny = [\"10.0.0.1/8\"]\n",
        "t.toml:4:9: invalid CIDR \"10.0.0.1/8\": host bits set (did you mean 10.0.0.0/8?)",
    ),
    (
        "host bits set, IPv6",
        "[egress]\nallow = [\"2001:db8::1/32\"]\n",
        "t.toml:4:10: invalid CIDR \"2001:db8::1/32\": host bits set (did you mean 2001:db8::/32?)",
    ),
    (
        "bad socket address",
        "[router]\nlisten = [\"localhost:80\"]\n",
        "t.toml:4:11: invalid socket address \"localhost:80\": expected ip:port (e.g. 127.0.0.1:80 or [::1]:80)",
    ),
    (
        "bad dyno address",
        "[[app]]\nname = \"a\"\n[[app.dyno]]\naddr = \"10.0.0.1\"\n",
        "t.toml:6:8: invalid socket address \"10.0.0.1\": expected ip:port (e.g. 127.0.0.1:80 or [::1]:80)",
    ),
    (
        "duplicate dyno number, explicit",
        "[[app]]\nname = \"a\"\n[[app.dyno]]\naddr = \"10.0.0.1:1\"\nnumber = 3\n[[app.dyno]]\naddr = \"10.0.0.2:1\"\nnumber = 3\n",
        "t.toml:10:10: duplicate dyno number 3 for process \"web\" of app \"a\"",
    ),
    (
        "duplicate dyno number, explicit then positional",
        "[[app]]\nname = \"a\"\n[[app.dyno]]\naddr = \"10.0.0.1:1\"\nnumber = 2\n[[app.dyno]]\naddr = \"10.0.0.2:1\"\n",
        "t.toml:8:1: duplicate dyno number 2 for process \"web\" of app \"a\"",
    ),
    (
        "same number in two processes is fine",
        "[[app]]\nname = \"a\"\n[[app.dyno]]\naddr = \"10.0.0.1:1\"\n[[app.dyno]]\nprocess = \"worker\"\naddr = \"10.0.0.2:1\"\n",
        "ok",
    ),
    (
        "tls_listen without [[tls]]",
        "[router]\ntls_listen = [\"127.0.0.1:443\"]\n",
        "t.toml:4:14: router.tls_listen needs at least one [[tls]] certificate",
    ),
    (
        "unreadable certificate",
        "[[tls]]\ncert = \"tls/missing.crt\"\nkey = \"tls/a.key\"\n",
        "t.toml:4:8: certificate \"/cfg/tls/missing.crt\": cannot read: entity not found",
    ),
    (
        "unreadable key",
        "[[tls]]\ncert = \"tls/a.crt\"\nkey = \"tls/missing.key\"\n",
        "t.toml:5:7: key \"/cfg/tls/missing.key\": cannot read: entity not found",
    ),
    (
        "not a certificate",
        "[[tls]]\ncert = \"tls/junk.crt\"\nkey = \"tls/a.key\"\n",
        "t.toml:4:8: certificate \"/cfg/tls/junk.crt\": no certificate in the file",
    ),
    (
        "mismatched certificate and key",
        "[[tls]]\ncert = \"tls/a.crt\"\nkey = \"tls/b.key\"\n",
        "t.toml:5:7: key \"/cfg/tls/b.key\": does not match the certificate \"/cfg/tls/a.crt\"",
    ),
    (
        "egress listeners without source_ips",
        "[egress]\nsocks_listen = [\"127.0.0.1:1080\"]\n",
        "t.toml:4:16: egress listeners need at least one address in egress.source_ips",
    ),
    (
        "bad source_ips address",
        "[egress]\nlisten = [\"127.0.0.1:3128\"]\nsource_ips = [\"203.0.113.10\", \"203.0.113.0/24\"]\n",
        "t.toml:5:31: invalid address \"203.0.113.0/24\": expected an IPv4 or IPv6 address",
    ),
    (
        "internal app without internal_listen",
        "[router]\nlisten = [\"127.0.0.1:80\"]\n[[app]]\nname = \"a\"\nrouting = \"internal\"\n",
        "t.toml:7:11: app \"a\" has routing = \"internal\" but router.internal_listen is empty: it would be unreachable",
    ),
    (
        "bad duration",
        "[router.timeouts]\nconnect = \"5 s\"\n",
        "t.toml:4:11: invalid duration \"5 s\": expected a whole number with ms, s, m or h (e.g. \"250ms\", \"5s\")",
    ),
    (
        "zero interval",
        "[router.health]\ninterval = \"0s\"\n",
        "t.toml:4:12: invalid duration \"0s\": expected a duration above zero",
    ),
    (
        "bad port",
        "[egress]\nports = [443, \"http\", 0, 70000]\n",
        "t.toml:4:15: invalid egress.ports \"http\": expected a port from 1 to 65535\nt.toml:4:23: invalid egress.ports \"0\": expected a port from 1 to 65535\nt.toml:4:26: invalid egress.ports \"70000\": expected a port from 1 to 65535",
    ),
    (
        "wrong type",
        "[router]\nretries = \"two\"\n",
        "t.toml:4:11: invalid type: string \"two\", expected an integer",
    ),
    (
        "bad balance",
        "[router]\nbalance = \"fastest\"\n",
        "t.toml:4:11: invalid router.balance \"fastest\": expected \"least-request\", \"round-robin\" or \"random\"",
    ),
    (
        "bad zone",
        "[router]\nzone = \"a b\"\n",
        "t.toml:4:8: invalid router.zone \"a b\": expected 1 to 63 characters of [A-Za-z0-9._-]",
    ),
    (
        "one address for two listeners",
        "[router]\nlisten = [\"127.0.0.1:8080\"]\n[egress]\nlisten = [\"127.0.0.1:8080\"]\nsource_ips = [\"127.0.0.1\"]\n",
        "t.toml:6:11: listener 127.0.0.1:8080 (egress.listen) conflicts with 127.0.0.1:8080 (router.listen): both cannot be bound",
    ),
    (
        "one address twice in one list",
        "[router]\nlisten = [\"[::1]:80\", \"[::1]:80\"]\n",
        "t.toml:4:23: listener [::1]:80 (router.listen) conflicts with [::1]:80 (router.listen): both cannot be bound",
    ),
    (
        "port 0, distinct addresses and wildcards never conflict",
        "[router]\nlisten = [\"127.0.0.1:0\", \"[::1]:80\", \"0.0.0.0:80\"]\ninternal_listen = [\"127.0.0.1:0\", \"10.0.0.2:80\"]\n[resolver]\nlisten = [\"[::]:80\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        "ok",
    ),
    (
        "TOML syntax",
        "[router\n",
        "t.toml:3:8: unclosed table, expected `]`",
    ),
];

#[test]
fn every_listed_error_is_located_exactly() {
    let mut failures = Vec::new();
    for (what, body, expected) in CASES {
        let got = errors(&format!("{SPACE}{body}"));
        if got != *expected {
            failures.push(format!(
                "{what}:\n  expected: {expected}\n  got:      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_top_level_key_points_at_the_key() {
    assert_eq!(
        errors("[space]\nname = \"s\"\n[admin]\nlisten = \"127.0.0.1:1\"\n[routr]\n"),
        "t.toml:5:2: unknown key `routr`, expected one of `space`, `router`, `tls`, `resolver`, `egress`, `admin`, `daemon`, `app`, `fleet`, `logging`, `drain`"
    );
    assert_eq!(
        errors("  bogus = 1\n[space]\nname = \"s\"\n"),
        "t.toml:1:3: unknown key `bogus`, expected one of `space`, `router`, `tls`, `resolver`, `egress`, `admin`, `daemon`, `app`, `fleet`, `logging`, `drain`"
    );
}

#[test]
fn missing_space_name_points_at_the_space_header() {
    assert_eq!(
        errors("# comment\n\n[space]\ninternal = []\n"),
        "t.toml:3:1: missing required key `space.name`"
    );
    assert_eq!(
        errors("[router]\nlisten = []\n"),
        "t.toml:1:1: missing required key `space.name`"
    );
    assert_eq!(errors(""), "t.toml:1:1: missing required key `space.name`");
}

#[test]
fn bad_space_name() {
    assert_eq!(
        errors("[space]\nname = \"Demo Space\"\n"),
        "t.toml:2:8: invalid space name \"Demo Space\": expected 1 to 30 characters of [a-z0-9-]"
    );
    assert_eq!(
        errors("[space]\nname = \"\"\n"),
        "t.toml:2:8: invalid space name \"\": expected 1 to 30 characters of [a-z0-9-]"
    );
}

#[test]
fn trusted_file_errors_are_located_in_that_file() {
    assert_eq!(
        errors("[space]\nname = \"s\"\ntrusted_file = \"trusted.txt\"\n"),
        "/cfg/trusted.txt:4:5: invalid CIDR \"192.0.2.1/24\": host bits set (did you mean 192.0.2.0/24?)\n\
         /cfg/trusted.txt:5:3: invalid CIDR \"bogus\": expected an address or address/prefix"
    );
    assert_eq!(
        errors("[space]\nname = \"s\"\ntrusted_file = \"nope.txt\"\n"),
        "t.toml:3:16: cannot read file: /cfg/nope.txt: entity not found"
    );
}

#[test]
fn every_error_is_collected_in_file_order() {
    let text = "[space]\nname = \"S\"\n[[app]]\nname = \"a\"\nrouting = \"internal\"\n\
                [[app.dyno]]\naddr = \"nowhere\"\n[router]\nlisten = [\"x\"]\n";
    assert_eq!(
        errors(text),
        "t.toml:2:8: invalid space name \"S\": expected 1 to 30 characters of [a-z0-9-]\n\
         t.toml:5:11: app \"a\" has routing = \"internal\" but router.internal_listen is empty: it would be unreachable\n\
         t.toml:7:8: invalid socket address \"nowhere\": expected ip:port (e.g. 127.0.0.1:80 or [::1]:80)\n\
         t.toml:9:11: invalid socket address \"x\": expected ip:port (e.g. 127.0.0.1:80 or [::1]:80)"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        errors("[space]\nname = \"s\"  # é\n[[app]]\nname = \"a\"\nhosts = [\"é.test\"]\n"),
        "t.toml:5:10: invalid host name \"é.test\": expected DNS labels of [a-z0-9-], optionally starting with *."
    );
}

#[test]
fn invalid_utf8_is_located() {
    let read = |_: &Path| -> io::Result<Vec<u8>> { Err(io::ErrorKind::NotFound.into()) };
    let source = Source {
        name: "t.toml",
        dir: Path::new("/cfg"),
        read: &read,
    };
    let e = parse(b"[space]\nname = \"\xc3\xa9\xff\"\n", &source).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml:2:10: invalid UTF-8: a TOML file is UTF-8 text"
    );
}

#[test]
fn hostile_input_never_panics() {
    for text in [
        &b"\xff\xfe"[..],
        b"[space]\nname = \"s\"\n[egress]\nports = [-1, 99999999999999999999]\n",
        b"[space]\nname = \"s\"\n[[app]]\nname = \"a\"\n[[app.dyno]]\naddr = \"1.2.3.4:1\"\nnumber = -5\n",
        b"[space]\nname = \"s\"\n[router.timeouts]\nconnect = \"99999999999999999999h\"\n",
    ] {
        let read = |_: &Path| -> io::Result<Vec<u8>> { Err(io::ErrorKind::NotFound.into()) };
        let source = Source {
            name: "t.toml",
            dir: Path::new("/cfg"),
            read: &read,
        };
        assert!(parse(text, &source).is_err());
    }
}

#[test]
fn error_count_is_bounded() {
    let mut text = String::from("[space]\nname = \"s\"\n[router]\nlisten = [");
    for _ in 0..1000 {
        text.push_str("\"x\", ");
    }
    text.push_str("]\n");
    assert_eq!(errors(&text).lines().count(), 100);
}

#[test]
fn unreadable_files_are_classified_as_io() {
    let read = |_: &Path| -> io::Result<Vec<u8>> { Err(io::ErrorKind::NotFound.into()) };
    let source = Source {
        name: "t.toml",
        dir: Path::new("/cfg"),
        read: &read,
    };
    let missing =
        "[space]\nname = \"s\"\ntrusted_file = \"x\"\n[[tls]]\ncert = \"a\"\nkey = \"b\"\n";
    assert!(parse(missing.as_bytes(), &source).unwrap_err().is_io());
    let wrong = "[space]\nname = \"s\"\ntrusted = [\"x\"]\n";
    assert!(!parse(wrong.as_bytes(), &source).unwrap_err().is_io());
}

/// Hostile-input corpus, secrets (issue 19): a secret-bearing value of the wrong type or an
/// unusable one is reported at its place, naming the key and the problem, never the value
/// (the message is printed by `spaced check`, logged and shown by `GET /config`).
#[test]
fn a_secret_is_never_echoed() {
    let app = |value: &str| {
        format!("[space]\nname = \"s\"\n[[app]]\nname = \"api\"\negress_token = {value}\n")
    };
    // (the value as written, the text that must not appear, the problem the message names)
    let cases: &[(&str, &str, &str)] = &[
        ("987654321", "987654321", "integer"),
        ("-987654321", "987654321", "integer"),
        ("0x3ade68b1", "3ade68b1", "integer"),
        ("9876.54321", "54321", "float"),
        ("6.02e23", "6.02", "float"),
        ("true", "true", "boolean"),
        ("1979-05-27T07:32:00Z", "1979-05-27", "date-time"),
        ("07:32:00", "07:32", "date-time"),
        ("[\"s3cr3t-in-array\"]", "s3cr3t", "array"),
        ("{ v = \"s3cr3t-in-table\" }", "s3cr3t", "table"),
        ("\"\"", "egress_token = \"\"", "is empty"),
        ("\"s3cr3t\\u0001x\"", "s3cr3t", "control character"),
        ("\"\"\"s3cr3t\nsecond\"\"\"", "s3cr3t", "control character"),
        ("'s3cr3t\tTAB'", "s3cr3t", "control character"),
    ];
    for &(value, secret, problem) in cases {
        let out = errors(&app(value));
        assert!(out.starts_with("t.toml:5:16: "), "{value}: {out}");
        assert!(
            out.contains("egress_token"),
            "{value}: key not named: {out}"
        );
        assert!(out.contains(problem), "{value}: problem not named: {out}");
        assert!(
            !out.contains(secret),
            "{value}: the secret is echoed: {out}"
        );
        assert_eq!(out.lines().count(), 1, "{value}: {out}");
    }
    // Syntax errors inside the value and a repeated key: located, value not quoted.
    for (text, secret) in [
        (app("s3cr3t-bare"), "s3cr3t"),
        (app("\"s3cr3t-unterminated"), "s3cr3t"),
        (app("\"s3cr3t\\q\""), "s3cr3t"),
        (
            "[space]\nname = \"s\"\n[[app]]\nname = \"api\"\negress_token = \"first-s3cr3t\"\negress_token = \"second-s3cr3t\"\n".to_owned(),
            "s3cr3t",
        ),
    ] {
        let out = errors(&text);
        assert!(out.starts_with("t.toml:"), "{text}: {out}");
        assert!(!out.contains(secret), "{text}: the secret is echoed: {out}");
    }
}

#[test]
fn bad_drain_urls_and_logging_values_are_located() {
    let text = "[space]\nname = \"s\"\n[logging]\nformat = \"xml\"\nbuffer = 0\n\
                [[drain]]\nurl = \"gopher://u:pw@h\"\n\
                [[app]]\nname = \"a\"\ndrains = [\"https://\", \"syslog://h:70000\"]\n";
    let e = errors(text);
    assert!(
        e.contains("t.toml:4:10: invalid logging.format \"xml\""),
        "{e}"
    );
    assert!(
        e.contains("t.toml:5:10: invalid logging.buffer \"0\""),
        "{e}"
    );
    assert!(
        e.contains("t.toml:7:7: bad drain url \"gopher://u:***@h\": unknown scheme"),
        "{e}"
    );
    assert!(
        e.contains("t.toml:10:11: bad drain url \"https://\": no host"),
        "{e}"
    );
    assert!(
        e.contains("t.toml:10:23: bad drain url \"syslog://h:70000\": bad port"),
        "{e}"
    );
    assert!(!e.contains("pw"), "{e}");
}
