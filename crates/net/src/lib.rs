//! What every spaced component needs around a socket and knows nothing of apps or dynos:
//! binding with the right options, the accept loop with admission before any read, the
//! shutdown handle, the PROXY protocol codec, byte relays, and Prometheus text metrics.
//!
//! It deliberately holds no policy: callers pass the admission decision in.

pub mod accept;
pub mod bind;
pub mod listeners;
pub mod metrics;
pub mod more;
pub mod outbound;
pub mod proxy_protocol;
pub mod relay;
pub mod rewind;
pub mod shutdown;
pub mod udp_batch;

pub use accept::{AcceptError, ConnGuard, ConnLimit, canonical_addr, serve};
pub use bind::{BindError, ensure_unbound, tcp_listener, udp_socket};
pub use more::send_more;
pub use outbound::{ConnectError, connect_from, original_dst};
pub use proxy_protocol::{ProxyError, ProxyHeader};
pub use relay::{Relayed, relay, relay_detailed, relay_tcp, relay_tcp_detailed};
pub use rewind::Rewind;
pub use shutdown::Shutdown;
