//! RESP2, the Redis serialization protocol, sans I/O.
//!
//! Spec: "Redis serialization protocol specification" (redis.io, RESP2
//! types). Each reply starts with a type byte and ends with CRLF:
//! `+` simple string, `-` error, `:` integer, `$` bulk string (length line,
//! then exactly that many bytes, then CRLF; `$-1` is the null bulk), `*`
//! array (count line, then that many replies; `*-1` is the null array).
//!
//! [`decode`] is a push parser in the httparse mould: `Ok(None)` means "need
//! more bytes" and the buffer is left alone; `Ok(Some((reply, used)))` hands
//! back one reply spanning the first `used` bytes. A bulk's length line is
//! parsed first and the buffer length compared with what the bulk needs
//! before anything is copied, so a declared length never allocates before its
//! bytes arrived and a big bulk that trickles in costs one short header parse
//! per call. [`Decoder`] does the same but remembers the elements of an
//! unfinished array across calls, so a long array that trickles in is parsed
//! once, not once per call.
//!
//! Commands go the other way as arrays of bulk strings ([`encode_command`]),
//! which is what redis-server expects from clients ("Sending commands to a
//! Redis server").

use std::fmt;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a status line. Bytes that are not UTF-8 become U+FFFD.
    Simple(String),
    /// `-ERR ...`: an error reply from the server (not a protocol error).
    /// Bytes that are not UTF-8 become U+FFFD.
    Error(String),
    /// `:42`: a signed 64-bit integer.
    Integer(i64),
    /// `$3 foo`: binary-safe bytes; `None` is the null bulk `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`: nested replies; `None` is the null array `*-1`.
    Array(Option<Vec<Reply>>),
}

/// Bounds on what one reply may make the decoder hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (redis-server's own `proto-max-bulk-len` default
    /// is 512 MiB; a client rarely needs that much).
    pub max_bulk: usize,
    /// Most array elements in one reply, counted across all nested arrays.
    pub max_elements: usize,
    /// Deepest nesting of arrays (a top-level array is depth 1).
    pub max_depth: usize,
    /// Longest line (simple string, error, integer, length), CRLF excluded.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 64 << 20,
            max_elements: 1 << 20,
            max_depth: 16,
            max_line: 64 << 10,
        }
    }
}

/// What can be wrong with the bytes a server sent. Every one is fatal for
/// the connection: the stream can't be resynchronised, so the caller drops
/// it and reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A type byte that is not one of `+ - : $ *` (RESP3 types included:
    /// we never ask for RESP3 with `HELLO 3`).
    BadType(u8),
    /// A `$` or `*` length that is not `-1` or a non-negative decimal.
    BadLength,
    /// A `:` line that is not a decimal `i64`.
    BadInteger,
    /// No CRLF within [`Limits::max_line`] bytes.
    LineTooLong,
    /// A bulk longer than [`Limits::max_bulk`].
    BulkTooLarge,
    /// More array elements than [`Limits::max_elements`].
    TooManyElements,
    /// Arrays nested deeper than [`Limits::max_depth`].
    TooDeep,
    /// A CR not followed by LF, an LF not preceded by CR, or a bulk whose
    /// data is not followed by CRLF.
    MissingCrlf,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::BadType(t) => write!(f, "unknown RESP type byte {t:#04x}"),
            RespError::BadLength => f.write_str("malformed RESP length"),
            RespError::BadInteger => f.write_str("malformed RESP integer"),
            RespError::LineTooLong => f.write_str("RESP line too long"),
            RespError::BulkTooLarge => f.write_str("RESP bulk string too large"),
            RespError::TooManyElements => f.write_str("too many RESP array elements"),
            RespError::TooDeep => f.write_str("RESP arrays nested too deep"),
            RespError::MissingCrlf => f.write_str("RESP line not terminated by CRLF"),
        }
    }
}

impl std::error::Error for RespError {}

/// Decodes the reply at the head of `buf`: `Ok(None)` if more bytes are
/// needed (nothing consumed), else the reply and how many bytes it spans.
/// Stateless; see [`Decoder`] to keep the work done on a long array.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Reply, usize)>, RespError> {
    Decoder::new().decode(buf, limits)
}

