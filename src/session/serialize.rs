//! PHP's `serialize()` format for one value, as PHP 8.2 writes and reads it.
//!
//! The grammar (from `ext/standard/var_unserializer.re`):
//!
//! ```text
//! N;   b:0; b:1;   i:<int>;   d:<float>|INF|-INF|NAN;   s:<len>:"<bytes>";
//! S:<len>:"<bytes with \hh escapes>";   a:<n>:{<key><value>…}
//! O:<len>:"<class>":<n>:{<key><value>…}   C:<len>:"<class>":<len>:{<payload>}
//! E:<len>:"<class>:<case>";   R:<slot>;   r:<slot>;
//! ```
//!
//! References number values in the order PHP's serializer meets them,
//! from 1: every value takes the next slot (arrays and objects before their
//! members), except `R:` (a PHP `&` reference), which takes none; `r:` (the
//! same object again) and enum cases take one. Keys take none. A `C:`
//! payload is opaque, but when it is itself `serialize()` output (what
//! `Serializable::serialize()` usually returns) PHP numbers its values in
//! the same sequence (the nested `serialize()`/`unserialize()` calls share
//! the outer state), so the values inside it take slots too; a payload that
//! does not parse takes none.
//!
//! Decoding is bounded: nesting deeper than [`MAX_DEPTH`] is an error,
//! length fields are checked against the input before anything is
//! allocated from them, and no input makes it panic.

use super::value::{Key, Object, Value};
use std::fmt;

/// How deep arrays and objects may nest before decoding fails.
pub const MAX_DEPTH: usize = 128;

/// How deep `C:` payloads inside `C:` payloads are parsed to count their
/// slots (each with its own [`MAX_DEPTH`]); deeper ones count none.
pub const MAX_PAYLOAD_NEST: usize = 4;

/// Why some bytes are not a serialized value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The byte offset at which decoding failed.
    pub offset: usize,
    /// What went wrong there.
    pub kind: DecodeErrorKind,
}

