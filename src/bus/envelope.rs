//! The envelope: what one process publishes to the Redis channel of a
//! topic for one event, in a compact binary form (`docs/scaling.md`,
//! "The envelope", describes it byte by byte).
//!
//! Sans-IO and allocation-light: [`Envelope::decode`] checks every length
//! once against what the input holds, then borrows the topic, the names
//! and the payload from the input; only the two id lists get a `Vec` of
//! borrowed slices, never larger than the input could fill. The encoding
//! is canonical (fixed-width integers, presence in one flags byte, no
//! trailing bytes), so whatever decodes encodes back to the same bytes.

use super::Event;
use std::fmt;

/// The only format version this build reads and writes.
pub const VERSION: u8 = 1;
/// The longest topic, in bytes (the WAMP and push limit for URIs).
pub const MAX_TOPIC_LEN: usize = 2048;
/// The longest user or session id, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// The most session ids in `exclude`, and in `eligible`, each.
pub const MAX_IDS: usize = 10_000;
/// The largest payload [`Envelope::encode`] writes and [`Envelope::decode`]
/// reads (16 MiB); [`Envelope::decode_with_limit`] takes another limit.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Flags bit: a publisher session id follows the topic.
const HAS_SESSION: u8 = 0b001;
/// Flags bit: a user follows.
const HAS_USER: u8 = 0b010;
/// Flags bit: an `eligible` list follows `exclude`.
const HAS_ELIGIBLE: u8 = 0b100;
/// Bytes before the topic: version, flags, origin, seq, epoch.
const HEAD_LEN: usize = 1 + 1 + 16 + 8 + 8;

/// The publishing process: a 128-bit random id the process draws when it
/// starts (a restarted process is a new origin, so its sequences start
/// afresh without looking like duplicates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(pub [u8; 16]);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One event as it crosses processes, borrowing its strings and payload
/// (from the [`Event`] it was made from, or from the bytes it was decoded
/// from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The process that published it.
    pub origin: Origin,
    /// Its number among `origin`'s publishes on this topic: 1 for the
    /// first, +1 for each next one (never 0). Per origin *and topic*, so
    /// that a process subscribed to some topics can tell a loss from
    /// publishes on topics it does not hear (see [`super::SeqTracker`]).
    pub seq: u64,
    /// The epoch of a durable topic's stream (0 until durable topics
    /// exist; carried, not interpreted, here).
    pub epoch: u64,
    /// The topic URI (also the Redis channel's name, in some form).
    pub topic: &'a str,
    /// The publisher's WAMP session id, if a session published it.
    pub session: Option<&'a str>,
    /// Only connections of this user, if set.
    pub user: Option<&'a str>,
    /// WAMP session ids not to deliver to.
    pub exclude: Vec<&'a str>,
    /// If set, only these WAMP session ids.
    pub eligible: Option<Vec<&'a str>>,
    /// The event's JSON text, UTF-8-checked but not parsed: it goes into
    /// each protocol's frame as it is.
    pub payload: &'a str,
}

/// A field of the envelope, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The fixed head: version, flags, origin, seq, epoch.
    Head,
    /// The topic.
    Topic,
    /// The publisher's session id.
    Session,
    /// The user.
    User,
    /// An id of `exclude`, or its count.
    Exclude,
    /// An id of `eligible`, or its count.
    Eligible,
    /// The payload.
    Payload,
}

