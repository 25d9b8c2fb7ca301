//! Durable topics: what the Redis bus keeps in a stream per topic, and how
//! a process repairs what it missed from it (`docs/scaling.md`, "Durable
//! topics").
//!
//! A durable publish runs [`PUBLISH_SCRIPT`] (one `EVAL`, so that the
//! stream's order is the channel's order): it appends the envelope to the
//! stream `{prefix}stream:{topic}` (trimmed to about `MAXLEN` entries)
//! with the stream's epoch, and publishes `"{epoch} {id} "` followed by
//! the envelope on the topic's channel. The epoch is a random name the
//! first publisher of a stream gives it and every later entry repeats: a
//! stream that was lost (a Redis restart without persistence, a deleted
//! key) comes back under a new epoch, so a receiver can tell "nothing
//! since" from "everything since is gone".

/// Appends to the stream and publishes, atomically. KEYS: stream, channel;
/// ARGV: maxlen, envelope, a fresh epoch for a new stream. Returns the
/// entry's id.
pub const PUBLISH_SCRIPT: &str = "\
local epoch = ARGV[3]
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'p' then epoch = f[i + 1] end
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', epoch, 'e', ARGV[2])
redis.call('PUBLISH', KEYS[2], epoch .. ' ' .. id .. ' ' .. ARGV[2])
return id
";

/// A stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    /// Parses `1700000000000-3`.
    pub fn parse(s: &[u8]) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = s.split_once('-')?;
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// Longest epoch accepted, in bytes.
pub const MAX_EPOCH: usize = 64;

/// Splits a durable channel message, `"{epoch} {id} {envelope}"`.
pub fn split_message(payload: &[u8]) -> Option<(&str, StreamId, &[u8])> {
    let sp = payload.iter().position(|&b| b == b' ')?;
    let (epoch, rest) = (&payload[..sp], &payload[sp + 1..]);
    let sp = rest.iter().position(|&b| b == b' ')?;
    let (id, envelope) = (&rest[..sp], &rest[sp + 1..]);
    let epoch = std::str::from_utf8(epoch).ok()?;
    if epoch.is_empty() || epoch.len() > MAX_EPOCH {
        return None;
    }
    Some((epoch, StreamId::parse(id)?, envelope))
}

/// One stream entry as `XRANGE` returns it: its id, epoch and envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's id.
    pub id: StreamId,
    /// Its `p` field.
    pub epoch: String,
    /// Its `e` field.
    pub envelope: Vec<u8>,
}

impl Entry {
    /// An `XRANGE` reply's entries; `None` if it is not one, or an entry
    /// lacks a field.
    pub fn from_reply(reply: crate::clients::resp::Reply) -> Option<Vec<Entry>> {
        use crate::clients::resp::Reply::{Array, Bulk};
        let Array(Some(items)) = reply else {
            return None;
        };
        items
            .into_iter()
            .map(|item| {
                let Array(Some(parts)) = item else {
                    return None;
                };
                let [Bulk(Some(id)), Array(Some(fields))] = <[_; 2]>::try_from(parts).ok()? else {
                    return None;
                };
                let (mut epoch, mut envelope) = (None, None);
                let mut fields = fields.into_iter();
                while let (Some(Bulk(Some(k))), Some(Bulk(Some(v)))) =
                    (fields.next(), fields.next())
                {
                    match k.as_slice() {
                        b"p" => epoch = String::from_utf8(v).ok(),
                        b"e" => envelope = Some(v),
                        _ => {}
                    }
                }
                Some(Entry {
                    id: StreamId::parse(&id)?,
                    epoch: epoch.filter(|e| !e.is_empty() && e.len() <= MAX_EPOCH)?,
                    envelope: envelope?,
                })
            })
            .collect()
    }
}

