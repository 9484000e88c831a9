//! `[[app]]` and `[[app.dyno]]`: names, hosts, routing and dyno numbering, plus the
//! host table and dyno-IP index built from them.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use toml::Spanned;

use super::{Cx, valid_host};
use crate::error::ErrorKind;
use crate::policy::{App, Dyno, HostTable, Router, Routing};
use crate::raw::{EgressToken, RawApp, RawDyno, Secret};

impl Cx<'_> {
    pub(super) fn apps(
        &mut self,
        raw: Vec<RawApp>,
        router: &Router,
    ) -> (Vec<Arc<App>>, HostTable, HashMap<IpAddr, usize>) {
        let mut apps = Vec::with_capacity(raw.len());
        let mut names: HashSet<String> = HashSet::with_capacity(raw.len());
        let mut hosts = HostTable::default();
        let mut dyno_ips = HashMap::new();
        for (index, raw) in raw.into_iter().enumerate() {
            self.name("app", &raw.name);
            let name = raw.name.get_ref().clone();
            if !names.insert(name.clone()) {
                self.push(
                    raw.name.span(),
                    ErrorKind::DuplicateApp { name: name.clone() },
                );
            }
            let routing = self.routing(&raw, router);
            let app_hosts = self.hosts(&raw, index, &mut hosts, &apps);
            let trusted = raw.trusted.as_ref().map(|t| self.ipset(t));
            let health_path = raw.health_path.as_ref().and_then(|p| self.path(p));
            let egress_token = match &raw.egress_token_file {
                Some(file) => self.token_file(raw.egress_token.as_ref(), file),
                None => raw.egress_token.as_ref().and_then(|t| self.token(t)),
            };
            let drains = raw
                .drains
                .iter()
                .filter_map(|u| self.drain(u, None))
                .collect();
            let (dynos, web) = self.dynos(&name, &raw.dyno);
            for d in &dynos {
                dyno_ips
                    .entry(crate::ipset::canonical(d.addr.ip()))
                    .or_insert(index);
            }
            apps.push(Arc::new(App {
                name,
                hosts: app_hosts,
                routing,
                trusted,
                health_path,
                egress_token,
                drains,
                dynos,
                web,
            }));
        }
        (apps, hosts, dyno_ips)
    }

    fn routing(&mut self, raw: &RawApp, router: &Router) -> Routing {
        let routing = match raw.routing.as_ref().map(|r| r.get_ref().as_str()) {
            None | Some("external") => Routing::External,
            Some("internal") => Routing::Internal,
            Some(other) => {
                let span = raw.routing.as_ref().map_or(0..0, Spanned::span);
                self.push(
                    span,
                    ErrorKind::Invalid {
                        key: "app.routing",
                        value: other.into(),
                        expected: "\"external\" or \"internal\"",
                    },
                );
                Routing::External
            }
        };
        // An internal app is served only on internal listeners: with none, it would be
        // silently unreachable, which an operator never means.
        if routing == Routing::Internal && router.internal_listen.is_empty() {
            let span = raw.routing.as_ref().map_or(raw.name.span(), Spanned::span);
            self.push(
                span,
                ErrorKind::InternalAppUnreachable {
                    app: raw.name.get_ref().clone(),
                },
            );
        }
        routing
    }

    /// Claims the app's hosts in the table; a second claim is the error, at its own value.
    fn hosts(
        &mut self,
        raw: &RawApp,
        index: usize,
        table: &mut HostTable,
        apps: &[Arc<App>],
    ) -> Vec<String> {
        let mut app_hosts: Vec<String> = Vec::with_capacity(raw.hosts.len());
        for h in &raw.hosts {
            let host = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
            let (map, key) = match host.strip_prefix("*.") {
                Some(suffix) => (&mut table.wildcard, suffix),
                None => (&mut table.exact, host.as_str()),
            };
            if !valid_host(key) {
                self.push(
                    h.span(),
                    ErrorKind::BadHost {
                        host: h.get_ref().clone(),
                        reason: "expected DNS labels of [a-z0-9-], optionally starting with *.",
                    },
                );
                continue;
            }
            let first = match map.get(key) {
                Some(&i) if i == index => Some(raw.name.get_ref().clone()),
                Some(&i) => Some(apps.get(i).map(|a| a.name.clone()).unwrap_or_default()),
                None => None,
            };
            if let Some(first) = first {
                self.push(h.span(), ErrorKind::DuplicateHost { host, first });
                continue;
            }
            map.insert(key.to_string(), index);
            app_hosts.push(host);
        }
        app_hosts
    }

    fn token(&mut self, t: &Spanned<Secret<EgressToken>>) -> Option<String> {
        let v = &t.get_ref().0;
        // The token is a Basic-auth password: control characters could not be typed in a
        // proxy URL and an empty one would be no secret at all. The error names the key
        // and the problem, never the value (it is published by `GET /config`).
        let problem = if v.is_empty() {
            Some("is empty")
        } else if v.bytes().any(|b| b.is_ascii_control()) {
            Some("holds a control character")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.push(
                t.span(),
                ErrorKind::BadSecret {
                    key: "app.egress_token",
                    problem,
                    expected: "a non-empty token without control characters",
                },
            );
            return None;
        }
        Some(v.clone())
    }

    /// Numbers dynos per process: explicit `number`, else the position among the
    /// process's dynos from 1. Two dynos with one number would be one DNS name for two
    /// addresses, so that is an error, at the second one.
    fn dynos(&mut self, app: &str, raw: &[Spanned<RawDyno>]) -> (Vec<Dyno>, Vec<usize>) {
        let mut dynos = Vec::with_capacity(raw.len());
        let mut per_process: HashMap<&str, u32> = HashMap::new();
        let mut taken: HashSet<(&str, u32)> = HashSet::with_capacity(raw.len());
        for spanned in raw {
            let d = spanned.get_ref();
            let process = match &d.process {
                Some(p) => {
                    self.name("process", p);
                    p.get_ref().as_str()
                }
                None => "web",
            };
            let position = per_process.entry(process).or_insert(0);
            *position = position.saturating_add(1);
            let position = *position;
            let number = match &d.number {
                Some(n) => self
                    .int(
                        n,
                        "dyno.number",
                        1,
                        1_000_000,
                        "a whole number from 1 to 1000000",
                    )
                    .map(|n| n as u32),
                None => Some(position),
            };
            if let Some(number) = number
                && !taken.insert((process, number))
            {
                // Explicit: at the number; positional: at the dyno's table.
                let span = d.number.as_ref().map_or(spanned.span(), Spanned::span);
                self.push(
                    span,
                    ErrorKind::DuplicateDynoNumber {
                        app: app.into(),
                        process: process.into(),
                        number,
                    },
                );
            }
            let zone = d.zone.as_ref().and_then(|z| self.zone("dyno.zone", z));
            let Some(addr) = self.socket_addr(&d.addr) else {
                continue;
            };
            dynos.push(Dyno {
                process: process.to_string(),
                addr,
                zone,
                number: number.unwrap_or(position),
            });
        }
        let web = dynos
            .iter()
            .enumerate()
            .filter(|(_, d)| d.process == "web")
            .map(|(i, _)| i)
            .collect();
        (dynos, web)
    }
}