/// Why bytes are not an envelope, or an envelope cannot be encoded.
/// Decoding errors are the publisher's fault (or not an envelope at all);
/// the receiver drops the message, logs and counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The input ends inside this field (or is empty).
    Truncated(Field),
    /// A version this build does not read (a newer publisher, or not an
    /// envelope: JSON text never starts with byte 1).
    UnknownVersion(u8),
    /// Flags bits other than the three defined ones are set.
    UnknownFlags(u8),
    /// A sequence number of 0 (they start at 1).
    ZeroSeq,
    /// A topic longer than [`MAX_TOPIC_LEN`] (its length).
    TopicTooLong(usize),
    /// A user or session id longer than [`MAX_NAME_LEN`] (its length).
    NameTooLong(Field, usize),
    /// More than [`MAX_IDS`] ids in a list (its count).
    TooManyIds(Field, usize),
    /// A payload longer than the limit (its length, the limit).
    PayloadTooLarge(usize, usize),
    /// A string that is not UTF-8.
    BadUtf8(Field),
    /// Bytes after the payload (how many).
    Trailing(usize),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EnvelopeError::*;
        match self {
            Truncated(field) => write!(f, "envelope truncated in {field:?}"),
            UnknownVersion(v) => write!(f, "unknown envelope version {v}"),
            UnknownFlags(b) => write!(f, "unknown envelope flags {b:#04x}"),
            ZeroSeq => f.write_str("envelope sequence number 0"),
            TopicTooLong(n) => write!(f, "topic of {n} bytes (limit {MAX_TOPIC_LEN})"),
            NameTooLong(field, n) => {
                write!(f, "{field:?} of {n} bytes (limit {MAX_NAME_LEN})")
            }
            TooManyIds(field, n) => write!(f, "{n} ids in {field:?} (limit {MAX_IDS})"),
            PayloadTooLarge(n, limit) => write!(f, "payload of {n} bytes (limit {limit})"),
            BadUtf8(field) => write!(f, "{field:?} is not UTF-8"),
            Trailing(n) => write!(f, "{n} bytes after the envelope's payload"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl<'a> Envelope<'a> {
    /// The envelope of `event` as `origin` publishes it, `seq`-th on its
    /// topic; its session is the event's publisher.
    pub fn from_event(event: &'a Event, origin: Origin, seq: u64, epoch: u64) -> Envelope<'a> {
        Envelope {
            origin,
            seq,
            epoch,
            topic: &event.topic,
            session: event.publisher.as_deref(),
            user: event.user.as_deref(),
            exclude: event.exclude.iter().map(String::as_str).collect(),
            eligible: event
                .eligible
                .as_ref()
                .map(|ids| ids.iter().map(String::as_str).collect()),
            payload: &event.data,
        }
    }

    /// The bus event it carries, the session as its publisher (origin,
    /// seq and epoch stay behind).
    pub fn to_event(&self) -> Event {
        let owned = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect();
        Event {
            topic: self.topic.to_owned(),
            data: self.payload.to_owned(),
            user: self.user.map(str::to_owned),
            exclude: owned(&self.exclude),
            eligible: self.eligible.as_deref().map(owned),
            publisher: self.session.map(str::to_owned),
            position: None,
        }
    }

    /// Whether it is within the limits, with a nonzero seq: what
    /// [`Envelope::encode`] requires.
    pub fn check(&self) -> Result<(), EnvelopeError> {
        if self.seq == 0 {
            return Err(EnvelopeError::ZeroSeq);
        }
        if self.topic.len() > MAX_TOPIC_LEN {
            return Err(EnvelopeError::TopicTooLong(self.topic.len()));
        }
        for (field, name) in [(Field::Session, self.session), (Field::User, self.user)] {
            check_name(field, name.unwrap_or_default())?;
        }
        check_ids(Field::Exclude, &self.exclude)?;
        if let Some(ids) = &self.eligible {
            check_ids(Field::Eligible, ids)?;
        }
        if self.payload.len() > MAX_PAYLOAD {
            return Err(EnvelopeError::PayloadTooLarge(
                self.payload.len(),
                MAX_PAYLOAD,
            ));
        }
        Ok(())
    }

    /// The number of bytes [`Envelope::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let ids = |ids: &[&str]| 2 + ids.iter().map(|s| 2 + s.len()).sum::<usize>();
        HEAD_LEN
            + 2
            + self.topic.len()
            + self.session.map_or(0, |s| 2 + s.len())
            + self.user.map_or(0, |s| 2 + s.len())
            + ids(&self.exclude)
            + self.eligible.as_deref().map_or(0, ids)
            + 4
            + self.payload.len()
    }

    /// Appends the encoding to `out`, or appends nothing and says why it
    /// cannot be sent (see [`Envelope::check`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.check()?;
        out.reserve(self.encoded_len());
        let mut flags = 0;
        for (bit, present) in [
            (HAS_SESSION, self.session.is_some()),
            (HAS_USER, self.user.is_some()),
            (HAS_ELIGIBLE, self.eligible.is_some()),
        ] {
            if present {
                flags |= bit;
            }
        }
        out.extend_from_slice(&[VERSION, flags]);
        out.extend_from_slice(&self.origin.0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        // Every length below was bounded by `check`, so the casts hold.
        let put_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        put_str(out, self.topic);
        for s in [self.session, self.user].into_iter().flatten() {
            put_str(out, s);
        }
        for ids in [Some(&self.exclude), self.eligible.as_ref()]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
            ids.iter().for_each(|s| put_str(out, s));
        }
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(self.payload.as_bytes());
        Ok(())
    }

    /// Decodes one whole envelope (one Redis message), payload up to
    /// [`MAX_PAYLOAD`].
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        Envelope::decode_with_limit(bytes, MAX_PAYLOAD)
    }

    /// Decodes one whole envelope, refusing a payload over `max_payload`
    /// bytes (before looking at it).
    pub fn decode_with_limit(
        bytes: &'a [u8],
        max_payload: usize,
    ) -> Result<Envelope<'a>, EnvelopeError> {
        // The version first, so a newer format is refused as such
        // whatever follows it, however short.
        match bytes.first() {
            Some(&VERSION) => {}
            Some(&v) => return Err(EnvelopeError::UnknownVersion(v)),
            None => return Err(EnvelopeError::Truncated(Field::Head)),
        }
        let mut r = Reader { rest: bytes };
        let head = r.take(HEAD_LEN, Field::Head)?;
        let flags = head[1];
        if flags & !(HAS_SESSION | HAS_USER | HAS_ELIGIBLE) != 0 {
            return Err(EnvelopeError::UnknownFlags(flags));
        }
        let (origin, numbers) = head[2..].split_at(16);
        let (seq, epoch) = numbers.split_at(8);
        let seq = u64::from_be_bytes(seq.try_into().unwrap_or_default());
        if seq == 0 {
            return Err(EnvelopeError::ZeroSeq);
        }
        let topic = r.str(Field::Topic, MAX_TOPIC_LEN)?;
        let session = r.name_if(flags & HAS_SESSION != 0, Field::Session)?;
        let user = r.name_if(flags & HAS_USER != 0, Field::User)?;
        let exclude = r.ids(Field::Exclude)?;
        let eligible = match flags & HAS_ELIGIBLE {
            0 => None,
            _ => Some(r.ids(Field::Eligible)?),
        };
        let len = r.u32(Field::Payload)? as usize;
        if len > max_payload {
            return Err(EnvelopeError::PayloadTooLarge(len, max_payload));
        }
        let payload = utf8(r.take(len, Field::Payload)?, Field::Payload)?;
        if !r.rest.is_empty() {
            return Err(EnvelopeError::Trailing(r.rest.len()));
        }
        Ok(Envelope {
            origin: Origin(origin.try_into().unwrap_or_default()),
            seq,
            epoch: u64::from_be_bytes(epoch.try_into().unwrap_or_default()),
            topic,
            session,
            user,
            exclude,
            eligible,
            payload,
        })
    }
}

