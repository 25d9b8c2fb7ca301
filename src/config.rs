//! Server settings, with the defaults the binary runs with.

use crate::http::HeadLimits;
use crate::ws::Limits;
use crate::ws::deflate::DeflateConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the reactor needs to know. `Config::default()` is what
/// `sprocket` runs with when given no options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest message (across fragments) a client may send; over it: close 1009.
    pub max_message_size: usize,
    /// Largest single frame a client may send; over it: close 1009.
    pub max_frame_size: usize,
    /// Unsent bytes a connection may still hold after a write attempt
    /// (the kernel's socket buffer is full); more, and it is disconnected as
    /// a slow consumer. Keep it above the largest message you send.
    pub max_outbound: usize,
    /// Ping connections idle this long; drop them if the next interval
    /// passes with nothing heard. `None` disables pings.
    pub ping_interval: Option<Duration>,
    /// Time a connection has to complete its opening handshake.
    pub handshake_timeout: Duration,
    /// Time the peer has to answer our close frame, and to close its side
    /// of TCP after the close handshake; also the shutdown grace period.
    pub close_timeout: Duration,
    /// Open connections (including ones in their handshake); further
    /// clients get `503 Service Unavailable`.
    pub max_connections: usize,
    /// Connections from one IP address; more get `429`. 0: no limit (keep
    /// it so behind a proxy, where every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Idle time before TCP keepalive probes start on a client socket
    /// (probes then every quarter of it). `None` disables.
    pub tcp_keepalive: Option<Duration>,
    /// Largest request head (request line and headers).
    pub max_head_size: usize,
    /// Most header fields in a request head.
    pub max_headers: usize,
    /// permessage-deflate (RFC 7692): whether and how it is negotiated.
    pub deflate: DeflateConfig,
    /// Largest body of a plain HTTP request (`Content-Length`); larger: 413.
    pub max_http_body: usize,
    /// Time an outbound HTTP connection has to connect.
    pub backend_connect_timeout: Duration,
    /// Time an outbound HTTP request has for its whole response.
    pub backend_timeout: Duration,
    /// Largest outbound HTTP response body; larger: the request fails.
    pub max_backend_response: usize,
    /// Most outbound HTTP connections to one backend origin (host and
    /// port) at once; more requests wait for one in order.
    pub backend_connections: usize,
    /// How long output from a broadcast to many connections (32 or more)
    /// may wait before it is written, so that several broadcasts share one
    /// `write` per connection. Zero writes at the end of every loop turn.
    /// See docs/benchmarks.md for the trade.
    pub fanout_flush_delay: Duration,
    /// Proxies whose `Forwarded` or `X-Forwarded-For` header and PROXY
    /// protocol headers are believed (`--trusted-proxy`). Empty: none.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// The one forwarding header read from a trusted proxy
    /// (`--forwarded-header`); the other is ignored, since a proxy that
    /// sets one passes a client's own copy of the other on.
    pub forwarded_header: crate::proxy::ForwardedHeader,
    /// Every connection on the first (public) listener starts with a
    /// PROXY protocol v1 or v2 header (`--proxy-protocol`).
    pub proxy_protocol: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            max_outbound: 16 << 20,
            ping_interval: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            max_connections: 10_000,
            max_connections_per_ip: 0,
            tcp_keepalive: Some(Duration::from_secs(60)),
            max_head_size: 8 * 1024,
            max_headers: 64,
            deflate: DeflateConfig::default(),
            max_http_body: 1 << 20,
            backend_connect_timeout: Duration::from_secs(5),
            backend_timeout: Duration::from_secs(5),
            max_backend_response: 1 << 20,
            backend_connections: 32,
            fanout_flush_delay: Duration::from_millis(1),
            trusted_proxies: Vec::new(),
            forwarded_header: crate::proxy::ForwardedHeader::XForwardedFor,
            proxy_protocol: false,
        }
    }
}

impl Config {
    /// The frame decoder's limits.
    pub fn ws_limits(&self) -> Limits {
        Limits {
            max_frame: self.max_frame_size as u64,
            max_message: self.max_message_size as u64,
        }
    }

    /// What every WebSocket connection follows.
    pub fn ws_settings(&self) -> crate::ws::Settings {
        crate::ws::Settings {
            limits: self.ws_limits(),
            ping_interval: self.ping_interval,
            close_timeout: self.close_timeout,
        }
    }

    /// The head parser's limits.
    pub fn head_limits(&self) -> HeadLimits {
        HeadLimits {
            max_head: self.max_head_size,
            max_headers: self.max_headers,
        }
    }
}

/// `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds; `None` if it is
/// none of those (or overflows).
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 10 "), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "1.5s", "-1", "10d", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