/// What went wrong, in a [`DecodeError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Another byte (or the end of the input) where the grammar wants this.
    Expected(&'static str),
    /// A length or count that the rest of the input cannot hold.
    LengthOverrun,
    /// Arrays or objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// `R:`/`r:` to a slot that is not numbered yet (or 0).
    BadRef(u32),
    /// A class name with bytes PHP does not allow in one.
    BadClassName,
    /// An array or object key that is neither `i:` nor `s:`.
    BadKey,
    /// `E:` without the `:` between class and case.
    BadEnum,
    /// `php_serialize`: the session is not an array.
    NotAnArray,
    /// `php_serialize`: a reference to the session array itself.
    SelfRef,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.kind {
            DecodeErrorKind::Expected(what) => write!(f, "expected {what} at byte {at}"),
            DecodeErrorKind::LengthOverrun => write!(f, "length at byte {at} runs past the input"),
            DecodeErrorKind::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} at byte {at}"),
            DecodeErrorKind::BadRef(n) => write!(f, "reference to unknown slot {n} at byte {at}"),
            DecodeErrorKind::BadClassName => write!(f, "invalid class name at byte {at}"),
            DecodeErrorKind::BadKey => write!(f, "key is not an int or a string at byte {at}"),
            DecodeErrorKind::BadEnum => write!(f, "enum without `Class:Case` at byte {at}"),
            DecodeErrorKind::NotAnArray => write!(f, "session is not an array (byte {at})"),
            DecodeErrorKind::SelfRef => write!(f, "reference to the session array at byte {at}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one value from the start of `input`; returns it and how many
/// bytes it took (what follows is not looked at). Slots count from 1, the
/// value itself being slot 1.
pub fn decode_value(input: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut d = Decoder::new(input);
    let v = d.value()?;
    Ok((v, d.pos))
}

/// A cursor over serialized input. The slot count carries over from one
/// value to the next, as PHP's session decoders share one numbering.
pub(crate) struct Decoder<'a> {
    input: &'a [u8],
    /// Where the next byte is read.
    pub(crate) pos: usize,
    /// How many slots are numbered so far.
    pub(crate) slots: u32,
    depth: usize,
    /// How many `C:` payloads this one is inside.
    nest: usize,
    /// Whether `R:`/`r:` are checked against `slots` (not when only
    /// counting the slots of a `C:` payload).
    check_refs: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input` with no slots numbered.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            slots: 0,
            depth: 0,
            nest: 0,
            check_refs: true,
        }
    }

    /// Whether all the input is read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos,
            kind,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), DecodeError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(DecodeErrorKind::Expected(what)))
        }
    }

    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// `[0-9]+` as a length or count; too big for the input is an overrun.
    fn uint(&mut self) -> Result<usize, DecodeError> {
        let start = self.pos;
        let mut n: usize = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .ok_or(DecodeError {
                    offset: start,
                    kind: DecodeErrorKind::LengthOverrun,
                })?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err(DecodeErrorKind::Expected("a digit")));
        }
        Ok(n)
    }

    /// `n` bytes, checked against the input first.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.err(DecodeErrorKind::LengthOverrun));
        }
        let s = self.input.get(self.pos..self.pos + n).unwrap_or_default();
        self.pos += n;
        Ok(s)
    }

    /// `<len>:"<bytes>"` (the common middle of `s`, `O`, `C`, `E`).
    fn quoted(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.uint()?;
        self.expect(b':', "`:`")?;
        self.expect(b'"', "`\"`")?;
        let s = self.take(len)?;
        self.expect(b'"', "`\"` after the declared length")?;
        Ok(s)
    }

    /// One value, numbering it (and what it holds) as PHP does.
    pub(crate) fn value(&mut self) -> Result<Value, DecodeError> {
        let tag = self.peek();
        if tag != Some(b'R') {
            self.slots = self.slots.saturating_add(1);
        }
        let start = self.pos;
        match tag {
            Some(b'N') => {
                self.pos += 1;
                self.expect(b';', "`;`")?;
                Ok(Value::Null)
            }
            Some(b'b') => self.boolean(),
            Some(b'i') => {
                self.tag_colon()?;
                let n = self.int()?;
                self.expect(b';', "`;`")?;
                Ok(Value::Int(n))
            }
            Some(b'd') => self.float(),
            Some(b's') => {
                self.tag_colon()?;
                let s = self.quoted()?.to_vec();
                self.expect(b';', "`;`")?;
                Ok(Value::Str(s))
            }
            Some(b'S') => self.escaped().map(Value::Str),
            Some(b'a') => self.array(),
            Some(b'O') => self.object(),
            Some(b'C') => self.custom(),
            Some(b'E') => self.enum_case(),
            Some(b @ (b'R' | b'r')) => {
                self.tag_colon()?;
                let n = self.uint()?;
                let slot = u32::try_from(n).unwrap_or(u32::MAX);
                // R: takes no slot; r: took its own above, so it may
                // only point before itself.
                let known = if b == b'r' {
                    self.slots - 1
                } else {
                    self.slots
                };
                if self.check_refs && (slot == 0 || slot > known) {
                    return Err(DecodeError {
                        offset: start,
                        kind: DecodeErrorKind::BadRef(slot),
                    });
                }
                self.expect(b';', "`;`")?;
                Ok(Value::Ref {
                    slot,
                    object: b == b'r',
                })
            }
            _ => Err(self.err(DecodeErrorKind::Expected("a value (one of NbidsSaOCERr)"))),
        }
    }

    fn tag_colon(&mut self) -> Result<(), DecodeError> {
        self.pos += 1;
        self.expect(b':', "`:`")
    }

    fn boolean(&mut self) -> Result<Value, DecodeError> {
        self.tag_colon()?;
        let b = match self.peek() {
            Some(b'0') => false,
            Some(b'1') => true,
            _ => return Err(self.err(DecodeErrorKind::Expected("`0` or `1`"))),
        };
        self.pos += 1;
        self.expect(b';', "`;`")?;
        Ok(Value::Bool(b))
    }

    /// `[+-]?[0-9]+`, saturating at the i64 range as PHP's `strtol` does.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let neg = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let start = self.pos;
        let mut n: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            let d = i64::from(c - b'0');
            n = if neg {
                n.saturating_mul(10).saturating_sub(d)
            } else {
                n.saturating_mul(10).saturating_add(d)
            };
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err(DecodeErrorKind::Expected("a digit")));
        }
        Ok(n)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `d:` then `NAN`, `INF`, `-INF` or `[+-]?(int|int.frac?|.frac)([eE][+-]?int)?`.
    fn float(&mut self) -> Result<Value, DecodeError> {
        self.tag_colon()?;
        let rest = self.input.get(self.pos..).unwrap_or_default();
        for (word, v) in [
            (&b"NAN;"[..], f64::NAN),
            (b"INF;", f64::INFINITY),
            (b"-INF;", f64::NEG_INFINITY),
        ] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(Value::Float(v));
            }
        }
        let start = self.pos;
        if let Some(b'+' | b'-') = self.peek() {
            self.pos += 1;
        }
        let int = self.digits();
        let mut frac = 0;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            frac = self.digits();
        }
        if int == 0 && frac == 0 {
            return Err(self.err(DecodeErrorKind::Expected("a number")));
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(DecodeErrorKind::Expected("an exponent")));
            }
        }
        let text = self.input.get(start..self.pos).unwrap_or_default();
        let f = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(DecodeError {
                offset: start,
                kind: DecodeErrorKind::Expected("a number"),
            })?;
        self.expect(b';', "`;`")?;
        Ok(Value::Float(f))
    }

    /// `S:<len>:"…";` where `\hh` is one byte and `len` counts bytes decoded.
    fn escaped(&mut self) -> Result<Vec<u8>, DecodeError> {
        self.tag_colon()?;
        let len = self.uint()?;
        self.expect(b':', "`:`")?;
        self.expect(b'"', "`\"`")?;
        if len > self.remaining() {
            return Err(self.err(DecodeErrorKind::LengthOverrun));
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match self.peek() {
                Some(b'\\') => {
                    self.pos += 1;
                    let hi = self.peek().and_then(hex);
                    let lo = self.input.get(self.pos + 1).copied().and_then(hex);
                    match (hi, lo) {
                        (Some(h), Some(l)) => out.push(h << 4 | l),
                        _ => return Err(self.err(DecodeErrorKind::Expected("two hex digits"))),
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
                None => return Err(self.err(DecodeErrorKind::LengthOverrun)),
            }
        }
        self.expect(b'"', "`\"` after the declared length")?;
        self.expect(b';', "`;`")?;
        Ok(out)
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(DecodeErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// `<n>:{` then n key/value pairs then `}`; `array` canonicalises
    /// numeric string keys to ints as PHP's arrays do.
    fn members(&mut self, array: bool) -> Result<Vec<(Key, Value)>, DecodeError> {
        let n = self.uint()?;
        self.expect(b':', "`:`")?;
        self.expect(b'{', "`{`")?;
        // The smallest member is `i:0;N;`: six bytes.
        if n > self.remaining() / 6 {
            return Err(self.err(DecodeErrorKind::LengthOverrun));
        }
        self.enter()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.key(array)?;
            let v = self.value()?;
            out.push((key, v));
        }
        self.depth -= 1;
        self.expect(b'}', "`}`")?;
        Ok(out)
    }

    fn key(&mut self, array: bool) -> Result<Key, DecodeError> {
        let key = match self.peek() {
            Some(b'i') => {
                self.tag_colon()?;
                let n = self.int()?;
                self.expect(b';', "`;`")?;
                Key::Int(n)
            }
            Some(b's') => {
                self.tag_colon()?;
                let s = self.quoted()?.to_vec();
                self.expect(b';', "`;`")?;
                Key::Str(s)
            }
            Some(b'S') => Key::Str(self.escaped()?),
            _ => return Err(self.err(DecodeErrorKind::BadKey)),
        };
        // Keys take no slot (they never reach `value`).
        Ok(match key {
            Key::Str(s) if array => match canonical_int(&s) {
                Some(n) => Key::Int(n),
                None => Key::Str(s),
            },
            k => k,
        })
    }

    fn array(&mut self) -> Result<Value, DecodeError> {
        self.tag_colon()?;
        self.members(true).map(Value::Array)
    }

    fn class_name(&mut self) -> Result<Vec<u8>, DecodeError> {
        let start = self.pos;
        let name = self.quoted()?;
        if !valid_class_name(name) {
            return Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::BadClassName,
            });
        }
        Ok(name.to_vec())
    }

    fn object(&mut self) -> Result<Value, DecodeError> {
        self.tag_colon()?;
        let class = self.class_name()?;
        self.expect(b':', "`:`")?;
        let props = self.members(false)?;
        Ok(Value::Object(Box::new(Object { class, props })))
    }

    fn custom(&mut self) -> Result<Value, DecodeError> {
        self.tag_colon()?;
        let class = self.class_name()?;
        self.expect(b':', "`:`")?;
        let len = self.uint()?;
        self.expect(b':', "`:`")?;
        self.expect(b'{', "`{`")?;
        let data = self.take(len)?;
        self.expect(b'}', "`}`")?;
        self.slots = self.slots.saturating_add(payload_slots(data, self.nest));
        Ok(Value::Custom {
            class,
            data: data.to_vec(),
        })
    }

    fn enum_case(&mut self) -> Result<Value, DecodeError> {
        self.tag_colon()?;
        let start = self.pos;
        let s = self.quoted()?;
        self.expect(b';', "`;`")?;
        let colon = s.iter().position(|&c| c == b':').ok_or(DecodeError {
            offset: start,
            kind: DecodeErrorKind::BadEnum,
        })?;
        let (class, case) = s.split_at(colon);
        Ok(Value::Enum {
            class: class.to_vec(),
            case: case.get(1..).unwrap_or_default().to_vec(),
        })
    }
}

