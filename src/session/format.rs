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
