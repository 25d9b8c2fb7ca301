//! Bounded, incremental parsing of an HTTP/1.1 request head (RFC 9112 §2–5).
//!
//! [`HeadScanner`] looks only at bytes it has not seen before, so a head
//! that arrives one byte at a time costs linear work; it rejects bytes that
//! make request smuggling possible (NUL, bare CR, bare LF) as soon as they
//! appear. [`parse_head`] then splits the complete head into borrowed parts.

use std::fmt;

/// Limits on a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head, request line to the blank line inclusive.
    pub max_head: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// What is wrong with a request head; each carries its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head did not end within the size limit.
    TooLarge,
    /// More header fields than allowed.
    TooManyHeaders,
    /// A NUL byte.
    Nul,
    /// CR not followed by LF.
    BareCr,
    /// LF not preceded by CR.
    BareLf,
    /// A header line starting with whitespace (obsolete line folding, RFC 9112 §5.2).
    ObsFold,
    /// A request line that is not `METHOD SP target SP HTTP/1.x`.
    BadRequestLine,
    /// A header line that is not `name: value` with a token name.
    BadHeader,
    /// A header value that is not UTF-8.
    BadHeaderValue,
}

impl HeadError {
    /// HTTP status for the error.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadError::TooLarge => "request head too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::Nul => "NUL byte in request head",
            HeadError::BareCr => "bare CR in request head",
            HeadError::BareLf => "bare LF in request head",
            HeadError::ObsFold => "obsolete line folding in header",
            HeadError::BadRequestLine => "malformed request line",
            HeadError::BadHeader => "malformed header field",
            HeadError::BadHeaderValue => "header value is not UTF-8",
        })
    }
}

impl std::error::Error for HeadError {}

/// Finds the end of a head across calls; 8 bytes of state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadScanner {
    scanned: usize,
}

impl HeadScanner {
    /// Looks at the bytes of `buf` not yet scanned. Returns the head length
    /// (through the blank line) once it is complete. `buf` must hold the same
    /// bytes as before plus any new ones.
    pub fn scan(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<Option<usize>, HeadError> {
        let end = buf.len().min(limits.max_head);
        for i in self.scanned..end {
            match buf[i] {
                0 => return Err(HeadError::Nul),
                b'\n' => {
                    if i == 0 || buf[i - 1] != b'\r' {
                        return Err(HeadError::BareLf);
                    }
                    if i >= 3 && buf[i - 3..i - 1] == *b"\r\n" {
                        return Ok(Some(i + 1));
                    }
                }
                _ => {
                    if i > 0 && buf[i - 1] == b'\r' {
                        return Err(HeadError::BareCr);
                    }
                }
            }
        }
        self.scanned = end;
        if buf.len() >= limits.max_head {
            return Err(HeadError::TooLarge);
        }
        Ok(None)
    }
}

/// A complete request head, borrowing the buffer it was parsed from.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// Request method, e.g. `GET`.
    pub method: &'a str,
    /// Request target as sent, e.g. `/chat?room=1`.
    pub target: &'a str,
    /// Minor version of `HTTP/1.x`.
    pub minor_version: u8,
    /// Header fields in order, values trimmed of surrounding whitespace.
    pub headers: Vec<(&'a str, &'a str)>,
}

/// Every value of the header `name` (case-insensitive) among `headers`.
fn values_of<'a, 's>(
    headers: &'s [(&'a str, &'a str)],
    name: &'s str,
) -> impl Iterator<Item = &'a str> + 's {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

impl<'a> Head<'a> {
    /// Every value of the header `name` (case-insensitive).
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        values_of(&self.headers, name)
    }

    /// The header's only value: `Ok(None)` if absent, `Err(())` if repeated.
    #[allow(clippy::result_unit_err)]
    pub fn single(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut it = self.values(name);
        let first = it.next();
        if it.next().is_some() {
            Err(())
        } else {
            Ok(first)
        }
    }
}

/// RFC 9110 §5.6.2 token characters.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a complete head (as delimited by [`HeadScanner`]).
pub fn parse_head<'a>(head: &'a [u8], limits: &HeadLimits) -> Result<Head<'a>, HeadError> {
    let body = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(HeadError::BadRequestLine)?;
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(HeadError::BadRequestLine)?;
    let request_line = std::str::from_utf8(request_line).map_err(|_| HeadError::BadRequestLine)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::BadRequestLine);
    };
    let minor_version = match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => d - b'0',
        _ => return Err(HeadError::BadRequestLine),
    };
    if !is_token(method) || target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HeadError::BadRequestLine);
    }
    let headers = parse_fields(lines, limits)?;
    Ok(Head {
        method,
        target,
        minor_version,
        headers,
    })
}