/// How many slots the values in a `C:` payload take: those of one whole
/// serialized value, or none if the payload is not one.
pub(crate) fn payload_slots(data: &[u8], nest: usize) -> u32 {
    payload_value(data, nest).map_or(0, |(_, n)| n)
}

/// A `C:` payload parsed as one serialized value, with the number of slots
/// it takes (refs inside are not checked: they count in the outer numbering).
/// `nest` is how many payloads this one is inside.
pub(crate) fn payload_value(data: &[u8], nest: usize) -> Option<(Value, u32)> {
    if nest >= MAX_PAYLOAD_NEST || data.is_empty() {
        return None;
    }
    let mut d = Decoder::new(data);
    d.nest = nest + 1;
    d.check_refs = false;
    let v = d.value().ok()?;
    d.at_end().then_some((v, d.slots))
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// PHP's class-name check: `[A-Za-z0-9_\x80-\xff\\]+`.
fn valid_class_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'\\' || c >= 0x80)
}

/// The int a string key stands for in PHP (`0` or `-?[1-9][0-9]*` within
/// the i64 range), if it is one.
pub fn canonical_int(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

/// Appends `v` as PHP's `serialize()` writes it (slots are written as
/// they are; nothing is checked).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"N;"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
        Value::Int(n) => {
            out.extend_from_slice(format!("i:{n};").as_bytes());
        }
        Value::Float(f) => {
            out.extend_from_slice(b"d:");
            out.extend_from_slice(format_float(*f).as_bytes());
            out.push(b';');
        }
        Value::Str(s) => {
            out.push(b's');
            quoted(s, out);
            out.push(b';');
        }
        Value::Array(items) => {
            out.push(b'a');
            members(items, out);
        }
        Value::Object(o) => {
            out.push(b'O');
            quoted(&o.class, out);
            members(&o.props, out);
        }
        Value::Custom { class, data } => {
            out.push(b'C');
            quoted(class, out);
            out.extend_from_slice(format!(":{}:{{", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.push(b'}');
        }
        Value::Enum { class, case } => {
            out.extend_from_slice(format!("E:{}:\"", class.len() + 1 + case.len()).as_bytes());
            out.extend_from_slice(class);
            out.push(b':');
            out.extend_from_slice(case);
            out.extend_from_slice(b"\";");
        }
        Value::Ref { slot, object } => {
            let tag = if *object { 'r' } else { 'R' };
            out.extend_from_slice(format!("{tag}:{slot};").as_bytes());
        }
    }
}

fn quoted(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!(":{}:\"", s.len()).as_bytes());
    out.extend_from_slice(s);
    out.push(b'"');
}

