//! The three session serializers PHP's `session.serialize_handler` names,
//! as PHP 8.2's `ext/session/session.c` writes and reads them:
//!
//! - `php` (the default): `name|<value>name|<value>…`. A name ends at the
//!   first `|`, so a name holding one cannot be written (PHP's encoder
//!   gives up on the whole session). `!` is an ordinary byte in PHP 8.2.
//! - `php_binary`: `<len byte>name<value>…`, names of at most 127 bytes.
//!   The length byte's high bit (PHP 5's "undefined" marker) is masked off
//!   and a value still follows, as PHP 8.2 reads it; it is never written.
//!   (PHP's encoder silently skips longer names; here that is an error.)
//! - `php_serialize`: the whole `$_SESSION` array as one `serialize()`
//!   value (`N;` reads as empty); keys may be ints. Bytes after the array
//!   are ignored, as PHP ignores them.
//!
//! In `php` and `php_binary` all entries share one reference numbering,
//! from slot 1 at the first entry's value; `php_serialize` numbers the
//! array itself as slot 1, so its entries count from 2. [`SessionData`]
//! always holds the first numbering (the one `php` writes): decoding
//! `php_serialize` shifts refs down by one and encoding shifts them back,
//! so data read in one format can be written in another.

use super::refs::rewrite;
use super::serialize::{DecodeError, DecodeErrorKind, Decoder, encode_value, payload_slots};
use super::value::{Key, Value};
use std::fmt;
use std::str::FromStr;

/// A `session.serialize_handler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Serializer {
    /// `php`: `name|value…`.
    #[default]
    Php,
    /// `php_serialize`: one serialized array.
    PhpSerialize,
    /// `php_binary`: length byte, name, value.
    PhpBinary,
}

impl Serializer {
    /// PHP's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Php => "php",
            Serializer::PhpSerialize => "php_serialize",
            Serializer::PhpBinary => "php_binary",
        }
    }
}

impl fmt::Display for Serializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of PHP's serializers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownSerializer(pub String);

impl fmt::Display for UnknownSerializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown session serializer {:?} (php, php_serialize or php_binary)",
            self.0
        )
    }
}

impl std::error::Error for UnknownSerializer {}

impl FromStr for Serializer {
    type Err = UnknownSerializer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "php" => Ok(Serializer::Php),
            "php_serialize" => Ok(Serializer::PhpSerialize),
            "php_binary" => Ok(Serializer::PhpBinary),
            _ => Err(UnknownSerializer(s.to_string())),
        }
    }
}

/// One session's data: its top-level names in order. Refs count slots as
/// the `php` serializer does (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionData {
    /// The entries of `$_SESSION`, in order (`php` and `php_binary` only
    /// have string names).
    pub entries: Vec<(Key, Value)>,
}

impl SessionData {
    /// Equality with floats compared by their bits ([`Value::same`]).
    pub fn same(&self, other: &SessionData) -> bool {
        super::value::same_members(&self.entries, &other.entries)
    }
}

