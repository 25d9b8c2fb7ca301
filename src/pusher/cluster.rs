//! What processes serving the same Pusher apps keep in Redis (with the
//! bus, `docs/pusher.md`, "Across processes"), sans-IO: the key names, the
//! Lua scripts that change or read them atomically, and the decoding of
//! the scripts' replies. The application sends the commands on the bus's
//! Redis connection and hands the replies back here.
//!
//! Per app `A` and channel `C`:
//! - `pusher-subs:A:C`, a hash: each process's number of subscribers.
//! - `pusher-channels:A`, a set: the channels with subscribers anywhere.
//! - `pusher-vacating:A:C`: the process whose last subscriber left, while
//!   its `channel_vacated` webhook waits (a subscriber arriving anywhere
//!   meanwhile deletes it, and neither webhook is sent).
//! - `pusher-cache:A:C`: a cache channel's last event.
//! - `pusher-conns:A`, a hash: each process's number of connections to
//!   the app (for its `max-connections`).
//! - `pusher-presence:A:C`, a hash of the presence members, a field
//!   `{process} {user}` each (kept by the application).
//!
//! Each process refreshes `pusher-alive:{process}`; the scripts count the
//! fields of live processes only and delete those of dead ones, so a
//! killed process's subscribers stop counting once its key expires.

use crate::clients::resp::Reply;

/// Where a process's liveness key starts (`pusher-alive:{process}`).
pub const ALIVE_PREFIX: &str = "pusher-alive:";

/// The hash of the number of subscribers of each process on `channel`.
pub fn subs_key(app: &str, channel: &str) -> String {
    format!("pusher-subs:{app}:{channel}")
}

/// The set of the channels of `app` with subscribers anywhere.
pub fn channels_key(app: &str) -> String {
    format!("pusher-channels:{app}")
}

/// The key held while `channel`'s vacating waits.
pub fn vacating_key(app: &str, channel: &str) -> String {
    format!("pusher-vacating:{app}:{channel}")
}

/// A cache channel's last event.
pub fn cache_key(app: &str, channel: &str) -> String {
    format!("pusher-cache:{app}:{channel}")
}

/// The hash of each process's number of connections to `app`.
pub fn conns_key(app: &str) -> String {
    format!("pusher-conns:{app}")
}

/// The presence members of `channel`.
pub fn members_key(app: &str, channel: &str) -> String {
    format!("pusher-presence:{app}:{channel}")
}

/// Sets this process's number of subscribers of a channel and says what
/// that did to the channel cluster-wide.
///
/// KEYS: subs hash, channel set, vacating key. ARGV: process, count,
/// channel name, alive prefix, milliseconds the vacating key lives (0: no
/// webhook waits for it). Replies [`Count`] as 0, 1 or 2.
pub const COUNT: &str = r"
local alive = {}
local function live(p)
  if alive[p] == nil then alive[p] = redis.call('EXISTS', ARGV[4] .. p) == 1 end
  return alive[p]
end
local others, mine = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local p, n = all[i], tonumber(all[i + 1]) or 0
  if p == ARGV[1] then
    mine = n
  elseif live(p) then
    others = others + n
  else
    redis.call('HDEL', KEYS[1], p)
  end
end
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], n)
  redis.call('SADD', KEYS[2], ARGV[3])
  if mine == 0 and others == 0 then
    if redis.call('DEL', KEYS[3]) == 1 then return 0 end
    return 1
  end
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if others == 0 then
  redis.call('SREM', KEYS[2], ARGV[3])
  if mine > 0 and tonumber(ARGV[5]) > 0 then
    redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
    return 2
  end
end
return 0
";

/// Sets this process's number of connections to an app and sums the
/// other live processes'. KEYS: conns hash. ARGV: process, count, alive
/// prefix. Replies the others' sum.
pub const CONNS: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local others = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[3] .. all[i]) == 1 then
      others = others + (tonumber(all[i + 1]) or 0)
    else
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
return others
";

/// What [`COUNT`] did to the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Nothing cluster-wide: others have subscribers too, or a vacating
    /// that was waiting is called off.
    Nothing,
    /// The channel has its first subscriber in the cluster:
    /// `channel_occupied`.
    Occupied,
    /// The channel has no subscriber left in the cluster: this process
    /// holds its vacating; `channel_vacated` after [`CONFIRM`].
    Vacating,
}

