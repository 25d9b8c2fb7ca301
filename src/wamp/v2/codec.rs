//! The WAMP v2 codec, sans I/O: [`decode`] turns one WebSocket message's
//! payload into a [`Message`], [`encode`] turns a [`Message`] into the
//! payload to send (a text frame's UTF-8 for `wamp.2.json`, a binary
//! frame's bytes for `wamp.2.msgpack`).
//!
//! Decoding is strict, as the spec's message definitions are: the payload
//! is one array whose first element is a known integer type code, followed
//! by exactly that message's fields (a trailing `Arguments|list` and
//! `ArgumentsKw|dict` where the message has them); ids are integers in
//! `1..=2^53`; dicts have string keys; URIs are strings (their *rules*
//! are [`super::uri`]'s, checked by the router).
//!
//! Both serializers share one value model, JSON's: a msgpack `bin` becomes
//! the JSON serializer's binary convention, a string of `"\0"` followed by
//! the bytes in base64, and such a string goes back to `bin` when encoded
//! as msgpack. A message decoded from one serializer therefore encodes
//! to the other without loss (nesting is bounded alike, [`MAX_DEPTH`]).
//!
//! Empty payloads are normalized: a decoded `args` that was an empty list
//! and a `kwargs` that was an empty dict come out as `None`, because
//! [`encode`] leaves them out (as the spec asks), so that
//! `decode(encode(m)) == m` for every decoded `m`.

use super::{Dict, Id, List, MAX_ID, Message, Serializer, code};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmp::Marker;
use serde_json::{Map, Number, Value};
use std::fmt;

/// The deepest nesting a msgpack payload may have, the top-level array
/// counting as 1: the same as serde_json's recursion limit for JSON, so a
/// message read from either serializer can be written to the other and
/// read back.
pub const MAX_DEPTH: usize = 127;

/// Why a payload is not a valid WAMP v2 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    message_type: Option<u64>,
    reason: String,
}

impl DecodeError {
    fn new(message_type: Option<u64>, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            message_type,
            reason: reason.into(),
        }
    }

    /// The type code of the message the payload was meant to be, when its
    /// array began with a known one (`None` for a payload that is not an
    /// array, or whose first element is not a known code).
    pub fn message_type(&self) -> Option<u64> {
        self.message_type
    }

    /// What was wrong, without the message name [`fmt::Display`] adds.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message_type.and_then(name) {
            Some(n) => write!(f, "{n}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The name of a message type code (`"HELLO"` for 1), if it is one.
pub fn name(message_type: u64) -> Option<&'static str> {
    Some(match message_type {
        code::HELLO => "HELLO",
        code::WELCOME => "WELCOME",
        code::ABORT => "ABORT",
        code::CHALLENGE => "CHALLENGE",
        code::AUTHENTICATE => "AUTHENTICATE",
        code::GOODBYE => "GOODBYE",
        code::ERROR => "ERROR",
        code::PUBLISH => "PUBLISH",
        code::PUBLISHED => "PUBLISHED",
        code::SUBSCRIBE => "SUBSCRIBE",
        code::SUBSCRIBED => "SUBSCRIBED",
        code::UNSUBSCRIBE => "UNSUBSCRIBE",
        code::UNSUBSCRIBED => "UNSUBSCRIBED",
        code::EVENT => "EVENT",
        code::CALL => "CALL",
        code::CANCEL => "CANCEL",
        code::RESULT => "RESULT",
        code::REGISTER => "REGISTER",
        code::REGISTERED => "REGISTERED",
        code::UNREGISTER => "UNREGISTER",
        code::UNREGISTERED => "UNREGISTERED",
        code::INVOCATION => "INVOCATION",
        code::INTERRUPT => "INTERRUPT",
        code::YIELD => "YIELD",
        _ => return None,
    })
}

/// Decodes one message from a WebSocket message's payload.
pub fn decode(serializer: Serializer, bytes: &[u8]) -> Result<Message, DecodeError> {
    let value = match serializer {
        Serializer::Json => serde_json::from_slice::<Value>(bytes)
            .map_err(|e| DecodeError::new(None, format!("invalid JSON: {e}")))?,
        Serializer::MsgPack => msgpack::read(bytes).map_err(|e| DecodeError::new(None, e))?,
    };
    from_value(value)
}

/// Encodes a message as the payload of a WebSocket message: UTF-8 JSON
/// text for [`Serializer::Json`] (a text frame), msgpack for
/// [`Serializer::MsgPack`] (a binary frame).
pub fn encode(serializer: Serializer, msg: &Message) -> Vec<u8> {
    let value = to_value(msg);
    match serializer {
        // Serializing a Value into a Vec cannot fail (its map keys are
        // strings and its numbers finite).
        Serializer::Json => serde_json::to_vec(&value).unwrap_or_default(),
        Serializer::MsgPack => {
            let mut out = Vec::new();
            msgpack::write(&mut out, &value);
            out
        }
    }
}

/// The fields of one message after its type code, taken in order.
struct Fields {
    code: u64,
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    fn err(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(Some(self.code), reason)
    }

    fn next(&mut self, what: &str) -> Result<Value, DecodeError> {
        self.items
            .next()
            .ok_or_else(|| self.err(format!("{what} is missing")))
    }

    fn id(&mut self, what: &str) -> Result<Id, DecodeError> {
        let v = self.next(what)?;
        id(&v, 1).map_err(|r| self.err(format!("{what}: {r}")))
    }