/// Why a session cannot be written in a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// `php`: a name holding `|`, which ends a name.
    PipeInName(Vec<u8>),
    /// `php`/`php_binary`: an int name (only `php_serialize` has them).
    IntName(i64),
    /// `php_binary`: a name longer than 127 bytes.
    NameTooLong(Vec<u8>),
    /// A ref to a slot that is not numbered before it (or 0).
    BadRef(u32),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::PipeInName(n) => write!(
                f,
                "the php serializer cannot write a name with `|`: {:?}",
                String::from_utf8_lossy(n)
            ),
            EncodeError::IntName(n) => write!(f, "int name {n} needs php_serialize"),
            EncodeError::NameTooLong(n) => write!(
                f,
                "php_binary names are at most 127 bytes, this one is {}",
                n.len()
            ),
            EncodeError::BadRef(n) => write!(f, "reference to slot {n}, not numbered before it"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Decodes a session written with serializer `s`; empty input is an empty
/// session.
pub fn decode(bytes: &[u8], s: Serializer) -> Result<SessionData, DecodeError> {
    let mut d = Decoder::new(bytes);
    let mut entries = Vec::new();
    match s {
        Serializer::Php => {
            while !d.at_end() {
                let rest = bytes.get(d.pos..).unwrap_or_default();
                let Some(bar) = rest.iter().position(|&c| c == b'|') else {
                    return Err(DecodeError {
                        offset: bytes.len(),
                        kind: DecodeErrorKind::Expected("`|` after a name"),
                    });
                };
                let name = rest.get(..bar).unwrap_or_default().to_vec();
                d.pos += bar + 1;
                entries.push((Key::Str(name), d.value()?));
            }
        }
        Serializer::PhpBinary => {
            while let Some(&len) = bytes.get(d.pos) {
                let n = usize::from(len & 0x7f);
                let name = bytes.get(d.pos + 1..d.pos + 1 + n).ok_or(DecodeError {
                    offset: d.pos,
                    kind: DecodeErrorKind::LengthOverrun,
                })?;
                d.pos += 1 + n;
                entries.push((Key::Str(name.to_vec()), d.value()?));
            }
        }
        Serializer::PhpSerialize => {
            if bytes.is_empty() {
                return Ok(SessionData::default());
            }
            entries = match d.value()? {
                Value::Null => Vec::new(),
                Value::Array(items) => items,
                _ => {
                    return Err(DecodeError {
                        offset: 0,
                        kind: DecodeErrorKind::NotAnArray,
                    });
                }
            };
            // Slot 1 was the array: count as `php` does.
            for (_, v) in &mut entries {
                rewrite(v, &mut |n| {
                    n.checked_sub(1).filter(|&n| n > 0).ok_or(DecodeError {
                        offset: 0,
                        kind: DecodeErrorKind::SelfRef,
                    })
                })?;
            }
        }
    }
    Ok(SessionData { entries })
}

/// Encodes a session with serializer `s`, as PHP's `session_encode()`
/// would write it.
pub fn encode(data: &SessionData, s: Serializer) -> Result<Vec<u8>, EncodeError> {
    check_refs(&data.entries)?;
    let mut out = Vec::new();
    match s {
        Serializer::Php | Serializer::PhpBinary => {
            for (k, v) in &data.entries {
                let name = match k {
                    Key::Int(n) => return Err(EncodeError::IntName(*n)),
                    Key::Str(name) => name,
                };
                if s == Serializer::Php {
                    if name.contains(&b'|') {
                        return Err(EncodeError::PipeInName(name.clone()));
                    }
                    out.extend_from_slice(name);
                    out.push(b'|');
                } else {
                    let len = u8::try_from(name.len())
                        .ok()
                        .filter(|&n| n <= 127)
                        .ok_or_else(|| EncodeError::NameTooLong(name.clone()))?;
                    out.push(len);
                    out.extend_from_slice(name);
                }
                encode_value(v, &mut out);
            }
        }
        Serializer::PhpSerialize => {
            let mut all = Value::Array(data.entries.clone());
            // Slot 1 is the array itself.
            let _ = rewrite(&mut all, &mut |n| {
                Ok::<u32, std::convert::Infallible>(n.saturating_add(1))
            });
            encode_value(&all, &mut out);
        }
    }
    Ok(out)
}

/// Every ref points at a slot numbered before it, as PHP's decoder checks.
fn check_refs(entries: &[(Key, Value)]) -> Result<(), EncodeError> {
    let mut count = 0u32;
    for (_, v) in entries {
        check(v, &mut count)?;
    }
    Ok(())
}

fn check(v: &Value, count: &mut u32) -> Result<(), EncodeError> {
    match v {
        Value::Ref { slot, object } => {
            if *slot == 0 || *slot > *count {
                return Err(EncodeError::BadRef(*slot));
            }
            if *object {
                *count = count.saturating_add(1);
            }
        }
        Value::Array(items) => check_members(items, count)?,
        Value::Object(o) => check_members(&o.props, count)?,
        Value::Custom { data, .. } => {
            *count = count
                .saturating_add(1)
                .saturating_add(payload_slots(data, 0));
        }
        _ => *count = count.saturating_add(1),
    }
    Ok(())
}

fn check_members(items: &[(Key, Value)], count: &mut u32) -> Result<(), EncodeError> {
    *count = count.saturating_add(1);
    for (_, c) in items {
        check(c, count)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecodeErrorKind::*;

    fn kind(bytes: &[u8], s: Serializer) -> DecodeErrorKind {
        decode(bytes, s).expect_err("should fail").kind
    }

    fn round_trip(bytes: &[u8], s: Serializer) -> SessionData {
        let d = decode(bytes, s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(encode(&d, s).expect("encodes"), bytes);
        d
    }

    // What PHP 8.2's session_encode() wrote for
    // a = $o; b = [$o, 1]; c = 5; d = &c; 'e!x' = 1.
    const PHP: &[u8] = b"a|O:8:\"stdClass\":0:{}b|a:2:{i:0;r:1;i:1;i:1;}c|i:5;d|R:5;e!x|i:1;";
    const SER: &[u8] = b"a:5:{s:1:\"a\";O:8:\"stdClass\":0:{}s:1:\"b\";a:2:{i:0;r:2;i:1;i:1;}s:1:\"c\";i:5;s:1:\"d\";R:6;s:3:\"e!x\";i:1;}";
    const BIN: &[u8] =
        b"\x01aO:8:\"stdClass\":0:{}\x01ba:2:{i:0;r:1;i:1;i:1;}\x01ci:5;\x01dR:5;\x03e!xi:1;";

    #[test]
    fn the_three_formats_agree() {
        let php = round_trip(PHP, Serializer::Php);
        let ser = round_trip(SER, Serializer::PhpSerialize);
        let bin = round_trip(BIN, Serializer::PhpBinary);
        assert_eq!(php, ser);
        assert_eq!(php, bin);
        assert_eq!(
            php.entries[3].1,
            Value::Ref {
                slot: 5,
                object: false
            }
        );
        assert_eq!(encode(&php, Serializer::PhpSerialize).unwrap(), SER);
        assert_eq!(encode(&ser, Serializer::PhpBinary).unwrap(), BIN);
    }

    #[test]
    fn names() {
        for s in [
            Serializer::Php,
            Serializer::PhpSerialize,
            Serializer::PhpBinary,
        ] {
            assert_eq!(s.to_string().parse::<Serializer>(), Ok(s));
        }
        assert!("json".parse::<Serializer>().is_err());
    }

    #[test]
    fn empty_and_odd_sessions() {
        for s in [
            Serializer::Php,
            Serializer::PhpSerialize,
            Serializer::PhpBinary,
        ] {
            assert_eq!(decode(b"", s).unwrap(), SessionData::default());
            let empty: &[u8] = if s == Serializer::PhpSerialize {
                b"a:0:{}"
            } else {
                b""
            };
            assert_eq!(encode(&SessionData::default(), s).unwrap(), empty);
        }
        // PHP reads these as it is shown here.
        let d = decode(b"|i:1;a|i:1;a|i:2;", Serializer::Php).unwrap();
        assert_eq!(d.entries.len(), 3);
        assert_eq!(d.get("a"), Some(&Value::Int(2)));
        assert_eq!(d.get(""), Some(&Value::Int(1)));
        let d = decode(b"\x81ai:1;\x00i:2;", Serializer::PhpBinary).unwrap();
        assert_eq!(d.get("a"), Some(&Value::Int(1)));
        assert_eq!(d.get(""), Some(&Value::Int(2)));
        let d = decode(b"a:1:{i:0;i:1;}junk", Serializer::PhpSerialize).unwrap();
        assert_eq!(d.get("0"), Some(&Value::Int(1)));
        assert!(
            decode(b"N;", Serializer::PhpSerialize)
                .unwrap()
                .entries
                .is_empty()
        );
        // A top-level ref to an earlier entry.
        let d = decode(b"a|i:1;b|R:1;", Serializer::Php).unwrap();
        assert_eq!(d.get("b"), Some(&Value::Int(1)));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(
            kind(b"a|i:1;b", Serializer::Php),
            Expected("`|` after a name")
        );
        assert_eq!(kind(b"a|i:1;b|R:2;", Serializer::Php), BadRef(2));
        assert_eq!(kind(b"!a|b|i:1;", Serializer::Php), Expected("`:`"));
        assert_eq!(
            kind(b"a|", Serializer::Php),
            Expected("a value (one of NbidsSaOCERr)")
        );
        assert_eq!(kind(b"\x05ab", Serializer::PhpBinary), LengthOverrun);
        assert_eq!(
            kind(b"\x81a\x01bi:1;", Serializer::PhpBinary),
            Expected("a value (one of NbidsSaOCERr)")
        );
        assert_eq!(
            kind(b"\x01a", Serializer::PhpBinary),
            Expected("a value (one of NbidsSaOCERr)")
        );
        assert_eq!(kind(b"i:5;", Serializer::PhpSerialize), NotAnArray);
        assert_eq!(kind(b"a:1:{i:0;R:1;}", Serializer::PhpSerialize), SelfRef);
        assert_eq!(
            kind(b"a:1:{i:0;i:1;", Serializer::PhpSerialize),
            Expected("`}`")
        );
    }

    #[test]
    fn encode_errors() {
        let one = |k: Key, v: Value| SessionData {
            entries: vec![(k, v)],
        };
        let s = |b: &[u8]| Key::Str(b.to_vec());
        assert_eq!(
            encode(&one(s(b"a|b"), Value::Null), Serializer::Php),
            Err(EncodeError::PipeInName(b"a|b".to_vec()))
        );
        assert!(encode(&one(s(b"a|b"), Value::Null), Serializer::PhpBinary).is_ok());
        assert!(encode(&one(s(b"e!x"), Value::Null), Serializer::Php).is_ok());
        for f in [Serializer::Php, Serializer::PhpBinary] {
            assert_eq!(
                encode(&one(Key::Int(5), Value::Null), f),
                Err(EncodeError::IntName(5))
            );
        }
        assert_eq!(
            encode(&one(Key::Int(5), Value::Null), Serializer::PhpSerialize).unwrap(),
            b"a:1:{i:5;N;}"
        );
        let long = vec![b'x'; 128];
        assert_eq!(
            encode(
                &one(Key::Str(long.clone()), Value::Null),
                Serializer::PhpBinary
            ),
            Err(EncodeError::NameTooLong(long))
        );
        assert!(encode(&one(s(&[b'x'; 127]), Value::Null), Serializer::PhpBinary).is_ok());
        for r in [
            Value::Ref {
                slot: 1,
                object: false,
            },
            Value::Ref {
                slot: 0,
                object: true,
            },
        ] {
            assert!(matches!(
                encode(&one(s(b"a"), r), Serializer::Php),
                Err(EncodeError::BadRef(_))
            ));
        }
        assert!(
            EncodeError::NameTooLong(vec![0; 200])
                .to_string()
                .contains("200")
        );
    }
}
