//! Serde mirrors of the TOML file. Every table denies unknown keys: a typo must never
//! silently disable a policy. Values that need checks beyond their TOML type are kept as
//! `Spanned` text so that an error can point at them.

use serde::Deserialize;
use toml::Spanned;

type S = Spanned<String>;

/// A list whose own position matters for an error (e.g. `tls_listen` without `[[tls]]`).
pub(crate) type SpannedList = Option<Spanned<Vec<S>>>;

/// The items of an optional spanned list (empty when absent).
pub(crate) fn items(list: &SpannedList) -> &[S] {
    list.as_ref().map_or(&[], |l| l.get_ref().as_slice())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) space: Option<Spanned<RawSpace>>,
    pub(crate) router: Option<RawRouter>,
    #[serde(default)]
    pub(crate) tls: Vec<RawTls>,
    pub(crate) resolver: Option<RawResolver>,
    pub(crate) egress: Option<RawEgress>,
    pub(crate) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(crate) app: Vec<RawApp>,
    pub(crate) logging: Option<RawLogging>,
    #[serde(default)]
    pub(crate) drain: Vec<RawDrain>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    pub(crate) format: Option<S>,
    pub(crate) timestamps: Option<bool>,
    pub(crate) stdout: Option<bool>,
    pub(crate) buffer: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDrain {
    pub(crate) url: S,
    pub(crate) ca: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpace {
    pub(crate) name: Option<S>,
    #[serde(default)]
    pub(crate) internal: Vec<S>,
    pub(crate) trusted: Option<Vec<S>>,
    pub(crate) trusted_file: Option<S>,
    #[serde(default)]
    pub(crate) blocked: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouter {
    #[serde(default)]
    pub(crate) listen: Vec<S>,
    pub(crate) tls_listen: SpannedList,
    #[serde(default)]
    pub(crate) internal_listen: Vec<S>,
    pub(crate) balance: Option<S>,
    pub(crate) zone: Option<S>,
    #[serde(default)]
    pub(crate) proxy_protocol: bool,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<S>,
    pub(crate) retries: Option<Spanned<i64>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) timeouts: Option<RawTimeouts>,
    pub(crate) health: Option<RawHealth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub(crate) connect: Option<S>,
    pub(crate) response: Option<S>,
    pub(crate) idle: Option<S>,
    pub(crate) client_header: Option<S>,
    pub(crate) keepalive: Option<S>,
    pub(crate) pool_idle: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub(crate) interval: Option<S>,
    pub(crate) timeout: Option<S>,
    pub(crate) path: Option<S>,
    pub(crate) unhealthy_after: Option<Spanned<i64>>,
    pub(crate) healthy_after: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: S,
    pub(crate) key: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResolver {
    #[serde(default)]
    pub(crate) listen: Vec<S>,
    pub(crate) domain: Option<S>,
    pub(crate) ttl: Option<S>,
    #[serde(default)]
    pub(crate) upstreams: Vec<S>,
}

/// `egress.ports` items: `443` or `"443"`. Hand-written rather than `untagged` so that a
/// wrong type says what was expected instead of naming a Rust enum.
#[derive(Debug)]
pub(crate) enum RawPort {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawPort;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port number or a string of digits")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawPort, E> {
                Ok(RawPort::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawPort, E> {
                Ok(RawPort::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPort, E> {
                Ok(RawPort::Text(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEgress {
    pub(crate) listen: SpannedList,
    pub(crate) socks_listen: SpannedList,
    pub(crate) transparent_listen: SpannedList,
    #[serde(default)]
    pub(crate) source_ips: Vec<S>,
    #[serde(default)]
    pub(crate) allow: Vec<S>,
    pub(crate) deny: Option<Vec<S>>,
    #[serde(default)]
    pub(crate) ports: Vec<Spanned<RawPort>>,
    pub(crate) max_per_destination: Option<Spanned<i64>>,
    pub(crate) connect_timeout: Option<S>,
    pub(crate) idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub(crate) name: S,
    #[serde(default)]
    pub(crate) hosts: Vec<S>,
    pub(crate) routing: Option<S>,
    pub(crate) trusted: Option<Vec<S>>,
    pub(crate) health_path: Option<S>,
    pub(crate) egress_token: Option<S>,
    #[serde(default)]
    pub(crate) drains: Vec<S>,
    #[serde(default)]
    pub(crate) dyno: Vec<Spanned<RawDyno>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDyno {
    pub(crate) process: Option<S>,
    pub(crate) addr: S,
    pub(crate) zone: Option<S>,
    pub(crate) number: Option<Spanned<i64>>,
}