fn members(items: &[(Key, Value)], out: &mut Vec<u8>) {
    out.extend_from_slice(format!(":{}:{{", items.len()).as_bytes());
    for (k, v) in items {
        match k {
            Key::Int(n) => out.extend_from_slice(format!("i:{n};").as_bytes()),
            Key::Str(s) => {
                out.push(b's');
                quoted(s, out);
                out.push(b';');
            }
        }
        encode_value(v, out);
    }
    out.push(b'}');
}

/// The shortest digits that read back as `f` (finite, not negative) and
/// the decimal exponent of the first, choosing the even last digit when
/// two candidates are equally near, as `zend_dtoa` mode 0 does (Rust's
/// `{:e}` may choose the other: 2093923625892584.25 is `…584.2` in PHP).
fn shortest_digits(f: f64) -> (String, i32) {
    let parse = |sci: &str| -> (String, i32) {
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
        let digits = mantissa.chars().filter(|c| *c != '.').collect();
        (digits, exp.parse().unwrap_or(0))
    };
    let (digits, exp) = parse(&format!("{f:e}"));
    let odd = digits.bytes().last().is_some_and(|d| (d - b'0') % 2 == 1);
    if !odd || f == 0.0 {
        return (digits, exp);
    }
    // The exact value (a double has at most 767 significant digits).
    let (exact, exact_exp) = parse(&format!("{f:.800e}"));
    let n = digits.len();
    let (low, rest) = exact.split_at(n.min(exact.len()));
    let tie = exact_exp == exp
        && rest
            .strip_prefix('5')
            .is_some_and(|r| r.bytes().all(|d| d == b'0'));
    if !tie {
        return (digits, exp);
    }
    if low != digits {
        // Rust rounded up to an odd digit; PHP keeps the even one below.
        return (low.trim_end_matches('0').to_string(), exp);
    }
    // Rust kept the odd digit below; PHP rounds up to the even one.
    let mut up = low.as_bytes().to_vec();
    let mut i = up.len();
    loop {
        if i == 0 {
            up.insert(0, b'1');
            let s = String::from_utf8_lossy(&up)
                .trim_end_matches('0')
                .to_string();
            return (s, exp + 1);
        }
        i -= 1;
        if up[i] == b'9' {
            up[i] = b'0';
        } else {
            up[i] += 1;
            break;
        }
    }
    let s = String::from_utf8_lossy(&up)
        .trim_end_matches('0')
        .to_string();
    (s, exp)
}