/// Where a receiver stands in a durable topic's stream, and what waits
/// while it repairs.
#[derive(Debug, Default)]
pub(super) struct Position {
    /// The epoch and id of the last entry taken (delivered, or dropped as
    /// its own or a repeat); `None` until the first.
    pub at: Option<(String, StreamId)>,
    /// A repair is out: live messages wait here, in order.
    pub repairing: Option<Vec<(String, StreamId, Vec<u8>)>>,
    /// Where the stream stood when this process began to hear the topic
    /// is known (`at` was set from it, or the stream was empty then).
    pub located: bool,
    /// Asked where the stream stands.
    pub locating: bool,
    /// The subscription was down: read the stream back once Redis
    /// confirms the new one (not before, or what is published in between
    /// would be in neither the stream read nor the live messages).
    pub stale: bool,
    /// Read the stream back again once the repair out now is done (it may
    /// have run before an outage that followed).
    pub repeat: bool,
    /// Redis confirmed the current subscription to the topic's channel.
    pub confirmed: bool,
    /// Epochs this position moved away from (streams that are gone): a
    /// late message of one is announced, never taken.
    pub left: Vec<String>,
    /// The position at the last read of the stream, if that read found
    /// nothing after it: a gap seen with no progress since is for good
    /// (reading again would find the same, and again, for ever).
    pub settled: Option<(String, StreamId)>,
    /// Apps' history reads waiting for that confirmation (a read before
    /// it could miss what is published before the subscription starts).
    pub waiting: Vec<super::Command>,
}

/// Reads the entries after `ARGV[1]` (an exclusive `XRANGE` start, or
/// `-`), at most `ARGV[2]`, with the stream's first entry, so that a reader
/// can tell whether it was trimmed past its position. KEYS: the stream.
pub const HISTORY_SCRIPT: &str = "\
return {redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1), redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])}
";

/// Most events one history answer carries.
pub const MAX_HISTORY: usize = 1_000;

/// Parses a position, `{epoch}/{id}`.
pub fn parse_position(p: &str) -> Option<(&str, StreamId)> {
    let (epoch, id) = p.rsplit_once('/')?;
    if epoch.is_empty() || epoch.len() > MAX_EPOCH {
        return None;
    }
    Some((epoch, StreamId::parse(id.as_bytes())?))
}

/// The answer to [`HISTORY_SCRIPT`] for a reader at `after` (`None`:
/// from the start): the events of `topic`, decoded, and whether they are
/// all that followed. `None` if the reply is not the script's.
pub fn history(
    topic: &str,
    after: Option<(&str, StreamId)>,
    reply: crate::clients::resp::Reply,
    max_payload: usize,
) -> Option<super::super::History> {
    use crate::clients::resp::Reply::Array;
    let Array(Some(parts)) = reply else {
        return None;
    };
    let [first, rest] = <[_; 2]>::try_from(parts).ok()?;
    let first = Entry::from_reply(first)?;
    let entries = Entry::from_reply(rest)?;
    let mut complete = entries.len() < MAX_HISTORY;
    if let (Some((epoch, at)), Some(first)) = (after, first.first()) {
        // A new epoch: all of the old stream is gone. Trimmed: what was
        // between the position and the first entry left is gone.
        if first.epoch != epoch || first.id > at {
            complete = false;
        }
    }
    let mut position = after.map(|(e, id)| format!("{e}/{id}"));
    let mut events = Vec::with_capacity(entries.len());
    for e in entries {
        position = Some(format!("{}/{}", e.epoch, e.id));
        match super::super::Envelope::decode_with_limit(&e.envelope, max_payload) {
            Ok(env) if env.topic == topic => {
                let mut event = env.to_event();
                event.position = position.clone();
                events.push(event);
            }
            _ => complete = false,
        }
    }
    if after.is_none() && position.is_none() {
        position = first.first().map(|e| format!("{}/{}", e.epoch, e.id));
    }
    Some(super::super::History {
        events,
        position,
        complete,
    })
}

/// Live messages held during one repair, at most (the oldest go first;
/// the next repair finds them in the stream).
pub const MAX_HELD: usize = 10_000;
/// Entries asked for per `XRANGE`.
pub const REPAIR_BATCH: usize = 1_000;
