//! spaced-net's component tests, one binary (one link in CI): the accept loop, outbound
//! connects, PROXY headers and the relays, on real loopback sockets.
//!
//! `accept_emfile` stays a binary of its own: it lowers the process's file limit, which
//! would starve every other test running beside it in this one.

mod accept;
mod outbound;
mod proxy_header;
mod relay;
