//! HTTP responses sprocket writes: 101 Switching Protocols, small plain-text
//! answers, and refusals with a one-line reason.

use std::borrow::Cow;

/// A refused request: the status and a one-line reason sent as the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// HTTP status code.
    pub status: u16,
    /// Human-readable reason, sent as the body and logged.
    pub reason: Cow<'static, str>,
    /// Extra header fields (e.g. `Sec-WebSocket-Version` with a 426).
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Reject {
    /// A refusal with `status` and `reason`.
    pub fn new(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Reject {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header field to the response.
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Appends the response bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut body = self.reason.to_string();
        body.push('\n');
        write_plain(out, self.status, &self.headers, &body);
    }
}

/// A plain HTTP answer an application gives (a page, a small JSON
/// document, an error with its reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Extra header fields.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl Page {
    /// A `200 OK` page.
    pub fn ok(content_type: &'static str, body: impl Into<Cow<'static, [u8]>>) -> Self {
        Page::new(200, content_type, body)
    }

    /// A page with any status.
    pub fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Self {
        Page {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A `text/plain` page, e.g. an error with its reason.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Page::new(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }

    /// An `application/json` page.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Page::new(status, "application/json", body.into().into_bytes())
    }

    /// Adds a header field. Names and values must not hold CR or LF (the
    /// field is dropped, and logged, if they do).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
            log::error!("header {name:?} dropped: CR or LF in a header field");
        } else {
            self.headers.push((name, value));
        }
        self
    }

    /// Appends the response bytes to `out`; `keep_alive` says whether the
    /// connection stays open for the next request.
    pub fn write_to(&self, out: &mut Vec<u8>, keep_alive: bool) {
        use std::io::Write;
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n",
            self.status,
            status_text(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
        out.extend_from_slice(&self.body);
    }
}

/// Standard reason phrase for the statuses sprocket sends.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        402 => "Payment Required",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Appends a complete `text/plain` response that closes the connection.
pub fn write_plain(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)], body: &str) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        status_text(status),
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// Appends the 101 response of §4.2.2 with the accept key and, if chosen,
/// the subprotocol and the accepted extensions (§9.1).
pub fn write_switching(
    out: &mut Vec<u8>,
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
) {
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept.as_bytes());
    if let Some(p) = protocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
    }
    if let Some(e) = extensions {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_bytes() {
        let mut out = Vec::new();
        Reject::new(426, "unsupported WebSocket version")
            .header("Sec-WebSocket-Version", "13")
            .write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(s.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(s.contains("Content-Length: 30\r\n"));
        assert!(s.ends_with("\r\n\r\nunsupported WebSocket version\n"));
    }

    #[test]
    fn switching_bytes() {
        let mut out = Vec::new();
        write_switching(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", Some("chat"), None);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        );
    }
}
