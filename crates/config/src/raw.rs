//! Serde mirrors of the TOML file. Every table denies unknown keys: a typo must never
//! silently disable a policy. Values that need checks beyond their TOML type are kept as
//! `Spanned` text so that an error can point at them.

use serde::Deserialize;
use toml::Spanned;

type S = Spanned<String>;

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
    #[serde(default)]
    pub(crate) tls_listen: Vec<S>,
    #[serde(default)]
    pub(crate) internal_listen: Vec<S>,
    pub(crate) balance: Option<S>,
    pub(crate) zone: Option<String>,
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

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawPort {
    Int(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEgress {
    #[serde(default)]
    pub(crate) listen: Vec<S>,
    #[serde(default)]
    pub(crate) socks_listen: Vec<S>,
    #[serde(default)]
    pub(crate) transparent_listen: Vec<S>,
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
    pub(crate) dyno: Vec<RawDyno>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDyno {
    pub(crate) process: Option<S>,
    pub(crate) addr: S,
    pub(crate) zone: Option<String>,
    pub(crate) number: Option<Spanned<i64>>,
}
