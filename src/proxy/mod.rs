//! What sprocket needs behind a proxy, free of I/O: the PROXY protocol
//! header HAProxy sends ahead of the client's bytes ([`header`]), and the
//! `Forwarded` or `X-Forwarded-For` request header HTTP proxies add
//! ([`forwarded`]; only the one named by `--forwarded-header`), read right
//! to left against the trusted proxies.

pub mod forwarded;
pub mod header;

pub use forwarded::{ForwardedHeader, Resolved, client_address, client_address_from};
pub use header::{HeaderError, MAX_HEADER, ProxyHeader, decode};
