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
}

/// Live messages held during one repair, at most (the oldest go first;
/// the next repair finds them in the stream).
pub const MAX_HELD: usize = 10_000;
/// Entries asked for per `XRANGE`.
pub const REPAIR_BATCH: usize = 1_000;
