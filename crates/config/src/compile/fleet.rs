//! `[fleet]`, and [`parse_fleet`]: the local file merged with the fleet's
//! shared policy document (OPERATIONS.md "Fleet").
//!
//! Both documents are parsed to span-carrying TOML tables; the policy's spans are moved past
//! the end of the local text, and the two tables are merged into one that serde reads as
//! usual. Every error then lands in the right document: `Cx::push` maps an offset beyond
//! the local text back into the policy (`etcd:PREFIX/policy:LINE:COL`).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::{Cx, Source, humanize};
use crate::error::{ConfigError, ErrorKind, Errors};
use crate::policy::{Fleet, Policy};
use crate::raw::{RawConfig, RawFleet};

/// Keys of the fleet's shared policy, by top-level table; `*` means the whole table.
/// Everything else belongs to one host (OPERATIONS.md "Fleet", "Keys").
const SHARED: &[(&str, &[&str])] = &[
    ("space", &["internal", "trusted", "blocked"]),
    ("router", &["balance", "retries", "timeouts", "health"]),
    ("resolver", &["domain", "ttl", "upstreams"]),
    (
        "egress",
        &[
            "allow",
            "deny",
            "default_deny",
            "ports",
            "max_per_destination",
            "connect_timeout",
            "idle_timeout",
        ],
    ),
    ("app", &["*"]),
];

/// Keys of one host's file, by top-level table. A key in neither list is left to serde,
/// which names it as unknown (a typo is not a key "in the wrong place").
const LOCAL: &[(&str, &[&str])] = &[
    ("space", &["name", "trusted_file"]),
    (
        "router",
        &[
            "listen",
            "tls_listen",
            "internal_listen",
            "zone",
            "proxy_protocol",
            "trusted_proxies",
            "max_connections",
        ],
    ),
    ("resolver", &["listen"]),
    (
        "egress",
        &[
            "listen",
            "socks_listen",
            "transparent_listen",
            "source_ips",
            "max_connections",
        ],
    ),
    ("tls", &["*"]),
    ("admin", &["*"]),
    ("daemon", &["*"]),
    ("logging", &["*"]),
    ("drain", &["*"]),
    ("fleet", &["*"]),
];

fn listed(list: &[(&str, &[&str])], table: &str, key: Option<&str>) -> bool {
    list.iter().any(|(t, keys)| {
        *t == table && (keys.contains(&"*") || key.is_some_and(|k| keys.contains(&k)))
    })
}

/// Parses, validates and compiles a host's file (`local`, with `[fleet]`) merged with the
/// fleet's shared `policy` document, named `policy_name` in errors. `None`: no policy
/// written yet (the local part alone, no apps).
///
/// A shared key in the local file, or a host key in the policy, is an error naming it.
///
/// # Errors
/// Every problem found, located in the document it is in.
pub fn parse_fleet(
    local: &[u8],
    source: &Source<'_>,
    policy: Option<&[u8]>,
    policy_name: &str,
) -> Result<Policy, Errors> {
    let local_text = utf8(local, source.name)?;
    let policy_text = match policy {
        Some(p) => utf8(p, policy_name)?,
        None => "",
    };
    // The policy starts on a line of its own, so its columns are unchanged.
    let start = local_text.len() + 1;
    let combined = format!("{local_text}\n{policy_text}");
    let mut cx = Cx {
        source,
        text: &combined,
        lines: Vec::new(),
        errors: Vec::new(),
        files: Vec::new(),
        claims: Vec::new(),
        second: Some((start, policy_name)),
    };
    let mut root = match DeTable::parse(local_text) {
        Ok(t) => t,
        Err(e) => {
            cx.push(e.span().unwrap_or(0..0), toml_error(&e));
            return Err(Errors(cx.errors));
        }
    };
    let mut shared = match DeTable::parse(policy_text) {
        Ok(t) => t,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.push(shift(span, start), toml_error(&e));
            return Err(Errors(cx.errors));
        }
    };
    shift_table(shared.get_mut(), start);
    wrong_place(
        &mut cx,
        root.get_mut(),
        SHARED,
        "the fleet's policy (etcd), not the local file",
    );
    wrong_place(
        &mut cx,
        shared.get_mut(),
        LOCAL,
        "each host's file, not the fleet's policy",
    );
    merge(root.get_mut(), shared.into_inner());
    let raw: RawConfig = match serde::Deserialize::deserialize(toml::de::Deserializer::from(root)) {
        Ok(raw) => raw,
        Err(e) => {
            cx.push(e.span().unwrap_or(0..0), toml_error(&e));
            return Err(Errors(cx.errors));
        }
    };
    let policy = cx.compile(raw);
    if cx.errors.is_empty() {
        Ok(policy)
    } else {
        // The local file first, then the policy, each in position order.
        cx.errors
            .sort_by_key(|e| (e.file != source.name, e.file == policy_name, e.line, e.col));
        Err(Errors(cx.errors))
    }
}

