//! What sprocket needs behind a proxy, free of I/O: the PROXY protocol
//! header HAProxy sends ahead of the client's bytes ([`header`]), and the
//! `Forwarded` / `X-Forwarded-For` request headers HTTP proxies add
//! ([`forwarded`]), read right to left against the trusted proxies.

pub mod forwarded;
pub mod header;

pub use forwarded::{Resolved, client_address};
pub use header::{HeaderError, MAX_HEADER, ProxyHeader, decode};
