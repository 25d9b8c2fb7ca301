//! What processes serving the same Pusher apps keep in Redis (with the
//! bus, `docs/pusher.md`, "Across processes"), sans-IO: the key names, the
//! Lua scripts that change or read them atomically, and the decoding of
//! the scripts' replies. The application sends the commands on the bus's
//! Redis connection and hands the replies back here.
//!
//! Per app `A` and channel `C`, each key after the bus's prefix (`P`,
//! `--bus-prefix`, `sprocket:` by default):
//! - `Ppusher-subs:A:C`, a hash: each process's number of subscribers.
//! - `Ppusher-channels:A`, a set: the channels with subscribers anywhere.
//! - `Ppusher-vacating:A:C`: the process whose last subscriber left, while
//!   its `channel_vacated` webhook waits (a subscriber arriving anywhere
//!   meanwhile deletes it, and neither webhook is sent).
//! - `Ppusher-cache:A:C`: a cache channel's last event.
//! - `Ppusher-conns:A`, a hash: each process's number of connections to
//!   the app (for its `max-connections`).
//! - `Ppusher-presence:A:C`, a hash of the presence members, a field
//!   `{process} {user}` each (kept by the application).
//!
//! Each process refreshes `Ppusher-alive:{process}`; the scripts count the
//! fields of live processes only and delete those of dead ones, so a
//! killed process's subscribers stop counting once its key expires.

use crate::clients::resp::Reply;

/// The names of the keys, under a prefix, and the commands on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys starting with `prefix` (the bus's, so that deployments
    /// sharing a Redis server keep apart).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The hash of the number of subscribers of each process on `channel`.
    pub fn subs(&self, app: &str, channel: &str) -> String {
        format!("{}pusher-subs:{app}:{channel}", self.prefix)
    }

    /// The set of the channels of `app` with subscribers anywhere.
    pub fn channels(&self, app: &str) -> String {
        format!("{}pusher-channels:{app}", self.prefix)
    }

    /// The key held while `channel`'s vacating waits.
    pub fn vacating(&self, app: &str, channel: &str) -> String {
        format!("{}pusher-vacating:{app}:{channel}", self.prefix)
    }

    /// A cache channel's last event.
    pub fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}pusher-cache:{app}:{channel}", self.prefix)
    }

    /// The hash of each process's number of connections to `app`.
    pub fn conns(&self, app: &str) -> String {
        format!("{}pusher-conns:{app}", self.prefix)
    }

    /// The presence members of `channel`: a field per process and user
    /// (`{process} {user}`), the user's info as value.
    pub fn members(&self, app: &str, channel: &str) -> String {
        format!("{}pusher-presence:{app}:{channel}", self.prefix)
    }

    /// Where the liveness keys start.
    pub fn alive_prefix(&self) -> String {
        format!("{}pusher-alive:", self.prefix)
    }

    /// The liveness key of `process`.
    pub fn alive(&self, process: &str) -> String {
        format!("{}pusher-alive:{process}", self.prefix)
    }
}

/// What every script starts with: `live(p)`, whether process `p`'s
/// liveness key exists (`ARGV[1]` is the key's prefix); `others(key, skip)`,
/// the sum of a hash's counts over live processes but `skip`, and
/// `skip`'s own, deleting dead processes' fields; `users(key)`, the
/// distinct users of a presence hash on live processes.
macro_rules! prelude {
    () => {
        r"
local alive = {}
local function live(p)
  if alive[p] == nil then alive[p] = redis.call('EXISTS', ARGV[1] .. p) == 1 end
  return alive[p]
end
local function others(key, skip)
  local sum, mine = 0, 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local p, n = all[i], tonumber(all[i + 1]) or 0
    if p == skip then
      mine = n
    elseif live(p) then
      sum = sum + n
    else
      redis.call('HDEL', key, p)
    end
  end
  return sum, mine
end
local function users(key)
  local seen, n = {}, 0
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local sp = string.find(f, ' ', 1, true)
    if sp and live(string.sub(f, 1, sp - 1)) then
      local u = string.sub(f, sp + 1)
      if not seen[u] then seen[u] = true; n = n + 1 end
    end
  end
  return n
end
"
    };
}