/// After the vacating wait: whether this process is still the one
/// vacating the channel and nobody subscribed meanwhile (then it deletes
/// the vacating key). KEYS: subs hash, vacating key. ARGV: process, alive
/// prefix. Replies 1 (send `channel_vacated`) or 0.
pub const CONFIRM: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if (tonumber(all[i + 1]) or 0) > 0 and redis.call('EXISTS', ARGV[2] .. all[i]) == 1 then
    return 0
  end
end
return 1
";

/// One channel's subscribers and presence users, over live processes.
/// KEYS: subs hash, members hash. ARGV: alive prefix. Replies
/// `[subscribers, users]`.
pub const INFO: &str = r"
local alive = {}
local function live(p)
  if alive[p] == nil then alive[p] = redis.call('EXISTS', ARGV[1] .. p) == 1 end
  return alive[p]
end
local subs = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if live(all[i]) then subs = subs + (tonumber(all[i + 1]) or 0) end
end
local seen, users = {}, 0
for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
  local sp = string.find(f, ' ', 1, true)
  if sp and live(string.sub(f, 1, sp - 1)) then
    local u = string.sub(f, sp + 1)
    if not seen[u] then seen[u] = true; users = users + 1 end
  end
end
return {subs, users}
";

/// The channels of an app with subscribers on live processes, whose names
/// start with a prefix, with their presence users; channels left only by
/// dead processes are dropped from the set. KEYS: channel set. ARGV:
/// subs key head (`pusher-subs:A:`), members key head
/// (`pusher-presence:A:`), name prefix, alive prefix. Replies
/// `[name, users, name, users, ...]`.
pub const LIST: &str = r"
local alive = {}
local function live(p)
  if alive[p] == nil then alive[p] = redis.call('EXISTS', ARGV[4] .. p) == 1 end
  return alive[p]
