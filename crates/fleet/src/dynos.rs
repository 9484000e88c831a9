//! The dyno registry: `dynos/<app>/<process>/<number>` keys with JSON
//! `{"addr": "10.0.1.5:5000", "zone": "a"}` values, joined to the app's dynos from the policy.
//!
//! Joining works on the compiled policy: the apps that gain dynos are copied with the new
//! dynos appended, everything else is shared or cloned as is, so a dyno coming or going
//! never recompiles the policy (its CIDR sets, certificates, host table). A bad key is
//! skipped and reported with its name; the others apply.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use spaced_config::{App, Dyno, Policy};

/// The largest dyno number, as in the policy file.
const MAX_NUMBER: u32 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Value {
    addr: String,
    zone: Option<String>,
}

/// `policy` with every valid registry dyno added, and one message per skipped key
/// (`etcd:PREFIX/dynos/api/web/1: …`).
pub fn join(
    policy: &Policy,
    prefix: &str,
    registry: &BTreeMap<String, Vec<u8>>,
) -> (Policy, Vec<String>) {
    let mut errors = Vec::new();
    // App index → the dynos it gains.
    let mut added: BTreeMap<usize, Vec<Dyno>> = BTreeMap::new();
    // By name once, not a scan per key: 10,000 keys over 1,000 apps.
    let index: HashMap<&str, usize> = policy
        .apps
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    for (key, value) in registry {
        match parse(policy, &index, key, value, &added) {
            Ok((app, dyno)) => added.entry(app).or_default().push(dyno),
            Err(message) => errors.push(format!("etcd:{prefix}/dynos/{key}: {message}")),
        }
    }
    if added.is_empty() {
        return (policy.clone(), errors);
    }
    let mut next = policy.clone();
    for (index, mut dynos) in added {
        let Some(app) = next.apps.get_mut(index) else {
            continue;
        };
        // Keys come in text order ("10" before "2"); dynos read better in number order.
        dynos.sort_by(|a, b| (&a.process, a.number).cmp(&(&b.process, b.number)));
        let mut grown = App::clone(app);
        for d in dynos {
            next.dyno_ips.entry(d.addr.ip()).or_insert(index);
            if d.process == "web" {
                grown.web.push(grown.dynos.len());
            }
            grown.dynos.push(d);
        }
        *app = Arc::new(grown);
    }
    (next, errors)
}

fn parse(
    policy: &Policy,
    apps: &HashMap<&str, usize>,
    key: &str,
    value: &[u8],
    added: &BTreeMap<usize, Vec<Dyno>>,
) -> Result<(usize, Dyno), String> {
    let mut parts = key.split('/');
    let (Some(app), Some(process), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected a key dynos/<app>/<process>/<number>".into());
    };
    let Some(&index) = apps.get(app) else {
        return Err(format!(
            "unknown app {app:?}: the policy has no such [[app]]"
        ));
    };
    if !valid_name(process) {
        return Err(format!(
            "invalid process name {process:?}: expected 1 to 30 characters of [a-z0-9-]"
        ));
    }
    // Digits only, no leading zero: `01` and `1` would be one dyno under two keys.
    let number = number
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_NUMBER).contains(n) && n.to_string() == number)
        .ok_or_else(|| {
            format!("invalid dyno number {number:?}: expected a whole number from 1 to 1000000")
        })?;
    let v: Value = serde_json::from_slice(value).map_err(|e| {
        format!("invalid dyno value: {e} (expected JSON {{\"addr\": \"10.0.1.5:5000\", \"zone\": \"a\"}})")
    })?;
    let addr: SocketAddr = v.addr.parse().map_err(|_| {
        format!(
            "invalid socket address {:?}: expected ip:port (e.g. 10.0.1.5:5000 or [::1]:80)",
            v.addr
        )
    })?;
    if let Some(z) = &v.zone
        && !valid_zone(z)
    {
        return Err(format!(
            "invalid zone {z:?}: expected 1 to 63 characters of [A-Za-z0-9._-]"
        ));
    }
    let taken = policy
        .apps
        .get(index)
        .into_iter()
        .flat_map(|a| a.dynos.iter())
        .chain(added.get(&index).into_iter().flatten())
        .any(|d| d.process == process && d.number == number);
    if taken {
        return Err(format!(
            "duplicate dyno number {number} for process {process:?} of app {app:?}: the key is ignored"
        ));
    }
    Ok((
        index,
        Dyno {
            process: process.to_string(),
            addr,
            zone: v.zone,
            number,
        },
    ))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 30
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_zone(z: &str) -> bool {
    !z.is_empty()
        && z.len() <= 63
        && z.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn policy() -> Policy {
        let text = "[space]\nname = \"s\"\n[[app]]\nname = \"api\"\nhosts = [\"api.test\"]\n\
                    [[app.dyno]]\naddr = \"10.0.0.1:80\"\n";
        let source = spaced_config::Source {
            name: "t.toml",
            dir: Path::new("."),
            read: &|p| std::fs::read(p),
        };
        spaced_config::parse(text.as_bytes(), &source).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn good_keys_join_bad_ones_are_named() {
        let mut reg = BTreeMap::new();
        reg.insert(
            "api/web/2".to_string(),
            br#"{"addr":"10.0.0.2:80","zone":"a"}"#.to_vec(),
        );
        reg.insert(
            "api/worker/1".to_string(),
            br#"{"addr":"10.0.0.3:80"}"#.to_vec(),
        );
        reg.insert(
            "api/web/1".to_string(),
            br#"{"addr":"10.0.0.9:80"}"#.to_vec(),
        );
        reg.insert("api/web/3".to_string(), b"{not json".to_vec());
        reg.insert(
            "nope/web/1".to_string(),
            br#"{"addr":"10.0.0.4:80"}"#.to_vec(),
        );
        reg.insert(
            "api/web/04".to_string(),
            br#"{"addr":"10.0.0.4:80"}"#.to_vec(),
        );
        let (p, errors) = join(&policy(), "/s", &reg);
        let app = p.app("api").unwrap_or_else(|| panic!("api"));
        assert_eq!(app.dynos.len(), 3);
        assert_eq!(app.web_dynos().count(), 2);
        assert_eq!(
            p.dyno_ips
                .get(&"10.0.0.3".parse().unwrap_or_else(|_| panic!())),
            Some(&0)
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("etcd:/s/dynos/api/web/04: invalid dyno number"));
        assert!(errors[1].starts_with("etcd:/s/dynos/api/web/1: duplicate dyno number 1"));
        assert!(errors[2].starts_with("etcd:/s/dynos/api/web/3: invalid dyno value"));
        assert!(errors[3].starts_with("etcd:/s/dynos/nope/web/1: unknown app \"nope\""));
    }
}
