//! The router's component tests, one binary (one link in CI): a real router started with
//! `spaced_router::spawn` on loopback sockets, real dynos, real clients.
//!
//! `harness` is the general harness (a router, recording dynos, a keep-alive client);
//! `security::harness` adds clients bound to chosen loopback sources and raw exchanges,
//! which the security and hostile-input tests use.

mod errors;
mod framing;
mod front;
mod harness;
mod health;
mod hostile;
mod logline;
mod park;
mod proxy;
mod reload;
mod security;
mod sim;
mod slow_read;
mod smoke;
mod tls;
mod tls_resume;