/// Appends `args` as one command: an array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        push_decimal(out, arg.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// An array whose elements are still arriving.
#[derive(Clone, Debug)]
struct Open {
    items: Vec<Reply>,
    left: usize,
}

/// A RESP2 decoder that keeps the elements of an unfinished reply.
///
/// Invariants (rustls's deframer style): `buf` always starts at a reply
/// boundary; after `Ok(None)` the next call must get the same bytes plus
/// any new ones; `pos` is how far into `buf` complete elements were parsed
/// (always an element boundary) and `stack` holds the arrays they belong to.
/// After `Ok(Some(_))` or an error the decoder is back at its start state.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    stack: Vec<Open>,
    pos: usize,
    elements: usize,
}

/// One element header, parsed.
enum Item {
    Value(Reply),
    ArrayStart(usize),
}

impl Decoder {
    /// A decoder at a reply boundary.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Forgets any unfinished reply (after the caller dropped its buffer).
    pub fn reset(&mut self) {
        self.stack.clear();
        self.pos = 0;
        self.elements = 0;
    }

    /// As [`decode`], resuming after the elements parsed by earlier calls
    /// that returned `Ok(None)` on a prefix of `buf`.
    pub fn decode(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(Reply, usize)>, RespError> {
        let result = self.step(buf, limits);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    fn step(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<(Reply, usize)>, RespError> {
        loop {
            let rest = buf.get(self.pos..).unwrap_or_default();
            let Some((item, len)) = element(rest, limits)? else {
                return Ok(None);
            };
            self.pos += len;
            let mut value = match item {
                Item::Value(v) => v,
                Item::ArrayStart(n) => {
                    self.open_array(n, buf.len() - self.pos, limits)?;
                    continue;
                }
            };
            // Close every array the value completes.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(Some((value, self.pos)));
                };
                top.items.push(value);
                top.left -= 1;
                if top.left > 0 {
                    break;
                }
                let done = self.stack.pop().map(|o| o.items).unwrap_or_default();
                value = Reply::Array(Some(done));
            }
        }
    }

    fn open_array(&mut self, n: usize, available: usize, limits: &Limits) -> Result<(), RespError> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > limits.max_elements {
            return Err(RespError::TooManyElements);
        }
        if self.stack.len() >= limits.max_depth {
            return Err(RespError::TooDeep);
        }
        // Reserve only what the bytes already here could hold (an element
        // is at least 3 bytes, `+\r\n`), never the declared count.
        let items = Vec::with_capacity(n.min(available / 3));
        self.stack.push(Open { items, left: n });
        Ok(())
    }
}

/// Parses the element header at the head of `buf` (and a bulk's data).
fn element(buf: &[u8], limits: &Limits) -> Result<Option<(Item, usize)>, RespError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
        return Err(RespError::BadType(kind));
    }
    let Some((text, head)) = line(&buf[1..], limits.max_line)? else {
        return Ok(None);
    };
    let head = head + 1;
    let item = match kind {
        b'+' => Item::Value(Reply::Simple(String::from_utf8_lossy(text).into_owned())),
        b'-' => Item::Value(Reply::Error(String::from_utf8_lossy(text).into_owned())),
        b':' => Item::Value(Reply::Integer(
            parse_i64(text).ok_or(RespError::BadInteger)?,
        )),
        b'*' => match parse_len(text)? {
            None => Item::Value(Reply::Array(None)),
            Some(0) => Item::Value(Reply::Array(Some(Vec::new()))),
            Some(n) => Item::ArrayStart(n),
        },
        _ => return bulk(buf, head, parse_len(text)?, limits),
    };
    Ok(Some((item, head)))
}

