//! HTTP/1.1 for the opening handshake, free of I/O: a bounded incremental
//! head parser, the upgrade decision, responses, and the owned [`Request`]
//! applications see.

pub mod extensions;
pub mod head;
pub mod response;
pub mod upgrade;

pub use head::{
    Head, HeadError, HeadLimits, HeadScanner, ResponseHead, parse_head, parse_response_head,
};
pub use response::{Page, Reject};
pub use upgrade::Upgrade;

use std::net::SocketAddr;

/// The opening-handshake request as applications see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET` (always `GET` for a WebSocket handshake).
    pub method: String,
    /// Path part of the target, e.g. `/chat`.
    pub path: String,
    /// Query string without the `?`, empty if none.
    pub query: String,
    /// Header fields in the order received.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Subprotocols the client offered, in its order.
    pub offered_protocols: Vec<String>,
    /// The subprotocol agreed on (set before `on_open`).
    pub protocol: Option<String>,
    /// The request body of a plain HTTP request (empty for a handshake).
    pub body: Vec<u8>,
}

impl Request {
    /// Builds the owned request from a parsed head.
    pub fn new(head: &Head<'_>, peer: SocketAddr, offered: &[&str]) -> Self {
        let (path, query) = split_target(head.target);
        Request {
            method: head.method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: head
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            peer,
            offered_protocols: offered.iter().map(|p| (*p).to_owned()).collect(),
            protocol: None,
            body: Vec::new(),
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Value of query parameter `name` (undecoded), if present.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// The path and the query (without `?`) of a request target. RFC 9112
/// §3.2.2: a server MUST accept the absolute form (`http://host:port/p?q`),
/// which proxies and some clients send (RFC 6455 §4.2.1 asks only for a
/// valid Request-URI); its scheme and authority are dropped, and an empty
/// path is `/` (RFC 9112 §3.2.1).
pub fn split_target(target: &str) -> (&str, &str) {
    let mut rest = target;
    if let Some((scheme, after)) = target.split_once("://")
        && ["http", "https", "ws", "wss"]
            .iter()
            .any(|k| scheme.eq_ignore_ascii_case(k))
    {
        rest = after.find(['/', '?']).map_or("", |i| &after[i..]);
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

#[cfg(test)]
mod tests {
    use super::split_target;

    #[test]
    fn targets_in_origin_and_absolute_form() {
        assert_eq!(split_target("/chat?room=1"), ("/chat", "room=1"));
        assert_eq!(split_target("/echo"), ("/echo", ""));
        assert_eq!(split_target("http://127.0.0.1:8080/echo"), ("/echo", ""));
        assert_eq!(split_target("HTTP://h/a/b?x=1&y"), ("/a/b", "x=1&y"));
        assert_eq!(split_target("ws://h:1"), ("/", ""));
        assert_eq!(split_target("https://h?q=2"), ("/", "q=2"));
        assert_eq!(split_target("ftp://h/x"), ("ftp://h/x", ""));
    }
}
