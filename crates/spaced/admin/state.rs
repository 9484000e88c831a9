//! What the admin and probe listeners share: the [`State`] their handlers read, the
//! [`Kind`] of surface a listener serves, and the [`Cuts`] counted when a listener closes a
//! connection itself; a leaf that the handlers (`routes`) and the connections (`conn`) use.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use spaced_config::Store;
use spaced_net::metrics::{self, Counter};

use crate::components::Components;
use crate::reload::Reloader;

/// What the admin handlers read.
pub(crate) struct State {
    pub(crate) store: Arc<Store>,
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) components: Arc<Components>,
    /// Set once every listener is bound and a policy is loaded.
    pub(crate) ready: Arc<AtomicBool>,
    /// With `[fleet]`: `/fleet`, the etcd revision in `/config`, `spaced_fleet_*` metrics.
    pub(crate) fleet: Option<Arc<crate::fleet::Link>>,
    /// Connections the admin and probe listeners closed themselves.
    pub(crate) cuts: Cuts,
}

/// Which surface a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `admin.listen`: everything, to a `Host` naming it.
    Admin,
    /// `admin.probe_listen`: `GET /healthz`, `/readyz`, `/metrics` only, any `Host`
    /// (kubelet sends the pod IP, Prometheus the target it discovered).
    Probe,
}

/// Why a connection was closed by the listener, not by its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Beyond [`MAX_CONNECTIONS`](super::MAX_CONNECTIONS): closed at accept.
    OverLimit,
    /// A request head took longer than `client_header`.
    SlowHead,
    /// Idle longer than `keepalive` between requests.
    Idle,
}

impl Cut {
    /// The `reason` label of `spaced_admin_connections_cut_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::OverLimit => "over_limit",
            Self::SlowHead => "client_header",
            Self::Idle => "keepalive",
        }
    }
}

/// Connections the admin and probe listeners closed themselves, by listener and reason.
#[derive(Debug, Default)]
pub(crate) struct Cuts {
    counts: [[Counter; 3]; 2],
}

impl Cuts {
    pub(super) fn count(&self, kind: Kind, why: Cut) {
        self.counts[kind as usize][why as usize].inc();
    }

    /// `spaced_admin_connections_cut_total{listener,reason}`.
    pub(crate) fn render(&self, out: &mut String) {
        const NAME: &str = "spaced_admin_connections_cut_total";
        metrics::header(
            out,
            NAME,
            "counter",
            "Admin and probe connections closed by spaced: over the cap, a slow head, idle.",
        );
        for (kind, name) in [(Kind::Admin, "admin"), (Kind::Probe, "probe")] {
            for why in [Cut::OverLimit, Cut::SlowHead, Cut::Idle] {
                let labels = format!("listener=\"{name}\",reason=\"{}\"", why.label());
                metrics::sample(
                    out,
                    NAME,
                    &labels,
                    self.counts[kind as usize][why as usize].get(),
                );
            }
        }
    }
}
