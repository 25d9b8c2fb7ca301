//! The body format of WebSocket-over-HTTP (`application/websocket-events`):
//! a sequence of events, each `TYPE\r\n` or `TYPE LEN\r\nCONTENT\r\n`
//! with `LEN` the content's size in hexadecimal. Sans-IO: [`encode`]
//! appends to a buffer, [`decode`] borrows every content from the body.
//!
//! Decoding is strict where a lax reading would guess: a length that is
//! not hexadecimal, content that runs past the body, or content not
//! followed by `\r\n` is an error naming the byte offset. Event types this
//! build does not know are returned as [`Kind::Other`], for the caller to
//! log and skip (a newer peer may send more).

use std::fmt;

/// The largest content one event may announce (16 MiB): a bound on what a
/// length field can make a caller expect, far above any body the HTTP
/// client accepts.
pub const MAX_CONTENT: usize = 16 << 20;
/// The most events one body may hold.
pub const MAX_EVENTS: usize = 100_000;
/// The longest type token.
const MAX_TYPE: usize = 32;

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// The opening of a connection (from the proxy), or its acceptance
    /// (from the backend).
    Open,
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
    /// A close, with the code as two big-endian bytes of content (and,
    /// from a backend, perhaps a reason after them).
    Close,
    /// The connection ended without a close handshake, or is unknown.
    Disconnect,
    /// A type this build does not know.
    Other(&'a str),
}

impl Kind<'_> {
    /// The type token as sent.
    pub fn name(&self) -> &str {
        match self {
            Kind::Open => "OPEN",
            Kind::Text => "TEXT",
            Kind::Binary => "BINARY",
            Kind::Ping => "PING",
            Kind::Pong => "PONG",
            Kind::Close => "CLOSE",
            Kind::Disconnect => "DISCONNECT",
            Kind::Other(name) => name,
        }
    }

    fn parse(token: &str) -> Kind<'_> {
        match token {
            "OPEN" => Kind::Open,
            "TEXT" => Kind::Text,
            "BINARY" => Kind::Binary,
            "PING" => Kind::Ping,
            "PONG" => Kind::Pong,
            "CLOSE" => Kind::Close,
            "DISCONNECT" => Kind::Disconnect,
            other => Kind::Other(other),
        }
    }
}

/// One event, borrowing its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Its type.
    pub kind: Kind<'a>,
    /// Its content: `None` for an event sent without a length (`OPEN\r\n`),
    /// which is not the same on the wire as an empty one (`TEXT 0\r\n\r\n`).
    pub content: Option<&'a [u8]>,
}

impl<'a> Event<'a> {
    /// An event without content.
    pub const fn bare(kind: Kind<'a>) -> Self {
        Event {
            kind,
            content: None,
        }
    }

    /// An event with content.
    pub const fn with(kind: Kind<'a>, content: &'a [u8]) -> Self {
        Event {
            kind,
            content: Some(content),
        }
    }

    /// The content, empty when there is none.
    pub fn bytes(&self) -> &'a [u8] {
        self.content.unwrap_or_default()
    }

    /// For a close: its code (from the first two content bytes) and the
    /// reason after them (lossy UTF-8). `None` without a code.
    pub fn close_code(&self) -> Option<(u16, String)> {
        let c = self.content?;
        let code = u16::from_be_bytes([*c.first()?, *c.get(1)?]);
        Some((code, String::from_utf8_lossy(&c[2..]).into_owned()))
    }
}

