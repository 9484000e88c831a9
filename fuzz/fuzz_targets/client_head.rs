//! Fuzzes the router's fast path for a client's request head (`crates/router/src/front`):
//! on arbitrary bytes it never panics, and the dyno's head it makes from a head it takes
//! is one complete HTTP/1.1 head with the client's method, target and other headers in
//! order, no hop-by-hop header, and the router's forwarding headers once each.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    spaced_router::fuzz_client_head(data);
});