    fn dict(&mut self, what: &str) -> Result<Dict, DecodeError> {
        match self.next(what)? {
            Value::Object(m) => Ok(m),
            _ => Err(self.err(format!("{what} must be a dict"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        match self.next(what)? {
            Value::String(s) => Ok(s),
            _ => Err(self.err(format!("{what} must be a string"))),
        }
    }

    /// The optional trailing `Arguments|list, ArgumentsKw|dict`, empty
    /// ones as `None`.
    fn payload(&mut self) -> Result<(Option<List>, Option<Dict>), DecodeError> {
        let args = match self.items.next() {
            None => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => return Err(self.err("Arguments must be a list")),
        };
        let kwargs = match self.items.next() {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(self.err("ArgumentsKw must be a dict")),
        };
        Ok((
            args.filter(|a| !a.is_empty()),
            kwargs.filter(|m| !m.is_empty()),
        ))
    }

    fn end(mut self) -> Result<(), DecodeError> {
        match self.items.next() {
            None => Ok(()),
            Some(_) => Err(self.err(format!(
                "too many elements (more than {})",
                max_len(self.code)
            ))),
        }
    }
}

/// The most elements a message of a type may have, its code included.
fn max_len(code: u64) -> usize {
    match code {
        code::ERROR => 7,
        code::PUBLISH | code::EVENT | code::CALL | code::INVOCATION => 6,
        code::RESULT | code::YIELD => 5,
        code::SUBSCRIBE | code::REGISTER => 4,
        _ => 3,
    }
}

/// An id in `min..=2^53`.
fn id(v: &Value, min: u64) -> Result<Id, String> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(i) if (min..=MAX_ID).contains(&i) => Ok(i),
            Some(i) => Err(format!("id {i} out of range {min}..2^53")),
            None if n.is_i64() => Err(format!("id {n} out of range {min}..2^53")),
            None => Err(format!("id {n} must be an integer")),
        },
        _ => Err("id must be an integer".to_string()),
    }
}

fn from_value(value: Value) -> Result<Message, DecodeError> {
    let Value::Array(items) = value else {
        return Err(DecodeError::new(None, "not an array"));
    };
    let mut items = items.into_iter();
    let code = match items.next() {
        None => return Err(DecodeError::new(None, "empty array")),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(c) if name(c).is_some() => c,
            _ => return Err(DecodeError::new(None, format!("unknown message type {n}"))),
        },
        Some(_) => {
            return Err(DecodeError::new(
                None,
                "the message type must be an integer",
            ));
        }
    };
    let mut f = Fields { code, items };
    let msg = match code {
        code::HELLO => Message::Hello {
            realm: f.string("Realm")?,
            details: f.dict("Details")?,
        },
        code::WELCOME => Message::Welcome {
            session: f.id("Session")?,
            details: f.dict("Details")?,
        },
        code::ABORT => Message::Abort {
            details: f.dict("Details")?,
            reason: f.string("Reason")?,
        },
        code::CHALLENGE => Message::Challenge {
            method: f.string("AuthMethod")?,
            extra: f.dict("Extra")?,
        },
        code::AUTHENTICATE => Message::Authenticate {
            signature: f.string("Signature")?,
            extra: f.dict("Extra")?,
        },
        code::GOODBYE => Message::Goodbye {
            details: f.dict("Details")?,
            reason: f.string("Reason")?,
        },
        code::ERROR => {
            let request_type = match f.next("REQUEST.Type")? {
                Value::Number(n) => match n.as_u64() {
                    Some(c) if name(c).is_some() => c,
                    _ => return Err(f.err(format!("REQUEST.Type {n} is not a message type"))),
                },
                _ => return Err(f.err("REQUEST.Type must be an integer")),
            };
            let request = f.id("REQUEST.Request")?;
            let details = f.dict("Details")?;
            let error = f.string("Error")?;
            let (args, kwargs) = f.payload()?;
            Message::Error {
                request_type,
                request,
                details,
                error,
                args,
                kwargs,
            }
        }
        code::PUBLISH => {
            let request = f.id("Request")?;
            let options = f.dict("Options")?;
            let topic = f.string("Topic")?;
            let (args, kwargs) = f.payload()?;
            Message::Publish {
                request,
                options,
                topic,
                args,
                kwargs,
            }
        }
        code::PUBLISHED => Message::Published {
            request: f.id("PUBLISH.Request")?,
            publication: f.id("Publication")?,
        },
        code::SUBSCRIBE => Message::Subscribe {
            request: f.id("Request")?,
            options: f.dict("Options")?,
            topic: f.string("Topic")?,
        },
        code::SUBSCRIBED => Message::Subscribed {
            request: f.id("SUBSCRIBE.Request")?,
            subscription: f.id("Subscription")?,
        },
        code::UNSUBSCRIBE => Message::Unsubscribe {
            request: f.id("Request")?,
            subscription: f.id("SUBSCRIBED.Subscription")?,
        },
        code::UNSUBSCRIBED | code::UNREGISTERED => {
            let what = if code == code::UNSUBSCRIBED {
                "UNSUBSCRIBE.Request"
            } else {
                "UNREGISTER.Request"
            };
            let raw = f.next(what)?;
            let details = match f.items.next() {
                None => None,
                Some(Value::Object(m)) => Some(m),
                Some(_) => return Err(f.err("Details must be a dict")),
            };
            // A router revoking a subscription or registration sends
            // request 0 with Details saying why.
            let min = if details.is_some() { 0 } else { 1 };
            let request = id(&raw, min).map_err(|r| f.err(format!("{what}: {r}")))?;
            if code == code::UNSUBSCRIBED {
                Message::Unsubscribed { request, details }
            } else {
                Message::Unregistered { request, details }
            }
        }
        code::EVENT => {
            let subscription = f.id("SUBSCRIBED.Subscription")?;
            let publication = f.id("PUBLISHED.Publication")?;
            let details = f.dict("Details")?;
            let (args, kwargs) = f.payload()?;
            Message::Event {
                subscription,
                publication,
                details,
                args,
                kwargs,
            }
        }
        code::CALL => {
            let request = f.id("Request")?;
            let options = f.dict("Options")?;
            let procedure = f.string("Procedure")?;
            let (args, kwargs) = f.payload()?;
            Message::Call {
                request,
                options,
                procedure,
                args,
                kwargs,
            }
        }
        code::CANCEL => Message::Cancel {
            request: f.id("CALL.Request")?,
            options: f.dict("Options")?,
        },
        code::RESULT => {
            let request = f.id("CALL.Request")?;
            let details = f.dict("Details")?;
            let (args, kwargs) = f.payload()?;
            Message::Result {
                request,
                details,
                args,
                kwargs,
            }
        }
        code::REGISTER => Message::Register {
            request: f.id("Request")?,
            options: f.dict("Options")?,
            procedure: f.string("Procedure")?,
        },
        code::REGISTERED => Message::Registered {
            request: f.id("REGISTER.Request")?,
            registration: f.id("Registration")?,
        },
        code::UNREGISTER => Message::Unregister {
            request: f.id("Request")?,
            registration: f.id("REGISTERED.Registration")?,
        },
        code::INVOCATION => {
            let request = f.id("Request")?;
            let registration = f.id("REGISTERED.Registration")?;
            let details = f.dict("Details")?;
            let (args, kwargs) = f.payload()?;
            Message::Invocation {
                request,
                registration,
                details,
                args,
                kwargs,
            }
        }
        code::INTERRUPT => Message::Interrupt {
            request: f.id("INVOCATION.Request")?,
            options: f.dict("Options")?,
        },
        code::YIELD => {
            let request = f.id("INVOCATION.Request")?;
            let options = f.dict("Options")?;
            let (args, kwargs) = f.payload()?;
            Message::Yield {
                request,
                options,
                args,
                kwargs,
            }
        }
        // `name` knows exactly the codes above.
        _ => return Err(f.err(format!("unknown message type {code}"))),
    };
    f.end()?;
    Ok(msg)
}

