//! The client's ticket store for `--resume`: every TLS 1.3 ticket the server sends, each
//! used once (as RFC 8446 asks of clients and rustls's own store does).
//!
//! rustls's `ClientSessionMemoryCache` keeps at most 8 tickets per server. With 32
//! connections in flight that is too few: the first run against nginx, HAProxy and spaced
//! resumed only 44–57 % of the handshakes, because connections started while the 8 were
//! taken and ran full handshakes, and tickets beyond 8 were dropped. A generator targets
//! one server, so this store keeps one queue (the server name is not a key), large enough
//! for every connection in flight to find one.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// Tickets kept at most; beyond it the oldest go (each is a few hundred bytes).
const CAPACITY: usize = 4096;

/// One target's tickets, newest used first (the oldest are the nearest to expiring).
#[derive(Debug, Default)]
pub(crate) struct TicketStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    kx_hint: Option<NamedGroup>,
    tickets: VecDeque<Tls13ClientSessionValue>,
}

impl TicketStore {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing here can panic while holding the lock, but a poisoned queue of tickets
        // is still a queue of tickets.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.state().kx_hint = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.state().kx_hint
    }

    // TLS 1.2 is not offered (the config is TLS 1.3 only): nothing to keep.
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut state = self.state();
        if state.tickets.len() >= CAPACITY {
            state.tickets.pop_front();
        }
        state.tickets.push_back(value);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.state().tickets.pop_back()
    }
}
