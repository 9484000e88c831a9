//! Fuzzes the router's parsing of a dyno's response (`crates/router/src/dyno_h1`: the head
//! with httparse, RFC 9112 framing, the chunked decoder) on arbitrary bytes: it never
//! panics or spins, never asks for more past its head limit, a HEAD response has no body,
//! and a chunked body decodes the same whether it arrives whole or in two reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(rest.first().copied().unwrap_or(0)) * 16;
    spaced_router::fuzz_dyno_response(rest, ctl & 1 == 1, split);
});