fn to_value(msg: &Message) -> Value {
    let mut a: Vec<Value> = vec![msg.code().into()];
    let dict = |d: &Dict| Value::Object(d.clone());
    let s = |s: &String| Value::String(s.clone());
    match msg {
        Message::Hello { realm, details } => a.extend([s(realm), dict(details)]),
        Message::Welcome { session, details } => a.extend([(*session).into(), dict(details)]),
        Message::Abort { details, reason } | Message::Goodbye { details, reason } => {
            a.extend([dict(details), s(reason)])
        }
        Message::Challenge { method, extra } => a.extend([s(method), dict(extra)]),
        Message::Authenticate { signature, extra } => a.extend([s(signature), dict(extra)]),
        Message::Error {
            request_type,
            request,
            details,
            error,
            args,
            kwargs,
        } => {
            a.extend([
                (*request_type).into(),
                (*request).into(),
                dict(details),
                s(error),
            ]);
            payload(&mut a, args, kwargs);
        }
        Message::Publish {
            request,
            options,
            topic,
            args,
            kwargs,
        } => {
            a.extend([(*request).into(), dict(options), s(topic)]);
            payload(&mut a, args, kwargs);
        }
        Message::Published {
            request,
            publication,
        } => a.extend([(*request).into(), (*publication).into()]),
        Message::Subscribe {
            request,
            options,
            topic,
        } => a.extend([(*request).into(), dict(options), s(topic)]),
        Message::Subscribed {
            request,
            subscription,
        }
        | Message::Unsubscribe {
            request,
            subscription,
        } => a.extend([(*request).into(), (*subscription).into()]),
        Message::Unsubscribed { request, details } | Message::Unregistered { request, details } => {
            a.push((*request).into());
            if let Some(d) = details {
                a.push(dict(d));
            }
        }
        Message::Event {
            subscription,
            publication,
            details,
            args,
            kwargs,
        } => {
            a.extend([(*subscription).into(), (*publication).into(), dict(details)]);
            payload(&mut a, args, kwargs);
        }
        Message::Call {
            request,
            options,
            procedure,
            args,
            kwargs,
        } => {
            a.extend([(*request).into(), dict(options), s(procedure)]);
            payload(&mut a, args, kwargs);
        }
        Message::Cancel { request, options } | Message::Interrupt { request, options } => {
            a.extend([(*request).into(), dict(options)])
        }
        Message::Result {
            request,
            details,
            args,
            kwargs,
        } => {
            a.extend([(*request).into(), dict(details)]);
            payload(&mut a, args, kwargs);
        }
        Message::Register {
            request,
            options,
            procedure,
        } => a.extend([(*request).into(), dict(options), s(procedure)]),
        Message::Registered {
            request,
            registration,
        }
        | Message::Unregister {
            request,
            registration,
        } => a.extend([(*request).into(), (*registration).into()]),
        Message::Invocation {
            request,
            registration,
            details,
            args,
            kwargs,
        } => {
            a.extend([(*request).into(), (*registration).into(), dict(details)]);
            payload(&mut a, args, kwargs);
        }
        Message::Yield {
            request,
            options,
            args,
            kwargs,
        } => {
            a.extend([(*request).into(), dict(options)]);
            payload(&mut a, args, kwargs);
        }
    }
    Value::Array(a)
}

/// Appends `Arguments` and `ArgumentsKw` as the spec asks: `kwargs` only
/// when not empty, `args` only when it or `kwargs` is not empty.
fn payload(a: &mut Vec<Value>, args: &Option<List>, kwargs: &Option<Dict>) {
    let args = args.as_ref().filter(|l| !l.is_empty());
    let kwargs = kwargs.as_ref().filter(|m| !m.is_empty());
    if args.is_some() || kwargs.is_some() {
        a.push(Value::Array(args.cloned().unwrap_or_default()));
    }
    if let Some(k) = kwargs {
        a.push(Value::Object(k.clone()));
    }
}

/// msgpack to and from the JSON value model.
mod msgpack {
    use super::*;