fn utf8<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, Errors> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        Errors(vec![ConfigError {
            file: name.to_string(),
            line,
            col,
            kind: ErrorKind::Toml {
                message: "invalid UTF-8: a TOML document is UTF-8 text".into(),
            },
        }])
    })
}

fn toml_error(e: &toml::de::Error) -> ErrorKind {
    ErrorKind::Toml {
        message: humanize(e.message().lines().next().unwrap_or("invalid TOML")),
    }
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

fn shift_table(table: &mut DeTable<'_>, by: usize) {
    let old = std::mem::take(table);
    for (k, mut v) in old {
        let key = Spanned::new(shift(k.span(), by), k.into_inner());
        shift_value(&mut v, by);
        table.insert(key, v);
    }
}

fn shift_value(value: &mut Spanned<DeValue<'_>>, by: usize) {
    let span = shift(value.span(), by);
    let inner = std::mem::replace(value.get_mut(), DeValue::Boolean(false));
    let inner = match inner {
        DeValue::Table(mut t) => {
            shift_table(&mut t, by);
            DeValue::Table(t)
        }
        DeValue::Array(mut a) => {
            for item in a.iter_mut() {
                shift_value(item, by);
            }
            DeValue::Array(a)
        }
        other => other,
    };
    *value = Spanned::new(span, inner);
}

/// Records and removes every key of `table` that `other` lists (the keys of the other
/// place), so that the rest is still checked and every misplaced key is named at once.
fn wrong_place(
    cx: &mut Cx<'_>,
    table: &mut DeTable<'_>,
    other: &[(&str, &[&str])],
    belongs: &'static str,
) {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    for (key, value) in table.iter_mut() {
        let name = key.get_ref().as_ref();
        if listed(other, name, None) {
            found.push((key.span(), name.to_string()));
            continue;
        }
        if let DeValue::Table(sub) = value.get_mut() {
            let misplaced: Vec<Spanned<DeString<'_>>> = sub
                .keys()
                .filter(|k| listed(other, name, Some(k.get_ref())))
                .cloned()
                .collect();
            for k in misplaced {
                found.push((k.span(), format!("{name}.{}", k.get_ref())));
                sub.remove(k.get_ref().as_ref());
            }
        }
    }
    for (span, key) in found {
        if !key.contains('.') {
            table.remove(key.as_str());
        }
        cx.push(span, ErrorKind::WrongPlace { key, belongs });
    }
}

/// Adds the policy's keys to the local table; tables in both are merged key by key (after
/// [`wrong_place`], no key is in both).
fn merge<'i>(local: &mut DeTable<'i>, shared: DeTable<'i>) {
    for (key, value) in shared {
        match local.get_mut(key.get_ref().as_ref()) {
            Some(existing) => {
                if let (DeValue::Table(mine), DeValue::Table(_)) =
                    (existing.get_mut(), value.get_ref())
                {
                    if let DeValue::Table(theirs) = value.into_inner() {
                        merge(mine, theirs);
                    }
                } else {
                    *existing = value;
                }
            }
            None => {
                local.insert(key, value);
            }
        }
    }
}