/// Appends `event` to `out` in the body format.
pub fn encode(event: &Event<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(event.kind.name().as_bytes());
    if let Some(content) = event.content {
        out.push(b' ');
        out.extend_from_slice(format!("{:x}", content.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(content);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a close event with `code` (and no reason) to `out`.
pub fn encode_close(code: u16, out: &mut Vec<u8>) {
    encode(&Event::with(Kind::Close, &code.to_be_bytes()), out);
}

/// Why a body is not a sequence of events. Offsets count from the start of
/// the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The event starting here has no `\r\n` after its type line.
    Unterminated(usize),
    /// The type line starting here has an empty, over-long or non-ASCII
    /// type token, or more than one space.
    BadType(usize),
    /// The length of the event starting here is not hexadecimal.
    BadLength(usize),
    /// The event starting here announces more than [`MAX_CONTENT`] bytes.
    TooLong(usize),
    /// The content of the event starting here runs past the end of the
    /// body.
    Truncated(usize),
    /// The content of the event starting here is not followed by `\r\n`.
    MissingCrlf(usize),
    /// More than [`MAX_EVENTS`] events.
    TooManyEvents,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Unterminated(at) => {
                write!(f, "event at byte {at}: no CRLF after its type")
            }
            DecodeError::BadType(at) => write!(f, "event at byte {at}: malformed type line"),
            DecodeError::BadLength(at) => {
                write!(f, "event at byte {at}: length is not hexadecimal")
            }
            DecodeError::TooLong(at) => {
                write!(
                    f,
                    "event at byte {at}: content longer than {MAX_CONTENT} bytes"
                )
            }
            DecodeError::Truncated(at) => {
                write!(f, "event at byte {at}: content runs past the body")
            }
            DecodeError::MissingCrlf(at) => {
                write!(f, "event at byte {at}: no CRLF after its content")
            }
            DecodeError::TooManyEvents => write!(f, "more than {MAX_EVENTS} events"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a whole body. An empty body is no events.
pub fn decode(body: &[u8]) -> Result<Vec<Event<'_>>, DecodeError> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if events.len() == MAX_EVENTS {
            return Err(DecodeError::TooManyEvents);
        }
        let (event, next) = decode_one(body, at)?;
        events.push(event);
        at = next;
    }
    Ok(events)
}

/// Decodes the event starting at `start`; returns it and where the next
/// one starts.
fn decode_one(body: &[u8], start: usize) -> Result<(Event<'_>, usize), DecodeError> {
    let rest = &body[start..];
    // A type line is short: look for its end only within a bound, so that
    // a body without CRLF costs no more than that to refuse.
    let window = &rest[..rest.len().min(MAX_TYPE + 1 + 16 + 2)];
    let eol = window
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(if window.len() < rest.len() {
            DecodeError::BadType(start)
        } else {
            DecodeError::Unterminated(start)
        })?;
    let line = &rest[..eol];
    let (token, len) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    if token.is_empty() || token.len() > MAX_TYPE || !token.iter().all(u8::is_ascii_graphic) {
        return Err(DecodeError::BadType(start));
    }
    // Checked above: ASCII graphic bytes only.
    let token = std::str::from_utf8(token).map_err(|_| DecodeError::BadType(start))?;
    let kind = Kind::parse(token);
    let after_line = start + eol + 2;
    let Some(len) = len else {
        return Ok((Event::bare(kind), after_line));
    };
    if len.is_empty() || len.len() > 16 || !len.iter().all(u8::is_ascii_hexdigit) {
        return Err(DecodeError::BadLength(start));
    }
    let len = std::str::from_utf8(len).map_err(|_| DecodeError::BadLength(start))?;
    let len = usize::from_str_radix(len, 16).map_err(|_| DecodeError::TooLong(start))?;
    if len > MAX_CONTENT {
        return Err(DecodeError::TooLong(start));
    }
    let end = after_line
        .checked_add(len)
        .ok_or(DecodeError::TooLong(start))?;
    let content = body
        .get(after_line..end)
        .ok_or(DecodeError::Truncated(start))?;
    if body.get(end..end + 2) == Some(b"\r\n") {
        Ok((Event::with(kind, content), end + 2))
    } else {
        Err(DecodeError::MissingCrlf(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(events: &[Event<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            encode(e, &mut out);
        }
        out
    }

    #[test]
    fn round_trips_every_kind() {
        let binary: Vec<u8> = (0..=255).collect();
        let events = [
            Event::bare(Kind::Open),
            Event::with(Kind::Text, b"hello world"),
            Event::with(Kind::Binary, &binary),
            Event::with(Kind::Text, b""),
            Event::bare(Kind::Ping),
            Event::bare(Kind::Pong),
            Event::with(Kind::Close, &[0x03, 0xe8]),
            Event::bare(Kind::Disconnect),
        ];
        let body = encoded(&events);
        assert!(body.starts_with(b"OPEN\r\nTEXT b\r\nhello world\r\nBINARY 100\r\n"));
        assert_eq!(decode(&body).unwrap(), events);
    }

    #[test]
    fn close_codes_and_reasons() {
        let mut out = Vec::new();
        encode_close(4000, &mut out);
        assert_eq!(out, b"CLOSE 2\r\n\x0f\xa0\r\n");
        let e = decode(b"CLOSE 5\r\n\x03\xe8bye\r\n").unwrap()[0];
        assert_eq!(e.close_code(), Some((1000, "bye".to_owned())));
        assert_eq!(Event::bare(Kind::Close).close_code(), None);
        assert_eq!(Event::with(Kind::Close, b"\x03").close_code(), None);
    }

    #[test]
    fn content_may_hold_crlf_and_unknown_types_pass() {
        let body = b"TEXT 4\r\n\r\n\r\n\r\nHINT 1\r\nx\r\nFUTURE\r\n";
        let events = decode(body).unwrap();
        assert_eq!(events[0], Event::with(Kind::Text, b"\r\n\r\n"));
        assert_eq!(events[1].kind, Kind::Other("HINT"));
        assert_eq!(events[2], Event::bare(Kind::Other("FUTURE")));
        assert!(decode(b"").unwrap().is_empty());
        // Upper- and lower-case hex both read.
        assert_eq!(
            decode(b"TEXT A\r\n0123456789\r\nTEXT a\r\n0123456789\r\n")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn malformed_bodies_name_the_offset() {
        use DecodeError::*;
        let cases: &[(&[u8], DecodeError)] = &[
            (b"OPEN", Unterminated(0)),
            (b"OPEN\r\nTEXT", Unterminated(6)),
            (b"TEXT zz\r\nab\r\n", BadLength(0)),
            (b"TEXT \r\n", BadLength(0)),
            (b"TEXT -1\r\n", BadLength(0)),
            (b"TEXT 1 2\r\nx\r\n", BadLength(0)),
            (b"\r\n", BadType(0)),
            (b" 1\r\nx\r\n", BadType(0)),
            (b"TE\x01XT\r\n", BadType(0)),
            (b"TEXT 5\r\nab\r\n", Truncated(0)),
            (b"TEXT 2\r\nab", MissingCrlf(0)),
            (b"TEXT 2\r\nabcd", MissingCrlf(0)),
            (b"TEXT 2\r\nab\r", MissingCrlf(0)),
            (b"TEXT ffffffffffffffff\r\n", TooLong(0)),
            (b"TEXT 1000001\r\n", TooLong(0)),
        ];
        for (body, want) in cases {
            assert_eq!(
                decode(body).unwrap_err(),
                *want,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // A long line without CRLF is refused after a bounded look.
        let long = vec![b'A'; 10_000];
        assert_eq!(decode(&long).unwrap_err(), BadType(0));
    }

    #[test]
    fn event_count_is_bounded() {
        let body = b"PING\r\n".repeat(MAX_EVENTS + 1);
        assert_eq!(decode(&body).unwrap_err(), DecodeError::TooManyEvents);
        assert_eq!(decode(&body[6..]).unwrap().len(), MAX_EVENTS);
    }
}