    /// Reads one msgpack value filling all of `bytes`.
    pub(super) fn read(bytes: &[u8]) -> Result<Value, String> {
        let mut r = Reader { bytes, pos: 0 };
        let v = r.value(1)?;
        if r.pos != bytes.len() {
            return Err(format!(
                "{} trailing bytes after the msgpack value",
                bytes.len() - r.pos
            ));
        }
        Ok(v)
    }

    fn float(f: f64) -> Result<Value, String> {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("float {f} has no JSON value"))
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn remaining(&self) -> usize {
            self.bytes.len() - self.pos
        }

        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if n > self.remaining() {
                return Err(format!(
                    "truncated msgpack: {n} bytes needed at offset {}, {} left",
                    self.pos,
                    self.remaining()
                ));
            }
            let s = &self.bytes[self.pos..self.pos + n];
            self.pos += n;
            Ok(s)
        }

        fn be<const N: usize>(&mut self) -> Result<[u8; N], String> {
            let mut out = [0u8; N];
            out.copy_from_slice(self.take(N)?);
            Ok(out)
        }

        fn len8(&mut self) -> Result<usize, String> {
            Ok(usize::from(self.be::<1>()?[0]))
        }

        fn len16(&mut self) -> Result<usize, String> {
            Ok(usize::from(u16::from_be_bytes(self.be()?)))
        }

        fn len32(&mut self) -> Result<usize, String> {
            usize::try_from(u32::from_be_bytes(self.be()?))
                .map_err(|_| "msgpack length does not fit in memory".to_string())
        }

        fn string(&mut self, len: usize) -> Result<String, String> {
            let at = self.pos;
            let b = self.take(len)?;
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| format!("msgpack string at offset {at} is not UTF-8"))
        }

        fn binary(&mut self, len: usize) -> Result<Value, String> {
            let b = self.take(len)?;
            Ok(Value::String(format!("\0{}", BASE64.encode(b))))
        }

        fn array(&mut self, len: usize, depth: usize) -> Result<Value, String> {
            self.deeper(depth)?;
            // Each element takes at least one byte: never reserve more
            // than the input could fill.
            let mut a = Vec::with_capacity(len.min(self.remaining()));
            for _ in 0..len {
                a.push(self.value(depth + 1)?);
            }
            Ok(Value::Array(a))
        }

        fn map(&mut self, len: usize, depth: usize) -> Result<Value, String> {
            self.deeper(depth)?;
            let mut m = Map::new();
            for _ in 0..len {
                let k = self.key()?;
                let v = self.value(depth + 1)?;
                m.insert(k, v);
            }
            Ok(Value::Object(m))
        }

        /// A map key: a msgpack string (not `bin`, which would be a value
        /// in the binary convention).
        fn key(&mut self) -> Result<String, String> {
            let at = self.pos;
            let n = match Marker::from_u8(self.be::<1>()?[0]) {
                Marker::FixStr(n) => usize::from(n),
                Marker::Str8 => self.len8()?,
                Marker::Str16 => self.len16()?,
                Marker::Str32 => self.len32()?,
                _ => return Err(format!("msgpack map key at offset {at} is not a string")),
            };
            self.string(n)
        }

        fn deeper(&self, depth: usize) -> Result<(), String> {
            if depth > MAX_DEPTH {
                return Err(format!("msgpack nested deeper than {MAX_DEPTH}"));
            }
            Ok(())
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            let at = self.pos;
            let m = Marker::from_u8(self.be::<1>()?[0]);
            Ok(match m {
                Marker::Null => Value::Null,
                Marker::True => Value::Bool(true),
                Marker::False => Value::Bool(false),
                Marker::FixPos(n) => n.into(),
                Marker::FixNeg(n) => n.into(),
                Marker::U8 => self.be::<1>()?[0].into(),
                Marker::U16 => u16::from_be_bytes(self.be()?).into(),
                Marker::U32 => u32::from_be_bytes(self.be()?).into(),
                Marker::U64 => u64::from_be_bytes(self.be()?).into(),
                Marker::I8 => i8::from_be_bytes(self.be()?).into(),
                Marker::I16 => i16::from_be_bytes(self.be()?).into(),
                Marker::I32 => i32::from_be_bytes(self.be()?).into(),
                Marker::I64 => i64::from_be_bytes(self.be()?).into(),
                Marker::F32 => float(f64::from(f32::from_be_bytes(self.be()?)))?,
                Marker::F64 => float(f64::from_be_bytes(self.be()?))?,
                Marker::FixStr(n) => Value::String(self.string(usize::from(n))?),
                Marker::Str8 => {
                    let n = self.len8()?;
                    Value::String(self.string(n)?)
                }
                Marker::Str16 => {
                    let n = self.len16()?;
                    Value::String(self.string(n)?)
                }
                Marker::Str32 => {
                    let n = self.len32()?;
                    Value::String(self.string(n)?)
                }
                Marker::Bin8 => {
                    let n = self.len8()?;
                    self.binary(n)?
                }
                Marker::Bin16 => {
                    let n = self.len16()?;
                    self.binary(n)?
                }
                Marker::Bin32 => {
                    let n = self.len32()?;
                    self.binary(n)?
                }
                Marker::FixArray(n) => self.array(usize::from(n), depth)?,
                Marker::Array16 => {
                    let n = self.len16()?;
                    self.array(n, depth)?
                }
                Marker::Array32 => {
                    let n = self.len32()?;
                    self.array(n, depth)?
                }
                Marker::FixMap(n) => self.map(usize::from(n), depth)?,
                Marker::Map16 => {
                    let n = self.len16()?;
                    self.map(n, depth)?
                }
                Marker::Map32 => {
                    let n = self.len32()?;
                    self.map(n, depth)?
                }
                Marker::FixExt1
                | Marker::FixExt2
                | Marker::FixExt4
                | Marker::FixExt8
                | Marker::FixExt16
                | Marker::Ext8
                | Marker::Ext16
                | Marker::Ext32 => {
                    return Err(format!(
                        "msgpack extension type at offset {at} is not supported"
                    ));
                }
                Marker::Reserved => return Err(format!("msgpack byte 0xc1 at offset {at}")),
            })
        }
    }

    /// Writes `v` as msgpack. Writing into a Vec cannot fail, so the
    /// writers' results are dropped; lengths fit in u32 because WebSocket
    /// messages are far smaller than 4 GiB.
    pub(super) fn write(out: &mut Vec<u8>, v: &Value) {
        use rmp::encode as w;
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match v {
            Value::Null => {
                let _ = w::write_nil(out);
            }
            Value::Bool(b) => {
                let _ = w::write_bool(out, *b);
            }
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    let _ = w::write_uint(out, u);
                } else if let Some(i) = n.as_i64() {
                    let _ = w::write_sint(out, i);
                } else if let Some(f) = n.as_f64() {
                    let _ = w::write_f64(out, f);
                }
            }
            Value::String(s) => match binary(s) {
                Some(b) => {
                    let _ = w::write_bin(out, &b);
                }
                None => {
                    let _ = w::write_str(out, s);
                }
            },
            Value::Array(a) => {
                let _ = w::write_array_len(out, len(a.len()));
                for x in a {
                    write(out, x);
                }
            }
            Value::Object(m) => {
                let _ = w::write_map_len(out, len(m.len()));
                for (k, x) in m {
                    let _ = w::write_str(out, k);
                    write(out, x);
                }
            }
        }
    }

    /// The bytes of a string in the JSON serializer's binary convention
    /// (`"\0"` then canonical base64), if it is one. Map keys are never
    /// binary (msgpack keys must be strings here).
    fn binary(s: &str) -> Option<Vec<u8>> {
        BASE64.decode(s.strip_prefix('\0')?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOTH: [Serializer; 2] = [Serializer::Json, Serializer::MsgPack];

    fn d(v: Value) -> Dict {
        match v {
            Value::Object(m) => m,
            _ => panic!("not a dict: {v}"),
        }
    }

    fn json(text: &str) -> Result<Message, DecodeError> {
        decode(Serializer::Json, text.as_bytes())
    }

    fn err(text: &str) -> String {
        match json(text) {
            Ok(m) => panic!("{text} decoded as {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn all_messages() -> Vec<Message> {
        let a = || Some(vec![json!(1), json!("two"), json!({"three": [3.5]})]);
        let k = || Some(d(json!({"k": "v", "n": null, "t": true})));
        let det = || d(json!({"x": 1}));
        vec![
            Message::Hello {
                realm: "realm1".into(),
                details: d(json!({"roles": {"caller": {}, "subscriber": {}}})),
            },
            Message::Welcome {
                session: 9129137332,
                details: d(json!({"roles": {"broker": {}}})),
            },
            Message::Abort {
                details: d(json!({"message": "no realm"})),
                reason: "wamp.error.no_such_realm".into(),
            },
            Message::Challenge {
                method: "ticket".into(),
                extra: Dict::new(),
            },
            Message::Authenticate {
                signature: "secret!!!".into(),
                extra: Dict::new(),
            },
            Message::Goodbye {
                details: Dict::new(),
                reason: "wamp.close.close_realm".into(),
            },
            Message::Error {
                request_type: code::CALL,
                request: 7,
                details: Dict::new(),
                error: "com.myapp.error".into(),
                args: a(),
                kwargs: k(),
            },
            Message::Error {
                request_type: code::SUBSCRIBE,
                request: 8,
                details: det(),
                error: "wamp.error.not_authorized".into(),
                args: None,
                kwargs: None,
            },
            Message::Publish {
                request: 1,
                options: d(json!({"acknowledge": true})),
                topic: "com.myapp.topic1".into(),
                args: a(),
                kwargs: None,
            },
            Message::Published {
                request: 1,
                publication: MAX_ID,
            },
            Message::Subscribe {
                request: 2,
                options: Dict::new(),
                topic: "com.myapp.".into(),
            },
            Message::Subscribed {
                request: 2,
                subscription: 5512315355,
            },
            Message::Unsubscribe {
                request: 3,
                subscription: 5512315355,
            },
            Message::Unsubscribed {
                request: 3,
                details: None,
            },
            Message::Unsubscribed {
                request: 0,
                details: Some(d(
                    json!({"subscription": 12, "reason": "wamp.authentication.lost"}),
                )),
            },
            Message::Event {
                subscription: 5512315355,
                publication: 4429313566,
                details: Dict::new(),
                args: None,
                kwargs: k(),
            },
            Message::Call {
                request: 7814135,
                options: Dict::new(),
                procedure: "com.myapp.add2".into(),
                args: Some(vec![json!(23), json!(7)]),
                kwargs: None,
            },
            Message::Cancel {
                request: 7814135,
                options: d(json!({"mode": "kill"})),
            },
            Message::Result {
                request: 7814135,
                details: Dict::new(),
                args: Some(vec![json!(30)]),
                kwargs: k(),
            },
            Message::Register {
                request: 25349185,
                options: Dict::new(),
                procedure: "com.myapp.myprocedure1".into(),
            },
            Message::Registered {
                request: 25349185,
                registration: 2103333224,
            },
            Message::Unregister {
                request: 788923562,
                registration: 2103333224,
            },
            Message::Unregistered {
                request: 788923562,
                details: None,
            },
            Message::Unregistered {
                request: 0,
                details: Some(det()),
            },
            Message::Invocation {
                request: 6131533,
                registration: 9823526,
                details: Dict::new(),
                args: Some(vec![json!("Hello, world!")]),
                kwargs: None,
            },
            Message::Interrupt {
                request: 6131533,
                options: Dict::new(),
            },
            Message::Yield {
                request: 6131533,
                options: Dict::new(),
                args: None,
                kwargs: None,
            },
        ]
    }

    #[test]
    fn every_message_round_trips_in_both_serializers() {
        let msgs = all_messages();
        let mut codes: Vec<u64> = msgs.iter().map(Message::code).collect();
        codes.dedup();
        assert_eq!(codes.len(), 24, "every message type is covered");
        for m in msgs {
            for s in BOTH {
                let bytes = encode(s, &m);
                assert_eq!(decode(s, &bytes).as_ref(), Ok(&m), "{s:?} {m:?}");
            }
            // JSON text is valid UTF-8, and starts as the spec shows.
            let text = String::from_utf8(encode(Serializer::Json, &m)).expect("UTF-8");
            assert!(text.starts_with(&format!("[{},", m.code())), "{text}");
        }
    }

    #[test]
    fn spec_examples_decode() {
        assert_eq!(
            json(r#"[1, "somerealm", {"roles": {"publisher": {}, "subscriber": {}}}]"#),
            Ok(Message::Hello {
                realm: "somerealm".into(),
                details: d(json!({"roles": {"publisher": {}, "subscriber": {}}})),
            })
        );
        assert_eq!(
            json(r#"[2, 9129137332, {"roles": {"broker": {}}}]"#),
            Ok(Message::Welcome {
                session: 9129137332,
                details: d(json!({"roles": {"broker": {}}})),
            })
        );
        assert_eq!(
            json(r#"[3, {"message": "The realm does not exist."}, "wamp.error.no_such_realm"]"#),
            Ok(Message::Abort {
                details: d(json!({"message": "The realm does not exist."})),
                reason: "wamp.error.no_such_realm".into(),
            })
        );
        assert_eq!(
            json(
                r#"[6, {"message": "The host is shutting down now."}, "wamp.close.system_shutdown"]"#
            ),
            Ok(Message::Goodbye {
                details: d(json!({"message": "The host is shutting down now."})),
                reason: "wamp.close.system_shutdown".into(),
            })
        );
        assert_eq!(
            json(r#"[32, 713845233, {}, "com.myapp.mytopic1"]"#),
            Ok(Message::Subscribe {
                request: 713845233,
                options: Dict::new(),
                topic: "com.myapp.mytopic1".into(),
            })
        );
        assert_eq!(
            json(r#"[8, 32, 713845233, {}, "wamp.error.not_authorized"]"#),
            Ok(Message::Error {
                request_type: code::SUBSCRIBE,
                request: 713845233,
                details: Dict::new(),
                error: "wamp.error.not_authorized".into(),
                args: None,
                kwargs: None,
            })
        );
        assert_eq!(
            json(
                r#"[16, 239714735, {}, "com.myapp.mytopic1", [], {"color": "orange", "sizes": [23, 42, 7]}]"#
            ),
            Ok(Message::Publish {
                request: 239714735,
                options: Dict::new(),
                topic: "com.myapp.mytopic1".into(),
                args: None,
                kwargs: Some(d(json!({"color": "orange", "sizes": [23, 42, 7]}))),
            })
        );
        assert_eq!(
            json(r#"[36, 5512315355, 4429313566, {}, ["Hello, world!"]]"#),
            Ok(Message::Event {
                subscription: 5512315355,
                publication: 4429313566,
                details: Dict::new(),
                args: Some(vec![json!("Hello, world!")]),
                kwargs: None,
            })
        );
        assert_eq!(
            json(
                r#"[48, 7814135, {}, "com.myapp.user.new", ["johnny"], {"firstname": "John", "surname": "Doe"}]"#
            ),
            Ok(Message::Call {
                request: 7814135,
                options: Dict::new(),
                procedure: "com.myapp.user.new".into(),
                args: Some(vec![json!("johnny")]),
                kwargs: Some(d(json!({"firstname": "John", "surname": "Doe"}))),
            })
        );
        assert_eq!(
            json(r#"[50, 7814135, {}, [], {"userid": 123, "karma": 10}]"#),
            Ok(Message::Result {
                request: 7814135,
                details: Dict::new(),
                args: None,
                kwargs: Some(d(json!({"userid": 123, "karma": 10}))),
            })
        );
        assert_eq!(
            json(r#"[70, 6131533, {}, [30]]"#),
            Ok(Message::Yield {
                request: 6131533,
                options: Dict::new(),
                args: Some(vec![json!(30)]),
                kwargs: None,
            })
        );
        assert_eq!(
            json("[35, 85346237]"),
            Ok(Message::Unsubscribed {
                request: 85346237,
                details: None
            })
        );
        assert_eq!(
            json("[67, 788923562]"),
            Ok(Message::Unregistered {
                request: 788923562,
                details: None
            })
        );
    }

    #[test]
    fn malformed_messages_say_what_is_wrong() {
        let cases = [
            (r#"{"a": 1}"#, "not an array"),
            ("[]", "empty array"),
            (
                r#"["1", "realm", {}]"#,
                "the message type must be an integer",
            ),
            (r#"[99, 1]"#, "unknown message type 99"),
            (r#"[1.0, "realm", {}]"#, "unknown message type 1.0"),
            (r#"[1, "realm", []]"#, "HELLO: Details must be a dict"),
            (r#"[1, "realm"]"#, "HELLO: Details is missing"),
            (r#"[1, 5, {}]"#, "HELLO: Realm must be a string"),
            (
                r#"[1, "realm", {}, 1]"#,
                "HELLO: too many elements (more than 3)",
            ),
            (
                r#"[2, 0, {}]"#,
                "WELCOME: Session: id 0 out of range 1..2^53",
            ),
            (
                r#"[2, -1, {}]"#,
                "WELCOME: Session: id -1 out of range 1..2^53",
            ),
            (
                r#"[2, 1.5, {}]"#,
                "WELCOME: Session: id 1.5 must be an integer",
            ),
            (r#"[2, "1", {}]"#, "WELCOME: Session: id must be an integer"),
            (r#"[3, {}, 5]"#, "ABORT: Reason must be a string"),
            (
                r#"[8, 99, 1, {}, "e"]"#,
                "ERROR: REQUEST.Type 99 is not a message type",
            ),
            (
                r#"[8, "x", 1, {}, "e"]"#,
                "ERROR: REQUEST.Type must be an integer",
            ),
            (
                r#"[16, 1, {}, "t", {}]"#,
                "PUBLISH: Arguments must be a list",
            ),
            (
                r#"[16, 1, {}, "t", [], []]"#,
                "PUBLISH: ArgumentsKw must be a dict",
            ),
            (
                r#"[16, 1, {}, "t", [], {}, 1]"#,
                "PUBLISH: too many elements (more than 6)",
            ),
            (
                r#"[32, 1, {}, "t", []]"#,
                "SUBSCRIBE: too many elements (more than 4)",
            ),
            (
                r#"[35, 0]"#,
                "UNSUBSCRIBED: UNSUBSCRIBE.Request: id 0 out of range 1..2^53",
            ),
            (r#"[35, 1, []]"#, "UNSUBSCRIBED: Details must be a dict"),
            (
                r#"[35, 1, {}, 1]"#,
                "UNSUBSCRIBED: too many elements (more than 3)",
            ),
            (
                r#"[67, -1, {}]"#,
                "UNREGISTERED: UNREGISTER.Request: id -1 out of range 0..2^53",
            ),
            (
                r#"[50, 1, {}, [], {}, 1]"#,
                "RESULT: too many elements (more than 5)",
            ),
            (r#"[69, 1]"#, "INTERRUPT: Options is missing"),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "{text}");
        }
        assert!(err("[1, ").starts_with("invalid JSON"));
        assert!(err("\"\\ud800\" x").starts_with("invalid JSON"));
        assert_eq!(
            json(r#"[1, "realm", []]"#).unwrap_err().message_type(),
            Some(1)
        );
        assert_eq!(json("[99]").unwrap_err().message_type(), None);
        assert_eq!(json("{}").unwrap_err().message_type(), None);
        assert_eq!(
            json(r#"[8, 48, 0, {}, "e"]"#).unwrap_err().message_type(),
            Some(code::ERROR)
        );
    }

    #[test]
    fn ids_are_integers_in_1_to_2_pow_53() {
        let welcome = |id: &str| json(&format!("[2, {id}, {{}}]"));
        assert!(
            matches!(welcome("9007199254740992"), Ok(Message::Welcome { session, .. }) if session == MAX_ID)
        );
        assert!(matches!(
            welcome("1"),
            Ok(Message::Welcome { session: 1, .. })
        ));
        for bad in [
            "9007199254740993",
            "18446744073709551615",
            "0",
            "-5",
            "1e3",
            "2.0",
        ] {
            assert!(welcome(bad).is_err(), "{bad}");
        }
        // The same in msgpack, where an id may come as any integer width.
        let mp = |id: &[u8]| {
            let mut b = vec![0x93, 0x02];
            b.extend_from_slice(id);
            b.push(0x80);
            decode(Serializer::MsgPack, &b)
        };
        let max = MAX_ID.to_be_bytes();
        assert!(mp(&[&[0xcf][..], &max].concat()).is_ok());
        let over = (MAX_ID + 1).to_be_bytes();
        assert!(mp(&[&[0xcf][..], &over].concat()).is_err());
        assert!(mp(&[0xd0, 0x05]).is_ok(), "an int8 5 is the id 5");
        assert!(mp(&[0xff]).is_err(), "-1");
        assert!(mp(&[0x00]).is_err(), "0");
        assert!(mp(&[0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]).is_err(), "1.0");
        // Request 0 is for a router's revocation, which has Details.
        assert_eq!(
            json(r#"[35, 0, {"reason": "gone"}]"#),
            Ok(Message::Unsubscribed {
                request: 0,
                details: Some(d(json!({"reason": "gone"})))
            })
        );
    }

    #[test]
    fn empty_args_and_kwargs_are_left_out() {
        let enc = |m: &Message| String::from_utf8(encode(Serializer::Json, m)).expect("UTF-8");
        let event = |args: Option<List>, kwargs: Option<Dict>| Message::Event {
            subscription: 1,
            publication: 2,
            details: Dict::new(),
            args,
            kwargs,
        };
        assert_eq!(enc(&event(None, None)), "[36,1,2,{}]");
        assert_eq!(enc(&event(Some(vec![]), Some(Dict::new()))), "[36,1,2,{}]");
        assert_eq!(
            enc(&event(Some(vec![json!(1)]), Some(Dict::new()))),
            "[36,1,2,{},[1]]"
        );
        assert_eq!(
            enc(&event(None, Some(d(json!({"a": 1}))))),
            r#"[36,1,2,{},[],{"a":1}]"#
        );
        let error = Message::Error {
            request_type: code::CALL,
            request: 3,
            details: Dict::new(),
            error: "e".into(),
            args: Some(vec![]),
            kwargs: None,
        };
        assert_eq!(enc(&error), r#"[8,48,3,{},"e"]"#);
        let call = Message::Call {
            request: 3,
            options: Dict::new(),
            procedure: "p".into(),
            args: None,
            kwargs: Some(Dict::new()),
        };
        assert_eq!(enc(&call), r#"[48,3,{},"p"]"#);
        let y = Message::Yield {
            request: 3,
            options: Dict::new(),
            args: Some(vec![json!(null)]),
            kwargs: None,
        };
        assert_eq!(enc(&y), "[70,3,{},[null]]");
        // And decoding gives empty ones as None, so round trips hold.
        assert_eq!(json("[36, 1, 2, {}, [], {}]"), Ok(event(None, None)));
        assert_eq!(
            decode(Serializer::MsgPack, &[0x96, 0x24, 1, 2, 0x80, 0x90, 0x80]),
            Ok(event(None, None))
        );
    }

    #[test]
    fn binary_values_cross_between_json_and_msgpack() {
        // [36, 1, 2, {}, [bin 00 ff 10]]
        let mp = [0x95, 0x24, 1, 2, 0x80, 0x91, 0xc4, 3, 0x00, 0xff, 0x10];
        let m = decode(Serializer::MsgPack, &mp).expect("decodes");
        let Message::Event { args: Some(a), .. } = &m else {
            panic!("{m:?}")
        };
        assert_eq!(a, &vec![json!("\0AP8Q")]);
        assert_eq!(encode(Serializer::MsgPack, &m), mp, "bin again");
        let text = encode(Serializer::Json, &m);
        assert_eq!(text, br#"[36,1,2,{},["\u0000AP8Q"]]"#);
        let back = decode(Serializer::Json, &text).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(encode(Serializer::MsgPack, &back), mp);
        // A "\0" string that is not base64 stays a string.
        let m = json(r#"[70, 1, {}, ["\u0000not base64!"]]"#).expect("decodes");
        let b = encode(Serializer::MsgPack, &m);
        assert!(b.contains(&0xac), "str of 12 bytes: {b:x?}");
        assert_eq!(decode(Serializer::MsgPack, &b), Ok(m));
    }

    #[test]
    fn msgpack_values_map_to_json() {
        // [70, 1, {}, [nil, true, false, -1, -200, u64 max, 1.5f32, 0.1f64, "é"]]
        let mut b = vec![
            0x94, 0x46, 1, 0x80, 0x99, 0xc0, 0xc3, 0xc2, 0xff, 0xd1, 0xff, 0x38,
        ];
        b.push(0xcf);
        b.extend_from_slice(&u64::MAX.to_be_bytes());
        b.push(0xca);
        b.extend_from_slice(&1.5f32.to_be_bytes());
        b.push(0xcb);
        b.extend_from_slice(&0.1f64.to_be_bytes());
        b.extend_from_slice(&[0xa2, 0xc3, 0xa9]);
        let m = decode(Serializer::MsgPack, &b).expect("decodes");
        assert_eq!(
            String::from_utf8(encode(Serializer::Json, &m)).expect("UTF-8"),
            r#"[70,1,{},[null,true,false,-1,-200,18446744073709551615,1.5,0.1,"é"]]"#
        );
        // Back in msgpack, compactly.
        let again = encode(Serializer::MsgPack, &m);
        assert_eq!(decode(Serializer::MsgPack, &again), Ok(m));
    }

    #[test]
    fn malformed_msgpack_is_refused() {
        let mp = |b: &[u8]| match decode(Serializer::MsgPack, b) {
            Ok(m) => panic!("{b:x?} decoded as {m:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            mp(&[]),
            "truncated msgpack: 1 bytes needed at offset 0, 0 left"
        );
        assert_eq!(mp(&[0x80]), "not an array");
        // An array claiming 2^32-1 elements in 5 bytes: refused without
        // reserving room for them.
        assert!(mp(&[0xdd, 0xff, 0xff, 0xff, 0xff]).starts_with("truncated msgpack"));
        assert!(mp(&[0xdf, 0xff, 0xff, 0xff, 0xff]).starts_with("truncated msgpack"));
        assert!(mp(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).starts_with("truncated msgpack"));
        // [35, 1, {1: 2}]: a map key must be a string.
        assert_eq!(
            mp(&[0x93, 0x23, 1, 0x81, 1, 2]),
            "msgpack map key at offset 4 is not a string"
        );
        // [35, 1, {bin "a": 2}]
        assert!(mp(&[0x93, 0x23, 1, 0x81, 0xc4, 1, b'a', 2]).contains("not a string"));
        // A string that is not UTF-8.
        assert_eq!(
            mp(&[0x93, 0x01, 0xa2, 0xc3, 0x28, 0x80]),
            "msgpack string at offset 3 is not UTF-8"
        );
        assert_eq!(
            mp(&[0x92, 0x23, 0xd4, 1, 1]),
            "msgpack extension type at offset 2 is not supported"
        );
        assert_eq!(mp(&[0x92, 0x23, 0xc1]), "msgpack byte 0xc1 at offset 2");
        assert_eq!(
            mp(&[0x92, 0x23, 1, 0]),
            "1 trailing bytes after the msgpack value"
        );
        // NaN has no JSON value.
        let mut nan = vec![0x94, 0x46, 1, 0x80, 0x91, 0xcb];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert_eq!(mp(&nan), "float NaN has no JSON value");
    }

    #[test]
    fn nesting_is_bounded_alike_in_both_serializers() {
        // [70, 1, {}, [[[...]]]]: the top array, then `extra` more.
        let nested = |extra: usize| {
            let mut b = vec![0x94, 0x46, 1, 0x80];
            b.extend(std::iter::repeat_n(0x91, extra));
            b.push(0xc0);
            let text = format!("[70,1,{{}},{}null{}]", "[".repeat(extra), "]".repeat(extra));
            (b, text)
        };
        let (b, t) = nested(MAX_DEPTH - 1);
        assert!(decode(Serializer::MsgPack, &b).is_ok());
        assert!(json(&t).is_ok());
        let m = decode(Serializer::MsgPack, &b).expect("decodes");
        assert_eq!(
            json(&String::from_utf8(encode(Serializer::Json, &m)).expect("UTF-8")),
            Ok(m)
        );
        let (b, t) = nested(MAX_DEPTH);
        assert_eq!(
            decode(Serializer::MsgPack, &b).unwrap_err().to_string(),
            format!("msgpack nested deeper than {MAX_DEPTH}")
        );
        assert!(err(&t).contains("recursion limit"), "{}", err(&t));
        // Far deeper input does not overflow the stack either.
        let (b, _) = nested(100_000);
        assert!(decode(Serializer::MsgPack, &b).is_err());
    }
}