/// Sets this process's number of subscribers of a channel and says what
/// that did to the channel cluster-wide. KEYS: subs hash, channel set,
/// vacating key. ARGV: alive prefix, process, count, channel name,
/// milliseconds the vacating key lives (0: no webhook waits for it).
/// Replies [`Count`] as 0, 1 or 2.
const COUNT: &str = concat!(
    prelude!(),
    r"
local elsewhere, mine = others(KEYS[1], ARGV[2])
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('HSET', KEYS[1], ARGV[2], n)
  redis.call('SADD', KEYS[2], ARGV[4])
  if mine == 0 and elsewhere == 0 then
    if redis.call('DEL', KEYS[3]) == 1 then return 0 end
    return 1
  end
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
if elsewhere == 0 then
  redis.call('SREM', KEYS[2], ARGV[4])
  if mine > 0 and tonumber(ARGV[5]) > 0 then
    redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[5])
    return 2
  end
end
return 0
"
);

/// What [`Keys::set_count`] did to the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Nothing cluster-wide: others have subscribers too, or a vacating
    /// that was waiting is called off.
    Nothing,
    /// The channel has its first subscriber in the cluster:
    /// `channel_occupied`.
    Occupied,
    /// The channel has no subscriber left in the cluster: this process
    /// holds its vacating; `channel_vacated` after
    /// [`Keys::confirm_vacated`].
    Vacating,
}

/// After the vacating wait: whether this process is still the one
/// vacating the channel and nobody subscribed meanwhile (then it deletes
/// the vacating key). KEYS: subs hash, vacating key. ARGV: alive prefix,
/// process. Replies 1 (send `channel_vacated`) or 0.
const CONFIRM: &str = concat!(
    prelude!(),
    r"
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
if others(KEYS[1], '') > 0 then return 0 end
return 1
"
);

/// One channel's subscribers and presence users, over live processes.
/// KEYS: subs hash, members hash. ARGV: alive prefix. Replies
/// `[subscribers, users]`.
const INFO: &str = concat!(
    prelude!(),
    r"
return {(others(KEYS[1], '')), users(KEYS[2])}
"
);

