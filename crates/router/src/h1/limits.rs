//! Every bound of the HTTP/1.1 codec, in one place: per side, the header lines and the
//! head bytes it buffers, and the chunked decoder's lines. They differ on purpose (a
//! fast-path head is small or goes to hyper; a dyno's head may be as large as hyper's
//! client takes), so each has a name of its own.

/// Header lines a client head may have on the fast path; more go to hyper. At most 64: the
/// fast path's scan keeps one bit per header line.
pub(crate) const FAST_MAX_HEADERS: usize = 64;
/// Largest client head the fast path buffers before the connection goes to hyper (which
/// allows far more).
pub(crate) const FAST_MAX_HEAD: usize = 16 * 1024;

/// Largest client head hyper's server buffers (all headers together); beyond it hyper
/// answers 431. HTTP/2 heads have their own, smaller bound (`conn::h2::MAX_HEADER_LIST`).
pub(crate) const HYPER_MAX_HEAD: usize = 1 << 20;
/// Header lines hyper's server parses before giving up; a little above the router's limit
/// ([`crate::headers::MAX_HEADERS`]) so that a request just over it gets our 400 (H26)
/// rather than hyper's 431.
pub(crate) const HYPER_MAX_HEADERS: usize = 1100;

/// Header lines in a dyno's response head (the request limit, as on Heroku), on both the
/// raw path and hyper's client (which defaults to 100).
pub(crate) const DYNO_MAX_HEADERS: usize = crate::headers::MAX_HEADERS;
/// Longest header name `http::HeaderName` takes; a longer one in a dyno's head is H25 on
/// both paths.
pub(crate) const DYNO_MAX_NAME: usize = 1 << 16;
/// Largest dyno response head; beyond it the response is H25. hyper's client buffers at
/// most this (its default `max_buf_size`), which bounds a head on the other path alike.
pub(crate) const DYNO_MAX_HEAD: usize = 8192 + 4096 * 100;

/// Longest chunk-size line (size, extensions, CRLF) and trailer line of a dyno's chunked
/// body.
pub(crate) const CHUNK_MAX_LINE: usize = 4096;
/// Most trailer bytes of a dyno's chunked body read and dropped.
pub(crate) const CHUNK_MAX_TRAILERS: usize = 64 * 1024;