/// A float as PHP 8.2 writes it with `serialize_precision = -1`: the
/// shortest digits that read back the same, laid out as `php_gcvt` does
/// with 17 digits (`0.1`, `2`, `1.0E+25`, `1.0E-5`, `-0`, `INF`, `NAN`).
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NAN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "INF" } else { "-INF" }.into();
    }
    let (digits, exp) = shortest_digits(f.abs());
    let decpt = exp + 1; // digits[..decpt] is the integer part
    let mut s = String::with_capacity(digits.len() + 8);
    if f.is_sign_negative() {
        s.push('-');
    }
    if !(-3..=17).contains(&decpt) {
        let (first, rest) = digits.split_at(1);
        s.push_str(first);
        s.push('.');
        s.push_str(if rest.is_empty() { "0" } else { rest });
        s.push('E');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&exp.unsigned_abs().to_string());
    } else if decpt <= 0 {
        s.push_str("0.");
        for _ in decpt..0 {
            s.push('0');
        }
        s.push_str(&digits);
    } else {
        let int_len = decpt as usize;
        if digits.len() <= int_len {
            s.push_str(&digits);
            for _ in digits.len()..int_len {
                s.push('0');
            }
        } else {
            let (int, frac) = digits.split_at(int_len);
            s.push_str(int);
            s.push('.');
            s.push_str(frac);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &[u8]) -> Value {
        let (v, used) = decode_value(s).unwrap_or_else(|e| panic!("{e}: {s:?}"));
        assert_eq!(used, s.len());
        v
    }

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out);
        out
    }

    fn err(s: &[u8]) -> DecodeErrorKind {
        decode_value(s).expect_err("should fail").kind
    }

    /// Bytes PHP 8.2 wrote, read and written back unchanged.
    #[test]
    fn php_output_round_trips() {
        for s in [
            &b"N;"[..],
            b"b:0;",
            b"b:1;",
            b"i:-9223372036854775808;",
            b"d:0.1;",
            b"d:2;",
            b"d:1.0E+25;",
            b"d:-0;",
            b"d:INF;",
            b"d:-INF;",
            b"d:NAN;",
            b"d:1.0E-5;",
            b"d:0.0001;",
            b"d:1.2345678901234568E+17;",
            b"d:10000000000000000;",
            b"d:5.0E-324;",
            b"s:0:\"\";",
            b"s:3:\"a\0\xff\";",
            b"a:3:{i:0;E:6:\"Suit:A\";i:1;r:2;i:2;E:6:\"Suit:B\";}",
            b"a:4:{i:0;O:8:\"stdClass\":0:{}i:1;r:2;i:2;i:1;i:3;r:2;}",
            b"a:2:{s:1:\"x\";i:2;s:1:\"y\";R:2;}",
            b"O:1:\"P\":3:{s:1:\"a\";i:1;s:4:\"\0*\0b\";i:2;s:4:\"\0P\0c\";i:3;}",
            b"a:3:{i:0;C:2:\"CS\":45:{a:2:{s:1:\"p\";O:8:\"stdClass\":0:{}s:1:\"q\";r:4;}}i:1;r:4;i:2;r:4;}",
            b"O:2:\"S2\":2:{i:1;s:1:\"a\";s:1:\"k\";s:1:\"b\";}",
            b"a:1:{i:0;R:1;}",
        ] {
            let v = dec(s);
            assert_eq!(enc(&v), s, "{v:?}");
        }
    }

    #[test]
    fn values() {
        assert!(matches!(dec(b"d:NAN;"), Value::Float(f) if f.is_nan()));
        assert_eq!(dec(b"d:-0;"), Value::Float(-0.0));
        assert!(dec(b"d:-0;").same(&Value::Float(-0.0)));
        assert!(!dec(b"d:-0;").same(&Value::Float(0.0)));
        assert_eq!(dec(b"S:3:\"\\61bc\";"), Value::Str(b"abc".to_vec()));
        assert_eq!(
            dec(b"a:1:{s:1:\"5\";i:1;}"),
            Value::Array(vec![(Key::Int(5), Value::Int(1))])
        );
        // Object keys are not canonicalised.
        let Value::Object(o) = dec(b"O:8:\"stdClass\":1:{s:1:\"5\";i:1;}") else {
            panic!()
        };
        assert_eq!(o.props[0].0, Key::Str(b"5".to_vec()));
        assert_eq!(
            dec(b"E:6:\"Suit:A\";"),
            Value::Enum {
                class: b"Suit".to_vec(),
                case: b"A".to_vec()
            }
        );
    }

    #[test]
    fn lenient_numbers_as_php_reads_them() {
        assert_eq!(dec(b"i:+5;"), Value::Int(5));
        assert_eq!(dec(b"i:99999999999999999999;"), Value::Int(i64::MAX));
        assert_eq!(dec(b"i:-99999999999999999999;"), Value::Int(i64::MIN));
        for (s, f) in [
            (&b"d:1e5;"[..], 1e5),
            (b"d:.5;", 0.5),
            (b"d:5.;", 5.0),
            (b"d:+1.5E-3;", 0.0015),
            (b"d:1.e2;", 100.0),
        ] {
            assert_eq!(dec(s), Value::Float(f), "{s:?}");
        }
    }

    #[test]
    fn floats_as_php_writes_them() {
        for (f, s) in [
            (0.1, "0.1"),
            (2.0, "2"),
            (1e25, "1.0E+25"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1.5, "1.5"),
            (1e15, "1000000000000000"),
            (1e16, "10000000000000000"),
            (1e17, "1.0E+17"),
            (1e-5, "1.0E-5"),
            (1.5e-7, "1.5E-7"),
            (-1.25e300, "-1.25E+300"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
            (f64::MAX, "1.7976931348623157E+308"),
        ] {
            assert_eq!(format_float(f), s);
        }
    }

    #[test]
    fn every_error() {
        use DecodeErrorKind::*;
        assert_eq!(err(b""), Expected("a value (one of NbidsSaOCERr)"));
        assert_eq!(err(b"x"), Expected("a value (one of NbidsSaOCERr)"));
        assert_eq!(err(b"N"), Expected("`;`"));
        assert_eq!(err(b"b:2;"), Expected("`0` or `1`"));
        assert_eq!(err(b"i:;"), Expected("a digit"));
        assert_eq!(err(b"i:1"), Expected("`;`"));
        assert_eq!(err(b"d:;"), Expected("a number"));
        assert_eq!(err(b"d:.;"), Expected("a number"));
        assert_eq!(err(b"d:1e;"), Expected("an exponent"));
        assert_eq!(err(b"d:-NAN;"), Expected("a number"));
        assert_eq!(err(b"s:5:\"ab\";"), LengthOverrun);
        assert_eq!(err(b"s:99999999999999999999999:\"\";"), LengthOverrun);
        assert_eq!(
            err(b"s:1:\"ab\";"),
            Expected("`\"` after the declared length")
        );
        assert_eq!(err(b"s:1:a"), Expected("`\"`"));
        assert_eq!(err(b"S:1:\"\\6x\";"), Expected("two hex digits"));
        assert_eq!(err(b"a:9:{}"), LengthOverrun);
        assert_eq!(err(b"a:1:{N;N;N;}"), BadKey);
        assert_eq!(err(b"a:1:{i:0;i:1;"), Expected("`}`"));
        assert_eq!(err(b"O:1:\"-\":0:{}"), BadClassName);
        assert_eq!(err(b"O:0:\"\":0:{}"), BadClassName);
        assert_eq!(err(b"C:1:\"A\":5:{ab}"), LengthOverrun);
        assert_eq!(err(b"E:4:\"Suit\";"), BadEnum);
        assert_eq!(err(b"R:1;"), BadRef(1));
        assert_eq!(err(b"a:1:{i:0;R:2;}"), BadRef(2));
        assert_eq!(err(b"a:1:{i:0;r:2;}"), BadRef(2));
        assert_eq!(err(b"a:1:{i:0;R:0;}"), BadRef(0));
        let e = decode_value(b"a:1:{i:0;x}").expect_err("bad");
        assert_eq!(e.offset, 9);
        assert!(e.to_string().contains("byte 9"));
    }

    #[test]
    fn depth_limit() {
        let nest = |n: usize| {
            let mut s = Vec::new();
            for _ in 0..n {
                s.extend_from_slice(b"a:1:{i:0;");
            }
            s.extend_from_slice(b"N;");
            s.extend(std::iter::repeat_n(b'}', n));
            s
        };
        assert!(decode_value(&nest(MAX_DEPTH)).is_ok());
        assert_eq!(
            decode_value(&nest(MAX_DEPTH + 1)).expect_err("deep").kind,
            DecodeErrorKind::TooDeep
        );
        // Far deeper input fails the same way, without overflowing the stack.
        assert!(decode_value(&nest(100_000)).is_err());
    }

    #[test]
    fn payload_slots_count() {
        // Serializable::serialize() returning serialize(): its values take
        // slots in the outer numbering, so r:4 after it is the stdClass.
        let s = b"a:3:{i:0;C:2:\"CS\":45:{a:2:{s:1:\"p\";O:8:\"stdClass\":0:{}s:1:\"q\";r:4;}}i:1;r:4;i:2;r:6;}";
        assert!(decode_value(s).is_ok());
        // An opaque payload takes none.
        assert_eq!(
            decode_value(b"a:2:{i:0;C:1:\"A\":3:{xyz}i:1;r:3;}")
                .expect_err("no slot 3")
                .kind,
            DecodeErrorKind::BadRef(3)
        );
        // Payloads nested in payloads stop counting past the limit.
        let mut p = b"N;".to_vec();
        for _ in 0..1000 {
            let mut q = format!("C:1:\"A\":{}:{{", p.len()).into_bytes();
            q.extend_from_slice(&p);
            q.push(b'}');
            p = q;
        }
        assert!(decode_value(&p).is_ok());
    }

    #[test]
    fn canonical_ints() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"-7"), Some(-7));
        assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
        for s in [&b"01"[..], b"-0", b"+1", b"", b" 1", b"9223372036854775808"] {
            assert_eq!(canonical_int(s), None, "{s:?}");
        }
    }
}