/// The header fields after a start line, each `name: value` (RFC 9112
/// §5): no obsolete line folding, no whitespace before the colon, values
/// trimmed and free of control characters.
fn parse_fields<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    limits: &HeadLimits,
) -> Result<Vec<(&'a str, &'a str)>, HeadError> {
    let mut headers = Vec::with_capacity(16);
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(HeadError::ObsFold);
        }
        if headers.len() == limits.max_headers {
            return Err(HeadError::TooManyHeaders);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeadError::BadHeader)?;
        let name = std::str::from_utf8(&line[..colon]).map_err(|_| HeadError::BadHeader)?;
        // RFC 9112 §5.1: no whitespace between name and colon.
        if !is_token(name) {
            return Err(HeadError::BadHeader);
        }
        let value =
            std::str::from_utf8(&line[colon + 1..]).map_err(|_| HeadError::BadHeaderValue)?;
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(HeadError::BadHeaderValue);
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// A complete response head, borrowing the buffer it was parsed from.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// Minor version of `HTTP/1.x`.
    pub minor_version: u8,
    /// Status code.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: &'a str,
    /// Header fields in order, values trimmed of surrounding whitespace.
    pub headers: Vec<(&'a str, &'a str)>,
}

impl<'a> ResponseHead<'a> {
    /// Every value of the header `name` (case-insensitive).
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        values_of(&self.headers, name)
    }
}

/// Parses a complete response head (as delimited by [`HeadScanner`]):
/// `HTTP/1.x SP 3DIGIT SP reason` (RFC 9112 §4), then the fields.
pub fn parse_response_head<'a>(
    head: &'a [u8],
    limits: &HeadLimits,
) -> Result<ResponseHead<'a>, HeadError> {
    let body = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(HeadError::BadRequestLine)?;
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().ok_or(HeadError::BadRequestLine)?;
    let line = std::str::from_utf8(line).map_err(|_| HeadError::BadRequestLine)?;
    let (version, rest) = line.split_once(' ').ok_or(HeadError::BadRequestLine)?;
    let minor_version = match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => d - b'0',
        _ => return Err(HeadError::BadRequestLine),
    };
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::BadRequestLine);
    }
    let status = code.parse().map_err(|_| HeadError::BadRequestLine)?;
    Ok(ResponseHead {
        minor_version,
        status,
        reason,
        headers: parse_fields(lines, limits)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads() {
        let l = HeadLimits::default();
        let h = parse_response_head(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX:  y \r\n\r\n",
            &l,
        )
        .unwrap();
        assert_eq!(
            (h.minor_version, h.status, h.reason),
            (1, 101, "Switching Protocols")
        );
        assert_eq!(h.values("upgrade").collect::<Vec<_>>(), ["websocket"]);
        assert_eq!(h.values("x").next(), Some("y"));
        let h = parse_response_head(b"HTTP/1.0 404\r\n\r\n", &l).unwrap();
        assert_eq!((h.status, h.reason), (404, ""));
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        ] {
            assert!(parse_response_head(bad, &l).is_err(), "{bad:?}");
        }
    }

    const REQ: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn every_prefix_is_partial_and_the_whole_parses() {
        let limits = HeadLimits::default();
        for n in 0..REQ.len() {
            // Fresh scanner on the prefix, and one fed byte by byte.
            assert_eq!(
                HeadScanner::default().scan(&REQ[..n], &limits),
                Ok(None),
                "prefix {n}"
            );
        }
        let mut s = HeadScanner::default();
        let mut found = None;
        for n in 1..=REQ.len() {
            if let Some(len) = s.scan(&REQ[..n], &limits).unwrap() {
                found = Some((n, len));
                break;
            }
        }
        assert_eq!(found, Some((REQ.len(), REQ.len())));
        let head = parse_head(REQ, &limits).unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/chat?room=1");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.headers.len(), 7);
        assert_eq!(head.single("host"), Ok(Some("server.example.com")));
        assert_eq!(
            head.values("sec-websocket-protocol").collect::<Vec<_>>(),
            ["chat, superchat"]
        );
    }

    #[test]
    fn scanner_errors() {
        let limits = HeadLimits {
            max_head: 64,
            max_headers: 2,
        };
        let scan = |b: &[u8]| HeadScanner::default().scan(b, &limits);
        assert_eq!(
            scan(b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
            Err(HeadError::BareLf)
        );
        assert_eq!(
            scan(b"GET / HTTP/1.1\rHost: x\r\n\r\n"),
            Err(HeadError::BareCr)
        );
        assert_eq!(scan(b"GET /\0 HTTP/1.1\r\n\r\n"), Err(HeadError::Nul));
        assert_eq!(scan(&[b'a'; 64]), Err(HeadError::TooLarge));
        assert_eq!(scan(&[b'a'; 63]), Ok(None));
    }

    #[test]
    fn parser_errors() {
        let limits = HeadLimits {
            max_head: 1024,
            max_headers: 2,
        };
        let parse = |b: &'static [u8]| parse_head(b, &limits).map(|_| ());
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: 1\r\n B: 2\r\n\r\n"),
            Err(HeadError::ObsFold)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(HeadError::TooManyHeaders)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA : 1\r\n\r\n"),
            Err(HeadError::BadHeader)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
            Err(HeadError::BadHeader)
        );
        assert_eq!(
            parse(b"GET  / HTTP/1.1\r\n\r\n"),
            Err(HeadError::BadRequestLine)
        );
        assert_eq!(
            parse(b"GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::BadRequestLine)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1 x\r\n\r\n"),
            Err(HeadError::BadRequestLine)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: \xff\r\n\r\n"),
            Err(HeadError::BadHeaderValue)
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nA: 1\r\n\r\n"), Ok(()));
    }
}