end
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(name, 1, #ARGV[3]) == ARGV[3] then
    local subs = 0
    local all = redis.call('HGETALL', ARGV[1] .. name)
    for i = 1, #all, 2 do
      if live(all[i]) then subs = subs + (tonumber(all[i + 1]) or 0) end
    end
    if subs == 0 then
      redis.call('SREM', KEYS[1], name)
    else
      local seen, users = {}, 0
      for _, f in ipairs(redis.call('HKEYS', ARGV[2] .. name)) do
        local sp = string.find(f, ' ', 1, true)
        if sp and live(string.sub(f, 1, sp - 1)) then
          local u = string.sub(f, sp + 1)
          if not seen[u] then seen[u] = true; users = users + 1 end
        end
      end
      out[#out + 1] = name
      out[#out + 1] = users
    end
  end
end
return out
";

/// An error reply, or one of another shape than expected.
fn unexpected(what: &str, reply: &Reply) -> String {
    match reply {
        Reply::Error(e) => format!("{what}: Redis answered {e}"),
        other => format!("{what}: an unexpected reply {other:?}"),
    }
}

/// Decodes the reply of [`COUNT`].
pub fn count(reply: &Reply) -> Result<Count, String> {
    match reply {
        Reply::Integer(0) => Ok(Count::Nothing),
        Reply::Integer(1) => Ok(Count::Occupied),
        Reply::Integer(2) => Ok(Count::Vacating),
        other => Err(unexpected("the subscriber count", other)),
    }
}

/// Decodes the reply of [`CONFIRM`]: whether to send `channel_vacated`.
pub fn confirmed(reply: &Reply) -> Result<bool, String> {
    match reply {
        Reply::Integer(n @ (0 | 1)) => Ok(*n == 1),
        other => Err(unexpected("the vacating check", other)),
    }
}

fn non_negative(reply: &Reply) -> Option<u64> {
    match reply {
        Reply::Integer(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// Decodes the reply of [`CONNS`]: the other processes' connections.
pub fn others(reply: &Reply) -> Result<u64, String> {
    non_negative(reply).ok_or_else(|| unexpected("the connection count", reply))
}

/// Decodes the reply of [`INFO`]: (subscribers, users).
pub fn info(reply: &Reply) -> Result<(u64, u64), String> {
    if let Reply::Array(Some(items)) = reply
        && let [subs, users] = &items[..]
        && let (Some(s), Some(u)) = (non_negative(subs), non_negative(users))
    {
        return Ok((s, u));
    }
    Err(unexpected("the channel's counts", reply))
}

/// Decodes the reply of [`LIST`]: (channel, users) pairs.
pub fn list(reply: &Reply) -> Result<Vec<(String, u64)>, String> {
    let Reply::Array(Some(items)) = reply else {
        return Err(unexpected("the channel list", reply));
    };
    if items.len() % 2 != 0 {
        return Err(unexpected("the channel list", reply));
    }
    items
        .chunks(2)
        .map(|pair| match pair {
            [Reply::Bulk(Some(name)), users] => {
                let name = String::from_utf8(name.clone())
                    .map_err(|_| "the channel list: a name that is not UTF-8".to_owned())?;
                let users =
                    non_negative(users).ok_or_else(|| unexpected("the channel list", reply))?;
                Ok((name, users))
            }
            _ => Err(unexpected("the channel list", reply)),
        })
        .collect()
}

/// Decodes the reply of `GET` of a [`cache_key`]: the event, if any.
pub fn cached(reply: &Reply) -> Result<Option<String>, String> {
    match reply {
        Reply::Bulk(None) => Ok(None),
        Reply::Bulk(Some(text)) => String::from_utf8(text.clone())
            .map(Some)
            .map_err(|_| "the cached event is not UTF-8".to_owned()),
        other => Err(unexpected("the cached event", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn replies_decode_or_say_what_was_wrong() {
        assert_eq!(count(&Reply::Integer(1)), Ok(Count::Occupied));
        assert_eq!(count(&Reply::Integer(2)), Ok(Count::Vacating));
        assert_eq!(count(&Reply::Integer(0)), Ok(Count::Nothing));
        let e = count(&Reply::Error("NOSCRIPT x".into())).unwrap_err();
        assert!(e.contains("Redis answered NOSCRIPT x"), "{e}");
        assert!(count(&Reply::Integer(3)).is_err());
        assert_eq!(confirmed(&Reply::Integer(1)), Ok(true));
        assert_eq!(confirmed(&Reply::Integer(0)), Ok(false));
        assert!(confirmed(&bulk("1")).is_err());
        let pair = Reply::Array(Some(vec![Reply::Integer(3), Reply::Integer(2)]));
        assert_eq!(info(&pair), Ok((3, 2)));
        let negative = Reply::Array(Some(vec![Reply::Integer(-1), Reply::Integer(2)]));
        assert!(info(&negative).is_err());
        assert!(info(&Reply::Array(Some(vec![Reply::Integer(1)]))).is_err());
        let l = Reply::Array(Some(vec![
            bulk("a"),
            Reply::Integer(0),
            bulk("presence-b"),
            Reply::Integer(4),
        ]));
        assert_eq!(
            list(&l),
            Ok(vec![("a".into(), 0), ("presence-b".into(), 4)])
        );
        assert!(list(&Reply::Array(Some(vec![bulk("a")]))).is_err());
        assert!(
            list(&Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Integer(1)
            ])))
            .is_err()
        );
        assert!(list(&Reply::Array(None)).is_err());
        assert_eq!(cached(&Reply::Bulk(None)), Ok(None));
        assert_eq!(cached(&bulk("{}")), Ok(Some("{}".into())));
        assert!(cached(&Reply::Bulk(Some(vec![0xff]))).is_err());
        assert!(cached(&Reply::Integer(1)).is_err());
        assert_eq!(others(&Reply::Integer(7)), Ok(7));
        assert!(others(&Reply::Integer(-7)).is_err());
        assert!(others(&Reply::Error("ERR".into())).is_err());
    }

    #[test]
    fn keys_name_the_app_and_channel() {
        assert_eq!(subs_key("1", "a"), "pusher-subs:1:a");
        assert_eq!(channels_key("1"), "pusher-channels:1");
        assert_eq!(conns_key("1"), "pusher-conns:1");
        assert_eq!(vacating_key("1", "a"), "pusher-vacating:1:a");
        assert_eq!(cache_key("1", "cache-a"), "pusher-cache:1:cache-a");
        assert_eq!(
            members_key("1", "presence-a"),
            "pusher-presence:1:presence-a"
        );
        // The list script finds a channel's hashes by these heads.
        assert!(subs_key("1", "a").starts_with(&subs_key("1", "")));
        assert!(members_key("1", "a").starts_with(&members_key("1", "")));
    }
}