/// A bulk string whose length line spans `buf[..head]`.
fn bulk(
    buf: &[u8],
    head: usize,
    len: Option<usize>,
    limits: &Limits,
) -> Result<Option<(Item, usize)>, RespError> {
    let Some(len) = len else {
        return Ok(Some((Item::Value(Reply::Bulk(None)), head)));
    };
    if len > limits.max_bulk {
        return Err(RespError::BulkTooLarge);
    }
    // The length is checked against what arrived before anything is copied.
    let end = head.checked_add(len).ok_or(RespError::BulkTooLarge)?;
    let Some(crlf) = buf.get(end..end.saturating_add(2)) else {
        return Ok(None);
    };
    if crlf != b"\r\n" {
        return Err(RespError::MissingCrlf);
    }
    let data = buf[head..end].to_vec();
    Ok(Some((Item::Value(Reply::Bulk(Some(data))), end + 2)))
}

/// The line at the head of `buf` and its length including CRLF. RESP lines
/// end with CRLF and may contain neither CR nor LF.
fn line(buf: &[u8], max_line: usize) -> Result<Option<(&[u8], usize)>, RespError> {
    // Room for max_line bytes of text and the CR.
    let window = &buf[..buf.len().min(max_line.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if buf[i] == b'\n' => Err(RespError::MissingCrlf),
        Some(i) => match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&buf[..i], i + 2))),
            Some(_) => Err(RespError::MissingCrlf),
        },
        None if window.len() > max_line => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

/// A `$`/`*` length: `Ok(None)` for `-1` (null), else a non-negative count.
fn parse_len(text: &[u8]) -> Result<Option<usize>, RespError> {
    match parse_i64(text) {
        Some(-1) => Ok(None),
        Some(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| RespError::BadLength),
        None => Err(RespError::BadLength),
    }
}

