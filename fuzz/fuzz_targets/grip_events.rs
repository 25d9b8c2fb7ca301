//! WebSocket-over-HTTP bodies (`sprocket::grip::events`), two halves picked
//! by the first byte.
//!
//! Even: the rest is a body. Decoding never panics; what decodes tiles the
//! body exactly (each event is its type token, then `\r\n` or ` LEN\r\n`,
//! its content borrowed from the very next bytes, and `\r\n`), so every
//! content lies inside the body and their sizes sum to less than its
//! length; re-encoding gives the body back byte for byte except for the
//! spelling of the lengths (encode writes lowercase hex without leading
//! zeros), and decodes to the same events. `close_code` on every Close.
//!
//! Odd: the rest builds events (kinds from bytes, names for unknown ones
//! from the bytes too, contents sliced from the input, with or without a
//! length); encoding them and decoding the result gives exactly them back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::grip::events::{self, Event, Kind};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(input);
    } else {
        structured(input);
    }
});

fn encode_all(events: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        events::encode(e, &mut out);
    }
    out
}

fn check_close(e: &Event<'_>) {
    if e.kind != Kind::Close {
        return;
    }
    match (e.close_code(), e.content) {
        (Some((code, reason)), Some(c)) => {
            assert!(c.len() >= 2);
            assert_eq!(code, u16::from_be_bytes([c[0], c[1]]));
            assert_eq!(reason, String::from_utf8_lossy(&c[2..]));
        }
        (None, c) => assert!(c.is_none_or(|c| c.len() < 2)),
        (Some(_), None) => panic!("a close code without content"),
    }
}

fn raw(body: &[u8]) {
    let Ok(decoded) = events::decode(body) else {
        return;
    };
    assert!(decoded.len() <= events::MAX_EVENTS);
    let base = body.as_ptr() as usize;
    // Walk the body alongside the events: they must tile it.
    let mut at = 0;
    let mut total = 0;
    // How many bytes the canonical encoding saves on length fields, and
    // whether every length was spelt canonically already.
    let mut saved = 0;
    let mut canonical_body = true;
    for e in &decoded {
        check_close(e);
        let name = e.kind.name().as_bytes();
        assert!(!name.is_empty() && name.len() <= 32);
        assert!(name.iter().all(u8::is_ascii_graphic), "{:?}", e.kind);
        if let Kind::Other(n) = e.kind {
            let known = [
                "OPEN",
                "TEXT",
                "BINARY",
                "PING",
                "PONG",
                "CLOSE",
                "DISCONNECT",
            ];
            assert!(!known.contains(&n), "known type {n} read as Other");
        }
        assert_eq!(&body[at..at + name.len()], name);
        at += name.len();
        match e.content {
            None => {
                assert_eq!(&body[at..at + 2], b"\r\n");
                at += 2;
            }
            Some(c) => {
                assert_eq!(body[at], b' ');
                at += 1;
                // The content is borrowed from the body, after its line.
                let off = (c.as_ptr() as usize)
                    .checked_sub(base)
                    .expect("content before the body");
                assert!(off + c.len() <= body.len(), "content past the body");
                let field = &body[at..off - 2];
                assert_eq!(&body[off - 2..off], b"\r\n");
                assert!(!field.is_empty() && field.len() <= 16);
                let field = std::str::from_utf8(field).unwrap();
                assert_eq!(usize::from_str_radix(field, 16), Ok(c.len()));
                let canonical = format!("{:x}", c.len());
                saved += field.len() - canonical.len();
                canonical_body &= field == canonical;
                at = off + c.len();
                assert_eq!(&body[at..at + 2], b"\r\n");
                at += 2;
                total += c.len();
            }
        }
    }
    assert_eq!(at, body.len(), "events do not cover the body");
    assert!(total < body.len() || body.is_empty());

    let encoded = encode_all(&decoded);
    assert_eq!(encoded.len(), body.len() - saved);
    // The lengths are the only freedom the format has: with every one in
    // lowercase hex without leading zeros, the body comes back unchanged.
    assert_eq!(encoded == body, canonical_body);
    let again = events::decode(&encoded).expect("an encoded body decodes");
    assert_eq!(again, decoded);
    // Canonical: encoding is a fixed point after one round.
    assert_eq!(encode_all(&again), encoded);
}

/// Reads the input as a stream of small instructions.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// Up to `n` of the next bytes (fewer at the end).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let end = (self.at + n).min(self.data.len());
        let s = &self.data[self.at..end];
        self.at = end;
        s
    }
}

/// Where unknown type names come from: graphic ASCII (no space), made of
/// whatever bytes the input has (graphic ones as they are, so that known
/// names can turn up too).
fn name_from(bytes: &[u8], buf: &mut String) {
    buf.clear();
    for &b in bytes {
        let b = if b.is_ascii_graphic() {
            b
        } else {
            b'!' + b % 94
        };
        buf.push(char::from(b));
    }
}

fn structured(input: &[u8]) {
    let mut src = Bytes { data: input, at: 0 };
    // Names for `Other`, owned apart from the events that borrow them.
    let mut names: Vec<String> = Vec::new();
    // (kind index, name index, content) per event.
    let mut plan: Vec<(u8, usize, Option<&[u8]>)> = Vec::new();
    while let Some(op) = src.byte() {
        if plan.len() == 256 {
            break;
        }
        let kind = op % 8;
        let mut name = usize::MAX;
        if kind == 7 {
            let len = 1 + usize::from(src.byte().unwrap_or(0) % 32);
            let mut s = String::new();
            name_from(src.take(len), &mut s);
            if s.is_empty() {
                s.push('X');
            }
            name = names.len();
            names.push(s);
        }
        let content = if op & 8 == 0 {
            None
        } else {
            // Lengths up to 1023, from the next two bytes; the content is
            // whatever follows (CRLFs, type lines and all), cut short at
            // the end of the input.
            let hi = usize::from(src.byte().unwrap_or(0) & 3);
            let lo = usize::from(src.byte().unwrap_or(0));
            Some(src.take(hi << 8 | lo))
        };
        plan.push((kind, name, content));
    }
    let built: Vec<Event<'_>> = plan
        .iter()
        .map(|&(kind, name, content)| {
            let kind = match kind {
                0 => Kind::Open,
                1 => Kind::Text,
                2 => Kind::Binary,
                3 => Kind::Ping,
                4 => Kind::Pong,
                5 => Kind::Close,
                6 => Kind::Disconnect,
                _ => match names[name].as_str() {
                    // A known name is read back as its kind.
                    "OPEN" => Kind::Open,
                    "TEXT" => Kind::Text,
                    "BINARY" => Kind::Binary,
                    "PING" => Kind::Ping,
                    "PONG" => Kind::Pong,
                    "CLOSE" => Kind::Close,
                    "DISCONNECT" => Kind::Disconnect,
                    other => Kind::Other(other),
                },
            };
            Event { kind, content }
        })
        .collect();
    let body = encode_all(&built);
    let decoded = events::decode(&body).expect("encoded events decode");
    assert_eq!(decoded, built);
    for e in &decoded {
        check_close(e);
    }
    // The structured half's bodies are canonical: nothing to save.
    let mut total = 0;
    for e in &built {
        total += e.kind.name().len() + 2;
        if let Some(c) = e.content {
            total += 1 + format!("{:x}", c.len()).len() + 2 + c.len();
        }
    }
    assert_eq!(body.len(), total);
}
