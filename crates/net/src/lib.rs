//! What every spaced component needs around a socket and knows nothing of apps or dynos:
//! binding with the right options, the accept loop with admission before any read, the
//! shutdown handle, the PROXY protocol codec, byte relays, and Prometheus text metrics.
//!
//! It deliberately holds no policy: callers pass the admission decision in.

pub mod bind;
pub mod metrics;
pub mod shutdown;

pub use bind::{BindError, tcp_listener, udp_socket};
pub use shutdown::Shutdown;