/// `-?[0-9]+` as an `i64`, without overflow (i64::MIN included).
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes redis-server 7.0.15 sent on a raw socket (see
    /// docs/redis-client.md, "Fixtures"), with the reply each must give.
    fn captured() -> Vec<(&'static [u8], Reply)> {
        let bulk = |b: &[u8]| Reply::Bulk(Some(b.to_vec()));
        let arr = |v: Vec<Reply>| Reply::Array(Some(v));
        vec![
            (b"+OK\r\n", Reply::Simple("OK".into())),
            (
                b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
                Reply::Error(
                    "WRONGPASS invalid username-password pair or user is disabled.".into(),
                ),
            ),
            (
                b"-NOAUTH Authentication required.\r\n",
                Reply::Error("NOAUTH Authentication required.".into()),
            ),
            (b"$3\r\nv\x00\xff\r\n", bulk(b"v\x00\xff")),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"$0\r\n\r\n", bulk(b"")),
            (b":1\r\n", Reply::Integer(1)),
            (
                b":-9223372036854775799\r\n",
                Reply::Integer(-9223372036854775799),
            ),
            (
                b"*3\r\n$1\r\na\r\n$0\r\n\r\n$1\r\nc\r\n",
                arr(vec![bulk(b"a"), bulk(b""), bulk(b"c")]),
            ),
            (b"*0\r\n", arr(vec![])),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*4\r\n:1\r\n*2\r\n$1\r\na\r\n*1\r\n:2\r\n+OK\r\n-ERR x\r\n",
                arr(vec![
                    Reply::Integer(1),
                    arr(vec![bulk(b"a"), arr(vec![Reply::Integer(2)])]),
                    Reply::Simple("OK".into()),
                    Reply::Error("ERR x".into()),
                ]),
            ),
            (
                b"*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n",
                arr(vec![bulk(b"subscribe"), bulk(b"ch1"), Reply::Integer(1)]),
            ),
            (
                b"*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$7\r\nnews.uk\r\n$6\r\nbin\r\n\x00\r\n",
                arr(vec![
                    bulk(b"pmessage"),
                    bulk(b"news.*"),
                    bulk(b"news.uk"),
                    bulk(b"bin\r\n\x00"),
                ]),
            ),
            (
                b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
                arr(vec![bulk(b"pong"), bulk(b"")]),
            ),
        ]
    }

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn captured_replies_decode_exactly() {
        for (wire, want) in captured() {
            assert_eq!(
                decode(wire, &lim()),
                Ok(Some((want, wire.len()))),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn every_prefix_needs_more() {
        for (wire, _) in captured() {
            for k in 0..wire.len() {
                assert_eq!(decode(&wire[..k], &lim()), Ok(None), "{:?}", &wire[..k]);
            }
        }
    }

    #[test]
    fn resumable_decoder_byte_by_byte_matches_whole() {
        for (wire, want) in captured() {
            let mut d = Decoder::new();
            for k in 0..wire.len() {
                assert_eq!(d.decode(&wire[..k], &lim()), Ok(None));
            }
            assert_eq!(d.decode(wire, &lim()), Ok(Some((want, wire.len()))));
            assert_eq!(d.pos, 0, "back at the start state");
        }
    }

    #[test]
    fn resumable_decoder_keeps_parsed_elements() {
        let mut wire = b"*1000\r\n".to_vec();
        for i in 0..1000 {
            wire.extend_from_slice(format!(":{i}\r\n").as_bytes());
        }
        let mut d = Decoder::new();
        let half = wire.len() / 2;
        assert_eq!(d.decode(&wire[..half], &lim()), Ok(None));
        // Everything before the cut was parsed once and is not parsed again.
        assert!(d.pos > half - 8 && d.pos <= half, "pos {}", d.pos);
        assert!(d.stack[0].items.len() > 400);
        let (reply, used) = d.decode(&wire, &lim()).unwrap().unwrap();
        assert_eq!(used, wire.len());
        let Reply::Array(Some(items)) = reply else {
            panic!("not an array")
        };
        assert_eq!(items.len(), 1000);
        assert_eq!(items[999], Reply::Integer(999));
    }

    #[test]
    fn pipelined_replies_come_out_in_order() {
        let all = captured();
        let mut wire = Vec::new();
        for (w, _) in &all {
            wire.extend_from_slice(w);
        }
        let mut at = 0;
        for (w, want) in all {
            let (reply, used) = decode(&wire[at..], &lim()).unwrap().unwrap();
            assert_eq!((reply, used), (want, w.len()));
            at += used;
        }
        assert_eq!(at, wire.len());
        assert_eq!(decode(&wire[at..], &lim()), Ok(None));
    }

    #[test]
    fn integers_at_the_edges() {
        let int = |s: &[u8]| decode(s, &lim());
        assert_eq!(
            int(b":-9223372036854775808\r\n"),
            Ok(Some((Reply::Integer(i64::MIN), 23)))
        );
        assert_eq!(
            int(b":9223372036854775807\r\n"),
            Ok(Some((Reply::Integer(i64::MAX), 22)))
        );
        for bad in [
            &b":9223372036854775808\r\n"[..],
            b":\r\n",
            b":-\r\n",
            b":+1\r\n",
            b": 1\r\n",
            b":1a\r\n",
        ] {
            assert_eq!(int(bad), Err(RespError::BadInteger), "{bad:?}");
        }
    }

    #[test]
    fn bad_lengths_and_types() {
        for bad in [&b"$-2\r\n"[..], b"$\r\n", b"$x\r\n", b"*-5\r\n", b"*1x\r\n"] {
            assert_eq!(decode(bad, &lim()), Err(RespError::BadLength), "{bad:?}");
        }
        // RESP3 types and inline text are not RESP2 replies.
        for t in [b'%', b'_', b'#', b',', b'~', b'>', b'P', b'\r', 0] {
            assert_eq!(
                decode(&[t, b'\r', b'\n'], &lim()),
                Err(RespError::BadType(t))
            );
        }
        // A bad type inside an array is found as soon as it arrives.
        assert_eq!(
            decode(b"*2\r\n:1\r\n!", &lim()),
            Err(RespError::BadType(b'!'))
        );
    }

    #[test]
    fn crlf_is_required() {
        for bad in [
            &b"+OK\n"[..],
            b"+OK\rX",
            b"+O\nK\r\n",
            b":1\r\r\n",
            b"$3\r\nfooXY",
            b"$3\r\nfoo\r",
            b"$3\r\nfoo\n\r",
        ] {
            let got = decode(bad, &lim());
            // "$3\r\nfoo\r" is a prefix of a valid bulk: more is needed.
            if bad == b"$3\r\nfoo\r" {
                assert_eq!(got, Ok(None));
            } else {
                assert_eq!(got, Err(RespError::MissingCrlf), "{bad:?}");
            }
        }
    }

    #[test]
    fn line_limit() {
        let limits = Limits {
            max_line: 8,
            ..lim()
        };
        assert_eq!(
            decode(b"+12345678\r\n", &limits),
            Ok(Some((Reply::Simple("12345678".into()), 11)))
        );
        assert_eq!(decode(b"+12345678", &limits), Ok(None));
        assert_eq!(decode(b"+12345678\r", &limits), Ok(None));
        assert_eq!(decode(b"+123456789", &limits), Err(RespError::LineTooLong));
        assert_eq!(
            decode(b"-123456789\r\n", &limits),
            Err(RespError::LineTooLong)
        );
        // Bulk data is not a line: only max_bulk applies to it.
        assert!(decode(b"$10\r\n0123456789\r\n", &limits).unwrap().is_some());
    }

    #[test]
    fn bulk_limit_and_huge_declared_lengths() {
        let limits = Limits {
            max_bulk: 4,
            ..lim()
        };
        assert!(decode(b"$4\r\nabcd\r\n", &limits).unwrap().is_some());
        assert_eq!(decode(b"$5\r\n", &limits), Err(RespError::BulkTooLarge));
        // With no bulk limit, a declared length far beyond memory only
        // means "need more": nothing is reserved for it.
        let open = Limits {
            max_bulk: usize::MAX,
            ..lim()
        };
        assert_eq!(decode(b"$9223372036854775807\r\nab", &open), Ok(None));
        assert_eq!(
            decode(
                b"*9223372036854775807\r\n:1\r\n",
                &Limits {
                    max_elements: usize::MAX,
                    ..lim()
                }
            ),
            Ok(None)
        );
    }

    #[test]
    fn element_and_depth_limits() {
        let limits = Limits {
            max_elements: 3,
            max_depth: 2,
            ..lim()
        };
        assert!(
            decode(b"*3\r\n:1\r\n:2\r\n:3\r\n", &limits)
                .unwrap()
                .is_some()
        );
        assert_eq!(decode(b"*4\r\n", &limits), Err(RespError::TooManyElements));
        // Counted across nested arrays: 2 + 2 > 3.
        assert_eq!(
            decode(b"*2\r\n*2\r\n", &limits),
            Err(RespError::TooManyElements)
        );
        assert!(decode(b"*1\r\n*1\r\n:1\r\n", &limits).unwrap().is_some());
        assert_eq!(
            decode(b"*1\r\n*1\r\n*1\r\n", &limits),
            Err(RespError::TooDeep)
        );
        // Empty and null arrays hold no elements and open no level.
        assert!(decode(b"*1\r\n*1\r\n*0\r\n", &limits).unwrap().is_some());
    }

    #[test]
    fn non_utf8_status_lines_are_replaced_not_fatal() {
        assert_eq!(
            decode(b"-ERR \xff\r\n", &lim()),
            Ok(Some((Reply::Error("ERR \u{fffd}".into()), 8)))
        );
    }

    #[test]
    fn encode_command_bytes() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b"v\r\n\x00"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\n\x00\r\n");
        // What the client sends decodes as the array of bulks it is.
        let (reply, used) = decode(&out, &lim()).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"SET".to_vec())),
                Reply::Bulk(Some(b"k".to_vec())),
                Reply::Bulk(Some(b"v\r\n\x00".to_vec())),
            ]))
        );
        let mut big = Vec::new();
        encode_command(&mut big, &[&[7u8; 1234567]]);
        assert!(big.starts_with(b"*1\r\n$1234567\r\n"));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            RespError::BadType(b'%').to_string(),
            "unknown RESP type byte 0x25"
        );
        assert_eq!(
            RespError::TooDeep.to_string(),
            "RESP arrays nested too deep"
        );
    }
}