/// The channels of an app with subscribers on live processes, whose names
/// start with a prefix, with their presence users; channels left only by
/// dead processes are dropped from the set. KEYS: channel set. ARGV:
/// alive prefix, subs key head (`pusher-subs:A:`), members key head
/// (`pusher-presence:A:`), name prefix. Replies
/// `[name, users, name, users, ...]`.
const LIST: &str = concat!(
    prelude!(),
    r"
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(name, 1, #ARGV[4]) == ARGV[4] then
    if others(ARGV[2] .. name, '') == 0 then
      redis.call('SREM', KEYS[1], name)
    else
      out[#out + 1] = name
      out[#out + 1] = users(ARGV[3] .. name)
    end
  end
end
return out
"
);

/// Sets this process's number of connections to an app and sums the
/// other live processes'. KEYS: conns hash. ARGV: alive prefix, process,
/// count. Replies the others' sum.
const CONNS: &str = concat!(
    prelude!(),
    r"
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return (others(KEYS[1], ARGV[2]))
"
);

/// A Redis command to send: its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command(Vec<Vec<u8>>);

impl Command {
    fn new(parts: &[&[u8]]) -> Command {
        Command(parts.iter().map(|p| p.to_vec()).collect())
    }

    /// The arguments, as the Redis client takes them.
    pub fn args(&self) -> Vec<&[u8]> {
        self.0.iter().map(Vec::as_slice).collect()
    }
}

impl Keys {
    /// `EVAL script numkeys keys... alive-prefix args...`.
    fn eval(&self, script: &str, keys: &[&str], args: &[&str]) -> Command {
        let (numkeys, alive) = (keys.len().to_string(), self.alive_prefix());
        let mut parts: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
        parts.extend(keys.iter().map(|k| k.as_bytes()));
        parts.push(alive.as_bytes());
        parts.extend(args.iter().map(|a| a.as_bytes()));
        Command::new(&parts)
    }

    /// Sets `process`'s `count` of subscribers of `channel` of `app`;
    /// with `wait_ms` > 0 a vacating it causes is held that long. Its
    /// reply: [`count`].
    pub fn set_count(
        &self,
        app: &str,
        channel: &str,
        process: &str,
        count: usize,
        wait_ms: u128,
    ) -> Command {
        let keys = [
            self.subs(app, channel),
            self.channels(app),
            self.vacating(app, channel),
        ];
        let (count, wait) = (count.to_string(), wait_ms.to_string());
        self.eval(
            COUNT,
            &[&keys[0], &keys[1], &keys[2]],
            &[process, &count, channel, &wait],
        )
    }

    /// Whether `process` still vacates `channel` of `app`. Its reply:
    /// [`confirmed`].
    pub fn confirm_vacated(&self, app: &str, channel: &str, process: &str) -> Command {
        let keys = [self.subs(app, channel), self.vacating(app, channel)];
        self.eval(CONFIRM, &[&keys[0], &keys[1]], &[process])
    }

    /// The cluster's subscribers and users of `channel` of `app`. Its
    /// reply: [`info`].
    pub fn channel_counts(&self, app: &str, channel: &str) -> Command {
        let keys = [self.subs(app, channel), self.members(app, channel)];
        self.eval(INFO, &[&keys[0], &keys[1]], &[])
    }

    /// The cluster's channels of `app` starting with `prefix`. Its reply:
    /// [`list`].
    pub fn channel_list(&self, app: &str, prefix: &str) -> Command {
        let (set, subs, members) = (
            self.channels(app),
            self.subs(app, ""),
            self.members(app, ""),
        );
        self.eval(LIST, &[&set], &[&subs, &members, prefix])
    }

    /// Sets `process`'s `count` of connections to `app`. Its reply:
    /// [`others`].
    pub fn set_connections(&self, app: &str, process: &str, count: usize) -> Command {
        let count = count.to_string();
        self.eval(CONNS, &[&self.conns(app)], &[process, &count])
    }

    /// Keeps `event` as the last of the cache channel `channel` of `app`
    /// for `ttl_secs`.
    pub fn keep_cached(&self, app: &str, channel: &str, event: &str, ttl_secs: u64) -> Command {
        let (key, ttl) = (self.cache(app, channel), ttl_secs.to_string());
        Command::new(&[
            b"SET",
            key.as_bytes(),
            event.as_bytes(),
            b"EX",
            ttl.as_bytes(),
        ])
    }

    /// Reads the presence members of `channel` of `app` (`HGETALL`: field
    /// `{process} {user}`, value the user's info).
    pub fn read_members(&self, app: &str, channel: &str) -> Command {
        Command::new(&[b"HGETALL", self.members(app, channel).as_bytes()])
    }

    /// Reads the last event of the cache channel `channel` of `app`. Its
    /// reply: [`cached`].
    pub fn read_cached(&self, app: &str, channel: &str) -> Command {
        Command::new(&[b"GET", self.cache(app, channel).as_bytes()])
    }
}

/// An error reply, or one of another shape than expected.
fn unexpected(what: &str, reply: &Reply) -> String {
    match reply {
        Reply::Error(e) => format!("{what}: Redis answered {e}"),
        other => format!("{what}: an unexpected reply {other:?}"),
    }
}

/// Decodes the reply of [`Keys::set_count`].
pub fn count(reply: &Reply) -> Result<Count, String> {
    match reply {
        Reply::Integer(0) => Ok(Count::Nothing),
        Reply::Integer(1) => Ok(Count::Occupied),
        Reply::Integer(2) => Ok(Count::Vacating),
        other => Err(unexpected("the subscriber count", other)),
    }
}

/// Decodes the reply of [`Keys::confirm_vacated`]: whether to send
/// `channel_vacated`.
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

/// Decodes the reply of [`Keys::set_connections`]: the other processes'
/// connections.
pub fn others(reply: &Reply) -> Result<u64, String> {
    non_negative(reply).ok_or_else(|| unexpected("the connection count", reply))
}

/// Decodes the reply of [`Keys::channel_counts`]: (subscribers, users).
pub fn info(reply: &Reply) -> Result<(u64, u64), String> {
    if let Reply::Array(Some(items)) = reply
        && let [subs, users] = &items[..]
        && let (Some(s), Some(u)) = (non_negative(subs), non_negative(users))
    {
        return Ok((s, u));
    }
    Err(unexpected("the channel's counts", reply))
}

/// Decodes the reply of [`Keys::channel_list`]: (channel, users) pairs.
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

/// Decodes the reply of [`Keys::read_cached`]: the event, if any.
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
    fn commands_put_keys_then_the_alive_prefix_then_arguments() {
        let text = |c: &Command| -> Vec<String> {
            c.args()
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        };
        let k = Keys::new("p:");
        let c = text(&k.set_count("1", "room", "p9", 3, 33_000));
        assert_eq!(c[0], "EVAL");
        assert!(c[1].contains("local function live(p)") && c[1].contains("'SADD'"));
        assert_eq!(
            c[2..],
            [
                "3",
                "p:pusher-subs:1:room",
                "p:pusher-channels:1",
                "p:pusher-vacating:1:room",
                "p:pusher-alive:",
                "p9",
                "3",
                "room",
                "33000"
            ]
        );
        let c = text(&k.channel_list("1", "presence-"));
        assert_eq!(
            c[2..],
            [
                "1",
                "p:pusher-channels:1",
                "p:pusher-alive:",
                "p:pusher-subs:1:",
                "p:pusher-presence:1:",
                "presence-"
            ]
        );
        assert_eq!(text(&k.channel_counts("1", "a"))[2], "2");
        assert_eq!(
            text(&k.confirm_vacated("1", "a", "p9"))[5..],
            ["p:pusher-alive:", "p9"]
        );
        assert_eq!(
            text(&k.set_connections("1", "p9", 4))[3..],
            ["p:pusher-conns:1", "p:pusher-alive:", "p9", "4"]
        );
        assert_eq!(
            text(&k.keep_cached("1", "cache-a", "{}", 1800)),
            ["SET", "p:pusher-cache:1:cache-a", "{}", "EX", "1800"]
        );
        assert_eq!(
            text(&k.read_members("1", "presence-a")),
            ["HGETALL", "p:pusher-presence:1:presence-a"]
        );
        assert_eq!(
            text(&k.read_cached("1", "cache-a")),
            ["GET", "p:pusher-cache:1:cache-a"]
        );
    }

    #[test]
    fn keys_name_the_app_and_channel_under_the_prefix() {
        let k = Keys::new("");
        assert_eq!(k.subs("1", "a"), "pusher-subs:1:a");
        assert_eq!(k.channels("1"), "pusher-channels:1");
        assert_eq!(k.conns("1"), "pusher-conns:1");
        assert_eq!(k.vacating("1", "a"), "pusher-vacating:1:a");
        assert_eq!(k.cache("1", "cache-a"), "pusher-cache:1:cache-a");
        assert_eq!(k.members("1", "presence-a"), "pusher-presence:1:presence-a");
        let k = Keys::new("sprocket:");
        assert_eq!(k.alive("p9"), "sprocket:pusher-alive:p9");
        assert!(k.alive("p9").starts_with(&k.alive_prefix()));
        // The list script finds a channel's hashes by these heads.
        assert!(k.subs("1", "a").starts_with(&k.subs("1", "")));
        assert!(k.members("1", "a").starts_with(&k.members("1", "")));
    }
}
