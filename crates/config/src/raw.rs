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

/// Names a secret-bearing key for the errors of [`Secret`].
pub(crate) trait SecretKey {
    /// The key path as the operator reads it (`app.egress_token`).
    const NAME: &'static str;
}

/// `[[app]] egress_token`.
pub(crate) struct EgressToken;

impl SecretKey for EgressToken {
    const NAME: &'static str = "app.egress_token";
}

/// The text of a secret-bearing key. serde's type errors quote the value they met
/// (``invalid type: integer `987654321`, expected a string``), and that message reaches
/// `spaced check`, the log and `GET /config`: a token mistyped as a number would be
/// published. This type's errors name the key and the kind of value found, never the
/// value; and its `Debug` hides the text, so a stray `{:?}` of a raw section cannot print
/// it either. Other secret-bearing keys get their own [`SecretKey`] marker.
pub(crate) struct Secret<K>(pub(crate) String, std::marker::PhantomData<K>);

impl<K> std::fmt::Debug for Secret<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de, K: SecretKey> Deserialize<'de> for Secret<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<K>(std::marker::PhantomData<K>);
        /// The error for a value of the wrong kind: the key and the kind only.
        fn wrong<K: SecretKey, E: serde::de::Error>(kind: &str) -> E {
            E::custom(format_args!(
                "invalid type for {}: {kind}, expected a string (the value of a secret is not shown)",
                K::NAME
            ))
        }
        impl<'de, K: SecretKey> serde::de::Visitor<'de> for Visitor<K> {
            type Value = Secret<K>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret<K>, E> {
                Ok(Secret(v.to_owned(), std::marker::PhantomData))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret<K>, E> {
                Ok(Secret(v, std::marker::PhantomData))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("boolean"))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("integer"))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("integer"))
            }
            fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("integer"))
            }
            fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("integer"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("float"))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret<K>, E> {
                Err(wrong::<K, E>("bytes"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret<K>, A::Error> {
                Err(wrong::<K, A::Error>("array"))
            }
            // A table, and a TOML date-time (which toml hands over as a one-key map).
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret<K>, A::Error> {
                Err(wrong::<K, A::Error>("table or date-time"))
            }
        }
        d.deserialize_any(Visitor(std::marker::PhantomData))
    }
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
    pub(crate) daemon: Option<RawDaemon>,
    #[serde(default)]
    pub(crate) app: Vec<RawApp>,
    pub(crate) fleet: Option<Spanned<RawFleet>>,
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
    pub(crate) default_deny: Option<bool>,
    #[serde(default)]
    pub(crate) ports: Vec<Spanned<RawPort>>,
    pub(crate) max_per_destination: Option<Spanned<i64>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) connect_timeout: Option<S>,
    pub(crate) idle_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: S,
    #[serde(default)]
    pub(crate) probe_listen: Vec<S>,
}

/// `[daemon]`: the process itself (OPERATIONS.md "The process").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub(crate) shutdown_delay: Option<S>,
    pub(crate) drain_timeout: Option<S>,
    pub(crate) cache: Option<S>,
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
    pub(crate) egress_token: Option<Spanned<Secret<EgressToken>>>,
    pub(crate) egress_token_file: Option<S>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    pub(crate) etcd: Option<Vec<S>>,
    pub(crate) prefix: Option<S>,
    pub(crate) instance: Option<S>,
    pub(crate) lease_ttl: Option<S>,
    pub(crate) ca: Option<S>,
    pub(crate) cert: Option<S>,
    pub(crate) key: Option<S>,
    pub(crate) username: Option<S>,
    pub(crate) password_file: Option<S>,
}