impl Cx<'_> {
    pub(super) fn fleet(&mut self, raw: Spanned<RawFleet>) -> Option<Fleet> {
        let span = raw.span();
        let raw = raw.into_inner();
        let mut ok = true;
        let etcd: Vec<String> = match &raw.etcd {
            Some(list) if !list.is_empty() => list
                .iter()
                .filter_map(|u| {
                    let text = u.get_ref();
                    let rest = text
                        .strip_prefix("http://")
                        .or_else(|| text.strip_prefix("https://"));
                    if rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', ' '])) {
                        Some(text.clone())
                    } else {
                        self.push(
                            u.span(),
                            ErrorKind::Invalid {
                                key: "fleet.etcd",
                                value: text.clone(),
                                expected: "an http:// or https:// URL of an etcd endpoint, e.g. \"http://10.0.0.3:2379\"",
                            },
                        );
                        ok = false;
                        None
                    }
                })
                .collect(),
            _ => {
                self.push(span.clone(), ErrorKind::MissingKey { key: "fleet.etcd" });
                ok = false;
                Vec::new()
            }
        };
        let prefix = match &raw.prefix {
            Some(p) => {
                let text = p.get_ref().trim_end_matches('/');
                if p.get_ref().starts_with('/')
                    && !text.is_empty()
                    && !text.bytes().any(|b| b.is_ascii_control() || b == b' ')
                {
                    text.to_string()
                } else {
                    self.push(
                        p.span(),
                        ErrorKind::Invalid {
                            key: "fleet.prefix",
                            value: p.get_ref().clone(),
                            expected: "a key prefix starting with '/', e.g. \"/spaced/demo\"",
                        },
                    );
                    ok = false;
                    String::new()
                }
            }
            None => {
                self.push(
                    span,
                    ErrorKind::MissingKey {
                        key: "fleet.prefix",
                    },
                );
                ok = false;
                String::new()
            }
        };
        let instance = raw.instance.as_ref().and_then(|i| {
            let v = i.get_ref();
            let good = !v.is_empty()
                && v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !good {
                self.push(
                    i.span(),
                    ErrorKind::Invalid {
                        key: "fleet.instance",
                        value: v.clone(),
                        expected: "1 to 63 characters of [A-Za-z0-9._-]",
                    },
                );
                ok = false;
            }
            good.then(|| v.clone())
        });
        let lease_ttl = match &raw.lease_ttl {
            Some(d) => match self.duration(d, true) {
                Some(t) if t.as_secs() >= 1 => t,
                Some(_) => {
                    self.push(
                        d.span(),
                        ErrorKind::Invalid {
                            key: "fleet.lease_ttl",
                            value: d.get_ref().clone(),
                            expected: "at least \"1s\" (etcd leases count whole seconds)",
                        },
                    );
                    ok = false;
                    std::time::Duration::from_secs(10)
                }
                None => {
                    ok = false;
                    std::time::Duration::from_secs(10)
                }
            },
            None => std::time::Duration::from_secs(10),
        };
        let file = |v: &Option<Spanned<String>>| {
            v.as_ref()
                .filter(|p| !p.get_ref().is_empty())
                .map(|p| self.source.dir.join(p.get_ref()))
        };
        let (ca, cert, key, password_file) = (
            file(&raw.ca),
            file(&raw.cert),
            file(&raw.key),
            file(&raw.password_file),
        );
        let username = raw
            .username
            .as_ref()
            .filter(|u| !u.get_ref().is_empty())
            .map(|u| u.get_ref().clone());
        ok.then_some(Fleet {
            etcd,
            prefix,
            instance,
            lease_ttl,
            ca,
            cert,
            key,
            username,
            password_file,
        })
    }
}
