//! An outbound request, validated when it is built so that nothing a caller
//! passes can split it into two requests on the wire.

use crate::http::head::is_token;
use std::fmt;

/// A request to send on a [`super::ClientConn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// What is wrong with a request being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// A method that is not a token (RFC 9110 §9.1), or CONNECT, which this
    /// client does not do.
    BadMethod,
    /// A target that is not origin-form (`/…`, visible ASCII), nor `*` for OPTIONS.
    BadTarget,
    /// A header name that is not a token (so holds no CR, LF, NUL, `:` or space).
    BadHeaderName,
    /// A header value with CR, LF, NUL or another control (RFC 9110 §5.5).
    BadHeaderValue,
    /// `Host`, `Content-Length` or `Transfer-Encoding`: the client writes
    /// those itself, and a second copy would make the framing ambiguous.
    ReservedHeader,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestError::BadMethod => "request method is not a token, or is CONNECT",
            RequestError::BadTarget => "request target is not origin-form visible ASCII",
            RequestError::BadHeaderName => "request header name is not a token",
            RequestError::BadHeaderValue => "request header value holds CR, LF, NUL or a control",
            RequestError::ReservedHeader => {
                "Host, Content-Length and Transfer-Encoding are set by the client"
            }
        })
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// A request for `target` (e.g. [`super::Url::target`]) with no headers
    /// and an empty body. Methods are case-sensitive (RFC 9110 §9.1).
    pub fn new(method: &str, target: &str) -> Result<Self, RequestError> {
        if !is_token(method) || method == "CONNECT" {
            return Err(RequestError::BadMethod);
        }
        let origin_form = target.starts_with('/') && target.bytes().all(|b| b.is_ascii_graphic());
        // RFC 9112 §3.2.4: asterisk-form only for a server-wide OPTIONS.
        let asterisk_form = target == "*" && method == "OPTIONS";
        if !(origin_form || asterisk_form) {
            return Err(RequestError::BadTarget);
        }
        Ok(Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Adds a header field, after those already added.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, RequestError> {
        if !is_token(name) {
            return Err(RequestError::BadHeaderName);
        }
        if ["host", "content-length", "transfer-encoding"]
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
        {
            return Err(RequestError::ReservedHeader);
        }
        // RFC 9110 §5.5: field values exclude CTLs but HTAB; CR, LF and NUL
        // would let a value end the line and start another (smuggling).
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(RequestError::BadHeaderValue);
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The caller's header fields, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body bytes.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Appends the request line and header section (through the blank line)
    /// to `out`, with `Host: authority`.
    pub fn encode_head(&self, authority: &str, out: &mut Vec<u8>) {
        let mut line = |parts: &[&[u8]]| {
            parts.iter().for_each(|p| out.extend_from_slice(p));
            out.extend_from_slice(b"\r\n");
        };
        let m = self.method.as_bytes();
        line(&[m, b" ", self.target.as_bytes(), b" HTTP/1.1"]);
        // RFC 9112 §3.2: Host first, in every HTTP/1.1 request.
        line(&[b"Host: ", authority.as_bytes()]);
        // RFC 9110 §8.6: a user agent sends Content-Length when the method
        // defines a meaning for the body (POST, PUT, even when it is empty),
        // and whenever there is a body.
        if !self.body.is_empty() || self.method == "POST" || self.method == "PUT" {
            line(&[b"Content-Length: ", self.body.len().to_string().as_bytes()]);
        }
        for (name, value) in &self.headers {
            line(&[name.as_bytes(), b": ", value.as_bytes()]);
        }
        line(&[]);
    }

    /// Appends the whole request, head and body, to `out`.
    pub fn encode(&self, authority: &str, out: &mut Vec<u8>) {
        self.encode_head(authority, out);
        out.extend_from_slice(&self.body);
    }

    /// Takes the body, which [`super::ClientConn`] sends without copying.
    pub(super) fn into_body(self) -> Vec<u8> {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(r: &Request) -> String {
        let mut out = Vec::new();
        r.encode("b.local:8080", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_line_host_length_headers_body() {
        let r = Request::new("POST", "/auth?x=1")
            .unwrap()
            .header("Content-Type", "application/json")
            .unwrap()
            .header("X-Tab", "a\tb")
            .unwrap()
            .body(b"{\"a\":1}".to_vec());
        assert_eq!(
            encoded(&r),
            "POST /auth?x=1 HTTP/1.1\r\nHost: b.local:8080\r\nContent-Length: 7\r\n\
             Content-Type: application/json\r\nX-Tab: a\tb\r\n\r\n{\"a\":1}"
        );
        assert_eq!(
            encoded(&Request::new("POST", "/").unwrap()),
            "POST / HTTP/1.1\r\nHost: b.local:8080\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            encoded(&Request::new("PUT", "/").unwrap()),
            "PUT / HTTP/1.1\r\nHost: b.local:8080\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            encoded(&Request::new("GET", "/").unwrap()),
            "GET / HTTP/1.1\r\nHost: b.local:8080\r\n\r\n"
        );
        assert_eq!(
            encoded(&Request::new("DELETE", "/").unwrap().body(b"x".to_vec())),
            "DELETE / HTTP/1.1\r\nHost: b.local:8080\r\nContent-Length: 1\r\n\r\nx"
        );
        assert_eq!(
            encoded(&Request::new("OPTIONS", "*").unwrap()),
            "OPTIONS * HTTP/1.1\r\nHost: b.local:8080\r\n\r\n"
        );
    }

    #[test]
    fn rejects_what_could_smuggle() {
        let r = || Request::new("GET", "/").unwrap();
        for v in ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b", "a\x7fb", "a\x1bb"] {
            assert_eq!(
                r().header("X", v),
                Err(RequestError::BadHeaderValue),
                "{v:?}"
            );
        }
        for n in ["X\r\nY", "X Y", "X:", "", "X\0", "\u{e9}"] {
            assert_eq!(
                r().header(n, "1"),
                Err(RequestError::BadHeaderName),
                "{n:?}"
            );
        }
        for n in ["Host", "content-length", "Transfer-Encoding"] {
            assert_eq!(
                r().header(n, "1"),
                Err(RequestError::ReservedHeader),
                "{n:?}"
            );
        }
        assert!(r().header("Connection", "close").is_ok());
        assert!(r().header("X", "caf\u{e9}").is_ok());
        for m in ["", "G T", "GET\r\n", "CONNECT"] {
            assert_eq!(Request::new(m, "/"), Err(RequestError::BadMethod), "{m:?}");
        }
        for t in ["", "x", "/a b", "/\r\n", "*", "http://a/"] {
            assert_eq!(
                Request::new("GET", t),
                Err(RequestError::BadTarget),
                "{t:?}"
            );
        }
    }
}