impl From<&Envelope<'_>> for Event {
    fn from(envelope: &Envelope<'_>) -> Event {
        envelope.to_event()
    }
}

fn check_name(field: Field, name: &str) -> Result<(), EnvelopeError> {
    match name.len() {
        n if n > MAX_NAME_LEN => Err(EnvelopeError::NameTooLong(field, n)),
        _ => Ok(()),
    }
}

fn check_ids(field: Field, ids: &[&str]) -> Result<(), EnvelopeError> {
    if ids.len() > MAX_IDS {
        return Err(EnvelopeError::TooManyIds(field, ids.len()));
    }
    ids.iter().try_for_each(|id| check_name(field, id))
}

fn utf8(bytes: &[u8], field: Field) -> Result<&str, EnvelopeError> {
    std::str::from_utf8(bytes).map_err(|_| EnvelopeError::BadUtf8(field))
}

/// The unread rest of the input. Every read checks its length against
/// what is left before slicing, so nothing here can panic.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], EnvelopeError> {
        if n > self.rest.len() {
            return Err(EnvelopeError::Truncated(field));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn u16(&mut self, field: Field) -> Result<usize, EnvelopeError> {
        let b = self.take(2, field)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self, field: Field) -> Result<u32, EnvelopeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16-prefixed string of at most `max` bytes.
    fn str(&mut self, field: Field, max: usize) -> Result<&'a str, EnvelopeError> {
        let len = self.u16(field)?;
        if len > max {
            return Err(match field {
                Field::Topic => EnvelopeError::TopicTooLong(len),
                _ => EnvelopeError::NameTooLong(field, len),
            });
        }
        utf8(self.take(len, field)?, field)
    }

    fn name_if(&mut self, present: bool, field: Field) -> Result<Option<&'a str>, EnvelopeError> {
        match present {
            true => self.str(field, MAX_NAME_LEN).map(Some),
            false => Ok(None),
        }
    }

    /// A u16 count, then as many u16-prefixed ids. Each id takes at least
    /// its 2-byte prefix, so a count the input cannot hold is refused
    /// before anything is allocated for it.
    fn ids(&mut self, field: Field) -> Result<Vec<&'a str>, EnvelopeError> {
        let count = self.u16(field)?;
        if count > MAX_IDS {
            return Err(EnvelopeError::TooManyIds(field, count));
        }
        if count * 2 > self.rest.len() {
            return Err(EnvelopeError::Truncated(field));
        }
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(self.str(field, MAX_NAME_LEN)?);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests;
