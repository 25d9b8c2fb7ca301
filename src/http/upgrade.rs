//! The opening-handshake decision of RFC 6455 §4.2.1–4.2.2: is this request
//! a valid WebSocket upgrade, a plain HTTP request, or an error, and with
//! which status.

use super::extensions::{self, Element};
use super::head::Head;
use super::response::Reject;
use base64::Engine;

/// What a well-formed request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade<'a> {
    /// A valid WebSocket opening handshake.
    WebSocket {
        /// `Sec-WebSocket-Key`, for the accept hash.
        key: &'a str,
        /// Subprotocols the client offers, in its order of preference.
        protocols: Vec<&'a str>,
        /// Extensions the client offers (`Sec-WebSocket-Extensions`, every
        /// line), in its order of preference. Malformed elements are kept
        /// as such for the negotiation to decline; they never fail the
        /// handshake.
        extensions: Vec<Element<'a>>,
    },
    /// A plain HTTP request (no `Upgrade: websocket`), any method.
    Plain {
        /// `Content-Length` of its body (0 when absent).
        body: usize,
        /// The connection may carry another request after the answer
        /// (RFC 9112 §9.3: HTTP/1.1 unless `Connection: close`; HTTP/1.0
        /// only with `Connection: keep-alive`).
        keep_alive: bool,
    },
}

/// Whether a comma-separated header list contains `token` (case-insensitive).
pub fn has_token<'a>(mut values: impl Iterator<Item = &'a str>, token: &str) -> bool {
    values.any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Applies §4.2.1 to a parsed head; plain requests are checked for what
/// their body framing needs (RFC 9112 §6).
pub fn check<'a>(head: &Head<'a>) -> Result<Upgrade<'a>, Reject> {
    let upgrade = has_token(head.values("Upgrade"), "websocket");
    if upgrade && head.method != "GET" {
        return Err(Reject::new(405, "only GET is served").header("Allow", "GET"));
    }
    if upgrade && head.minor_version < 1 {
        return Err(Reject::new(400, "HTTP/1.1 or later required"));
    }
    // Single-valued fields that disagree when repeated make room for request
    // smuggling between a proxy and us; refuse them outright.
    for name in [
        "Host",
        "Upgrade",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Content-Length",
    ] {
        if head.single(name).is_err() {
            return Err(Reject::new(400, format!("duplicate {name} header")));
        }
    }
    if head.single("Host").ok().flatten().is_none_or(str::is_empty) && head.minor_version >= 1 {
        return Err(Reject::new(400, "missing Host header"));
    }
    let chunked = head.values("Transfer-Encoding").next().is_some();
    let length = head.single("Content-Length").ok().flatten();
    if !upgrade {
        if chunked {
            return Err(Reject::new(
                411,
                "chunked request bodies are not accepted; send Content-Length",
            ));
        }
        // RFC 9112 §6.3: a Content-Length that is not a number is an
        // unrecoverable framing error.
        let body = match length {
            None => 0,
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse()
                .map_err(|_| Reject::new(413, "request body too large"))?,
            Some(_) => return Err(Reject::new(400, "malformed Content-Length")),
        };
        let connection = |token| has_token(head.values("Connection"), token);
        let keep_alive = if head.minor_version >= 1 {
            !connection("close")
        } else {
            connection("keep-alive")
        };
        return Ok(Upgrade::Plain { body, keep_alive });
    }
    if chunked || length.is_some_and(|v| v != "0") {
        return Err(Reject::new(400, "request body not allowed"));
    }
    if !has_token(head.values("Connection"), "upgrade") {
        return Err(Reject::new(400, "Connection header must include Upgrade"));
    }
    match head.single("Sec-WebSocket-Version").ok().flatten() {
        None => return Err(Reject::new(400, "missing Sec-WebSocket-Version header")),
        Some("13") => {}
        // §4.2.2: answer with the versions we understand.
        Some(_) => {
            // RFC 9110 §15.5.22: a 426 MUST name the protocol to upgrade to.
            return Err(Reject::new(426, "unsupported WebSocket version")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13"));
        }
    }
    let Some(key) = head.single("Sec-WebSocket-Key").ok().flatten() else {
        return Err(Reject::new(400, "missing Sec-WebSocket-Key header"));
    };
    // §4.2.1 item 5: the key decodes to 16 bytes.
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.map(|k| k.len()) != Ok(16) {
        return Err(Reject::new(
            400,
            "Sec-WebSocket-Key is not 16 bytes of base64",
        ));
    }
    let protocols = head
        .values("Sec-WebSocket-Protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let extensions = extensions::parse(head.values("Sec-WebSocket-Extensions"));
    Ok(Upgrade::WebSocket {
        key,
        protocols,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{HeadLimits, parse_head};

    fn run(req: &str) -> Result<Upgrade<'_>, u16> {
        let head = parse_head(req.as_bytes(), &HeadLimits::default()).unwrap();
        check(&head).map_err(|r| r.status)
    }

    const OK: &str = "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp, chat\r\n\r\n";

    #[test]
    fn valid_upgrade() {
        assert_eq!(
            run(OK),
            Ok(Upgrade::WebSocket {
                key: "dGhlIHNhbXBsZSBub25jZQ==",
                protocols: vec!["wamp", "chat"],
                extensions: vec![],
            })
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(run(&OK.replace("GET", "POST")), Err(405));
        assert_eq!(run(&OK.replace("HTTP/1.1", "HTTP/1.0")), Err(400));
        assert_eq!(run(&OK.replace("Version: 13", "Version: 8")), Err(426));
        assert_eq!(
            run(&OK.replace("Sec-WebSocket-Version: 13\r\n", "")),
            Err(400)
        );
        assert_eq!(
            run(&OK.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=")),
            Err(400)
        );
        assert_eq!(
            run(&OK.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!")),
            Err(400)
        );
        assert_eq!(
            run(&OK.replace("Connection: keep-alive, Upgrade", "Connection: keep-alive")),
            Err(400)
        );
        assert_eq!(run(&OK.replace("Host: h\r\n", "")), Err(400));
        assert_eq!(
            run(&OK.replace("Host: h\r\n", "Host: h\r\nHost: i\r\n")),
            Err(400)
        );
        assert_eq!(
            run(&OK.replace("Host: h\r\n", "Host: h\r\nTransfer-Encoding: chunked\r\n")),
            Err(400)
        );
        assert_eq!(
            run(&OK.replace("Host: h\r\n", "Host: h\r\nContent-Length: 5\r\n")),
            Err(400)
        );
        assert_eq!(
            run("GET /health HTTP/1.1\r\nHost: h\r\n\r\n"),
            Ok(Upgrade::Plain {
                body: 0,
                keep_alive: true
            })
        );
        assert_eq!(
            run(
                "POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
            ),
            Ok(Upgrade::Plain {
                body: 12,
                keep_alive: false
            })
        );
        assert_eq!(
            run("GET / HTTP/1.0\r\n\r\n"),
            Ok(Upgrade::Plain {
                body: 0,
                keep_alive: false
            })
        );
        assert_eq!(
            run("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(411)
        );
        assert_eq!(
            run("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            run("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(413)
        );
    }
}
