//! spaced-egress's component tests, one binary (one link in CI): the gateway started on
//! loopback sockets with its HTTP proxy, SOCKS5 and transparent listeners, real
//! destinations that report the source they saw, and real clients (curl, Python requests,
//! Node, Java) where installed.

mod clients;
mod harness;
mod hostile;
mod logs;
mod proxy;
mod reload;
mod socks;
mod transparent;
