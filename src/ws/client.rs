//! The client's side of the opening handshake (RFC 6455 §4.1), without
//! I/O: the request to send, and the checks of the server's answer. After
//! a good 101, [`super::Connection::client`] takes over.

use crate::http::head::{HeadError, HeadLimits, HeadScanner, ResponseHead, parse_response_head};
use std::fmt;

/// A `ws://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

impl WsUrl {
    /// Parses a `ws://` URL; `wss://` is refused (no TLS client yet).
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("wss") => {
                return Err(UrlError(
                    "wss:// (TLS) is not supported yet; use ws://".into(),
                ));
            }
            _ => return Err(UrlError(format!("not a ws:// URL: {url:?}"))),
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(UrlError(
                "user information in a ws:// URL is not supported".into(),
            ));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| UrlError(format!("bad host or port in {url:?}")))?;
        if host.is_empty() || target.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(UrlError(format!("bad host or path in {url:?}")));
        }
        Ok(WsUrl {
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.host_header(), self.target)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|&p| p != 0)?,
        None => 80,
    };
    Some((host, port))
}

/// A URL that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

/// Why the server's answer to the opening handshake is not a WebSocket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not an HTTP response head (or too large).
    BadResponse(HeadError),
    /// A status other than 101, with its reason and the first line of the
    /// body if it came with the head.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// §4.1: a 101 without `Upgrade: websocket` or `Connection: Upgrade`.
    NotUpgraded,
    /// §4.1: `Sec-WebSocket-Accept` missing or wrong.
    BadAccept,
    /// §4.1: a subprotocol we did not offer.
    UnofferedProtocol(String),
    /// §4.1: an extension we did not offer.
    UnofferedExtension(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadResponse(e) => write!(f, "not an HTTP response: {e}"),
            HandshakeError::Refused { status, reason } => {
                write!(f, "handshake refused: {status} {reason}")
            }
            HandshakeError::NotUpgraded => f.write_str("101 without Upgrade: websocket"),
            HandshakeError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            HandshakeError::UnofferedProtocol(p) => {
                write!(f, "server chose subprotocol {p:?}, which was not offered")
            }
            HandshakeError::UnofferedExtension(e) => {
                write!(f, "server chose extension {e:?}, which was not offered")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The opening handshake from the client's side.
pub struct ClientHandshake {
    accept: String,
    protocols: Vec<String>,
    scanner: HeadScanner,
    limits: HeadLimits,
}

/// A successful handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Bytes of the input the response head took; what follows is frames.
    pub head_len: usize,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
}

impl ClientHandshake {
    /// Appends the upgrade request for `url` to `out`. `key` is 16 random
    /// bytes (§4.1: "randomly selected"); `protocols` are offered in order.
    pub fn start(
        url: &WsUrl,
        protocols: &[&str],
        key: [u8; 16],
        out: &mut Vec<u8>,
    ) -> ClientHandshake {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        out.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
                url.target,
                url.host_header()
            )
            .as_bytes(),
        );
        if !protocols.is_empty() {
            out.extend_from_slice(
                format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        ClientHandshake {
            accept: super::accept_key(key.as_bytes()),
            protocols: protocols.iter().map(|p| (*p).to_owned()).collect(),
            scanner: HeadScanner::default(),
            limits: HeadLimits {
                max_head: 16 * 1024,
                max_headers: 100,
            },
        }
    }

    /// Looks at what the server sent so far (the same bytes as before plus
    /// any new ones): `Ok(None)` until the response head is complete.
    pub fn handle_input(&mut self, buf: &[u8]) -> Result<Option<Accepted>, HandshakeError> {
        let Some(len) = self
            .scanner
            .scan(buf, &self.limits)
            .map_err(HandshakeError::BadResponse)?
        else {
            return Ok(None);
        };
        let head =
            parse_response_head(&buf[..len], &self.limits).map_err(HandshakeError::BadResponse)?;
        let protocol = self.check(&head)?;
        Ok(Some(Accepted {
            head_len: len,
            protocol,
        }))
    }

    /// The checks of §4.1 (the client's requirements, items 1–6).
    fn check(&self, head: &ResponseHead<'_>) -> Result<Option<String>, HandshakeError> {
        if head.status != 101 {
            return Err(HandshakeError::Refused {
                status: head.status,
                reason: head.reason.to_owned(),
            });
        }
        let has = |name: &str, token: &str| {
            head.values(name)
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if !has("Upgrade", "websocket") || !has("Connection", "upgrade") {
            return Err(HandshakeError::NotUpgraded);
        }
        let mut accepts = head.values("Sec-WebSocket-Accept");
        if accepts.next() != Some(self.accept.as_str()) || accepts.next().is_some() {
            return Err(HandshakeError::BadAccept);
        }
        if let Some(ext) = head.values("Sec-WebSocket-Extensions").next() {
            return Err(HandshakeError::UnofferedExtension(ext.to_owned()));
        }
        match head.values("Sec-WebSocket-Protocol").next() {
            None => Ok(None),
            Some(p) if self.protocols.iter().any(|o| o == p) => Ok(Some(p.to_owned())),
            Some(p) => Err(HandshakeError::UnofferedProtocol(p.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = WsUrl::parse("ws://127.0.0.1:8080/echo?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 8080, "/echo?x=1")
        );
        assert_eq!(u.to_string(), "ws://127.0.0.1:8080/echo?x=1");
        let u = WsUrl::parse("WS://example.com").unwrap();
        assert_eq!(
            (u.port, u.target.as_str(), u.host_header()),
            (80, "/", "example.com".into())
        );
        let u = WsUrl::parse("ws://[::1]:9/wamp").unwrap();
        assert_eq!(
            (u.host.as_str(), u.host_header()),
            ("::1", "[::1]:9".into())
        );
        assert_eq!(WsUrl::parse("ws://h?q").unwrap().target, "/?q");
        for bad in [
            "http://h/",
            "ws://",
            "ws://h:0/",
            "ws://h:99999/",
            "ws://u@h/",
            "h:80",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(WsUrl::parse("wss://h/").unwrap_err().0.contains("TLS"));
    }

    /// The RFC's own example: key "the sample nonce" and its accept value.
    fn rfc_request() -> (ClientHandshake, Vec<u8>) {
        let url = WsUrl::parse("ws://server.example.com/chat").unwrap();
        let mut out = Vec::new();
        let hs =
            ClientHandshake::start(&url, &["chat", "superchat"], *b"the sample nonce", &mut out);
        (hs, out)
    }

    #[test]
    fn request_and_rfc_answer() {
        let (mut hs, req) = rfc_request();
        let req = String::from_utf8(req).unwrap();
        assert!(req.starts_with("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
        assert!(req.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(req.contains("Sec-WebSocket-Protocol: chat, superchat\r\n"));
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x02hi";
        for n in 0..answer.len() - 4 {
            assert_eq!(hs.handle_input(&answer[..n]), Ok(None), "prefix {n}");
        }
        let ok = hs.handle_input(answer).unwrap().unwrap();
        assert_eq!(ok.protocol.as_deref(), Some("chat"));
        assert_eq!(&answer[ok.head_len..], b"\x81\x02hi");
    }

    #[test]
    fn bad_answers() {
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let cases = [
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
                HandshakeError::Refused {
                    status: 404,
                    reason: "Not Found".into(),
                },
            ),
            (
                good.replace("Upgrade: websocket\r\n", ""),
                HandshakeError::NotUpgraded,
            ),
            (good.replace("xOo=", "xOx="), HandshakeError::BadAccept),
            (
                good.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: other\r\n\r\n"),
                HandshakeError::UnofferedProtocol("other".into()),
            ),
            (
                good.replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                ),
                HandshakeError::UnofferedExtension("permessage-deflate".into()),
            ),
        ];
        for (answer, want) in cases {
            let (mut hs, _) = rfc_request();
            assert_eq!(hs.handle_input(answer.as_bytes()), Err(want), "{answer}");
        }
        let (mut hs, _) = rfc_request();
        assert!(matches!(
            hs.handle_input(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(HandshakeError::BadResponse(_))
        ));
    }
}
