//! The Pusher Channels protocol (version 7) as an application: what
//! Laravel Echo and pusher-js connect to at `/app/{key}`, and the HTTP API
//! the server SDKs call at `/apps/{id}/...` on the same port
//! (`docs/pusher.md`).
//!
//! Channels are bus topics (`pusher/{app id}/{channel}`): an event from the
//! HTTP API or a client event is published once and every connection
//! subscribed to the channel gets it through the bus, as GRIP channels do.
//! The codecs are [`crate::pusher`]'s; this module keeps the state:
//! connections and their socket ids, channel subscriptions, presence
//! members counted per user, the last event of cache channels, activity.

use super::{Application, ConnId, ConnMap, ConnSet, Context, Http, Message, Page, Reply, Request};
use super::{RedisId, Ticket, TimerId};
use crate::bus::Event;
use crate::clients::http::{Request as HttpRequest, Url};
use crate::clients::resp::Reply as RespReply;
use crate::pusher::api::{self, Limits, Trigger};
use crate::pusher::auth::{self, ApiRequest};
use crate::pusher::channel::{Channel, Kind};
use crate::pusher::cluster::{self as keys, Count, Keys};
use crate::pusher::protocol::{self, ClientMessage, Member};
use crate::pusher::{PROTOCOL, code};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One Pusher app: its credentials and what its clients may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PusherApp {
    /// The app id of the HTTP API's paths (`/apps/{id}/...`).
    pub id: String,
    /// The key clients connect with (`/app/{key}`) and the API signs with.
    pub key: String,
    /// The secret every signature is made with.
    pub secret: String,
    /// Clients may send `client-*` events on private and presence
    /// channels.
    pub client_events: bool,
    /// Where webhooks go (`--pusher-webhook`), if anywhere.
    pub webhook: Option<Url>,
    /// Origins whose pages may connect (lowercased; full origins or bare
    /// host names, as `--allowed-origin` reads them); empty: every origin.
    /// Others are refused with `pusher:error` 4009 and closed.
    pub allowed_origins: Vec<String>,
    /// What this app's clients and API callers may do.
    pub limits: PusherLimits,
}

impl PusherApp {
    /// Parses `ID:KEY:SECRET` (client events on); the secret is all after
    /// the second colon.
    pub fn parse(spec: &str) -> Result<PusherApp, String> {
        let mut parts = spec.splitn(3, ':');
        let (Some(id), Some(key), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("expected ID:KEY:SECRET, not {spec:?}"));
        };
        PusherApp::new(id, key, secret)
    }

    /// An app with client events on, no webhook, any origin and the
    /// default limits; the id
    /// and key may hold letters, digits and `-_.`, the secret anything but
    /// nothing.
    pub fn new(id: &str, key: &str, secret: &str) -> Result<PusherApp, String> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !plain(id) || !plain(key) {
            return Err(format!(
                "the app id and key may hold letters, digits and -_. only: {id:?}, {key:?}"
            ));
        }
        if secret.is_empty() {
            return Err("the app secret is empty".into());
        }
        Ok(PusherApp {
            id: id.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
            client_events: true,
            webhook: None,
            allowed_origins: Vec::new(),
            limits: PusherLimits::default(),
        })
    }
}

/// The limits of one Pusher app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PusherLimits {
    /// Connections to the app at once (with the cluster, on every
    /// process, the others' counted as of the last second); past it, a
    /// new one gets `pusher:error` 4004 (over quota; clients do not
    /// retry) and is closed. `None`: no quota.
    pub max_connections: Option<usize>,
    /// Seconds of silence before the server pings a client; sent to
    /// clients as `activity_timeout`, after which they ping.
    pub activity_timeout: u64,
    /// How long a ping waits for its pong before the connection is closed
    /// with 4201.
    pub pong_timeout: Duration,
    /// Members of one presence channel.
    pub max_presence_members: usize,
    /// Bytes of one member's `user_info`.
    pub max_user_info: usize,
    /// Channels one connection may be subscribed to.
    pub max_channels: usize,
    /// Bytes of a client event's message.
    pub max_client_event: usize,
    /// Client events one connection may send per second.
    pub client_events_per_second: u32,
    /// API trigger limits.
    pub api: Limits,
    /// Seconds an API request's timestamp may be from our clock.
    pub api_window: u64,
}

impl Default for PusherLimits {
    fn default() -> Self {
        PusherLimits {
            max_connections: None,
            activity_timeout: 120,
            pong_timeout: Duration::from_secs(30),
            max_presence_members: 100,
            max_user_info: 1024,
            max_channels: 100,
            max_client_event: 10 * 1024,
            client_events_per_second: 10,
            api: Limits::default(),
            api_window: auth::API_WINDOW,
        }
    }
}

struct Conn {
    app: usize,
    socket_id: String,
    channels: Vec<String>,
    /// The user of `pusher:signin`.
    user: Option<String>,
    last_seen: Instant,
    ping_sent: Option<Instant>,
    /// Client events in the current second, and when it began.
    burst: (u32, Instant),
}

#[derive(Default)]
struct Chan {
    /// A cache channel: it remembers its last event from the API.
    cache: bool,
    subscription: Option<Ticket>,
    subscribers: ConnSet,
    /// Presence: the user of each subscribed connection, and each user's
    /// info and number of connections.
    member_of: HashMap<ConnId, String>,
    members: HashMap<String, (usize, Value)>,
    /// Their order of arrival (`ids` of `subscription_succeeded`).
    order: Vec<String>,
    /// With the Redis bus, on a presence channel: the subscription to its
    /// membership topic, and the members other processes announced there
    /// (user id to the processes that have them, with their info).
    control: Option<Ticket>,
    remote: HashMap<String, HashMap<String, Value>>,
}

impl Chan {
    /// Whether `user` is a member anywhere in the cluster.
    fn has(&self, user: &str) -> bool {
        self.members.contains_key(user) || self.remote.contains_key(user)
    }

    /// Members cluster-wide.
    fn member_count(&self) -> usize {
        self.members.len()
            + self
                .remote
                .keys()
                .filter(|u| !self.members.contains_key(*u))
                .count()
    }

    /// Every member once, ours in order of arrival, then the others'.
    fn all_members(&self) -> Vec<(&str, &Value)> {
        let mut out: Vec<(&str, &Value)> = self
            .order
            .iter()
            .filter_map(|id| self.members.get(id).map(|(_, info)| (id.as_str(), info)))
            .collect();
        let mut others: Vec<(&String, &HashMap<String, Value>)> = self
            .remote
            .iter()
            .filter(|(u, _)| !self.members.contains_key(*u))
            .collect();
        others.sort_by(|a, b| a.0.cmp(b.0));
        for (u, procs) in others {
            if let Some(info) = procs.values().next() {
                out.push((u.as_str(), info));
            }
        }
        out
    }
}

/// Presence across processes (`docs/pusher.md`, "Several processes"):
/// where membership lives in Redis and who this process is.
struct Cluster {
    /// The Redis server of the bus.
    redis: RedisId,
    /// The names of what the processes share there.
    keys: Keys,
    /// This process, in membership fields and announcements.
    process: String,
    /// Liveness checks out, by ticket: the process asked about.
    checks: HashMap<Ticket, String>,
    /// Sweeps since the last heartbeat.
    ticks: u32,
    /// The scripts and commands waiting for their replies.
    asked: HashMap<Ticket, Asked>,
    /// Triggers whose answers wait for the cluster's counts, by number.
    triggers: HashMap<u64, PendingTrigger>,
    next_trigger: u64,
    /// When each of `asked` was asked.
    since: HashMap<Ticket, Instant>,
}

/// A trigger published, its answer waiting for the cluster's counts of
/// the channels its `info` asks about.
struct PendingTrigger {
    conn: ConnId,
    app: usize,
    events: Vec<Trigger>,
    batch: bool,
    counts: HashMap<String, (u64, u64)>,
    /// Counts still to come.
    left: usize,
}

impl Cluster {
    /// Sends `cmd`; its reply (or its absence after [`CLUSTER_WAIT`])
    /// goes to what `asked` says; `asked` back if it could not be sent.
    fn ask(
        &mut self,
        ctx: &mut Context<'_>,
        cmd: &keys::Command,
        asked: Asked,
    ) -> Result<(), Asked> {
        match ctx.redis(self.redis, &cmd.args()) {
            Some(t) => {
                self.since.insert(t, ctx.now());
                self.asked.insert(t, asked);
                Ok(())
            }
            None => Err(asked),
        }
    }
}

/// What a reply from the cluster's Redis is awaited for.
enum Asked {
    /// [`Keys::set_count`] after a channel's first subscriber here came or its
    /// last went.
    Count {
        app: usize,
        name: String,
        /// It was the first subscriber here (else the last went).
        came: bool,
    },
    /// [`Keys::set_connections`] for an app with a connection quota.
    Conns { app: usize },
    /// [`Keys::confirm_vacated`] when a held `channel_vacated` is due.
    Confirm { app: usize, name: String },
    /// [`Keys::channel_counts`] for `GET /apps/{id}/channels/{name}`.
    Info {
        conn: ConnId,
        name: String,
        info: String,
    },
    /// [`Keys::channel_counts`] for one channel of a trigger's answer.
    TriggerInfo { id: u64, name: String },
    /// [`Keys::channel_list`] for `GET /apps/{id}/channels`.
    List { conn: ConnId, info: String },
    /// A cache channel's last event, before a subscription goes on.
    Cache(Box<PendingJoin>),
    /// A presence channel's members on other processes, before a
    /// subscription goes on.
    Join(Box<PendingJoin>),
    /// A presence channel's members for `.../users`.
    Users(PendingApi),
}

/// A presence channel's users asked of the HTTP API, waiting for the
/// members of the other processes.
struct PendingApi {
    conn: ConnId,
    app: usize,
    name: String,
}

/// A subscription checked and waiting for the cluster: a presence
/// channel's members, a cache channel's last event.
struct PendingJoin {
    app: usize,
    conn: ConnId,
    name: String,
    cache: bool,
    member: Option<Member>,
}

/// A process refreshes its liveness key this often...
pub const HEARTBEAT_EVERY: u32 = 5;
/// ...which lives this many seconds: a process gone for longer (killed)
/// has its presence members removed by the others' next check.
pub const HEARTBEAT_TTL: u32 = 15;

/// The bus topic of the membership announcements of `channel`.
fn control_topic(app: &PusherApp, channel: &str) -> String {
    format!("pusher-presence/{}/{channel}", app.id)
}

/// How long a subscription, an API request or a webhook decision waits
/// for the cluster's Redis before it goes on without (with this
/// process's view, or 503).
pub const CLUSTER_WAIT: Duration = Duration::from_secs(2);

/// A vacating key outlives the webhook's wait by this much, for a process
/// that dies meanwhile.
pub const VACATING_GRACE: Duration = Duration::from_secs(30);

/// Webhook events are sent in batches: at most this many events...
pub const WEBHOOK_BATCH: usize = 20;
/// ...or what gathered in this long.
pub const WEBHOOK_WINDOW: Duration = Duration::from_millis(250);
/// `channel_vacated` and `member_removed` wait this long: a connection
/// that comes back meanwhile (a page reload) cancels both the leaving
/// and the coming back.
pub const WEBHOOK_DEBOUNCE: Duration = Duration::from_secs(3);
/// A webhook the endpoint did not take (no answer, not 2xx) is sent again
/// after 1, 2, 4... seconds, for this long.
pub const WEBHOOK_RETRY_FOR: Duration = Duration::from_secs(5 * 60);
/// Most webhook requests waiting for an answer or a retry, per process;
/// past it a new batch is dropped (logged, counted).
pub const MAX_WEBHOOKS_OUT: usize = 1000;

/// A webhook request: its app, body, attempts so far and first attempt.
struct Hook {
    app: usize,
    body: Vec<u8>,
    attempt: u32,
    first: Instant,
}

/// What a leaving held back is about: the app, the channel, and `None`
/// for `channel_vacated` or the user of `member_removed`.
type HeldKey = (usize, String, Option<String>);

/// A leaving held back for [`WEBHOOK_DEBOUNCE`].
struct Held {
    key: HeldKey,
    /// Its number in [`PusherServer::held_live`]: a coming back removes
    /// the key there, and this entry is then skipped when due.
    seq: u64,
    due: Instant,
    /// A `channel_vacated` the cluster confirms when due
    /// ([`Keys::confirm_vacated`]): another process's subscriber may have come.
    confirm: bool,
}

/// How long a cache channel keeps its last event.
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// Most cache channels remembered at once; past it, a new one is not
/// remembered (logged).
pub const MAX_CACHED: usize = 10_000;

/// Serves the Pusher protocol for a set of apps.
pub struct PusherServer {
    apps: Vec<PusherApp>,
    /// What paths start with before `/app/` and `/apps/` (`""` or
    /// `/ws`-like).
    prefix: String,
    /// Open connections of each app (by index into `apps`), here and,
    /// with the cluster, on the other processes (as of the last sweep).
    open: Vec<usize>,
    open_elsewhere: Vec<usize>,
    conns: ConnMap<Conn>,
    /// By topic (`pusher/{app id}/{channel}`).
    channels: HashMap<String, Chan>,
    by_subscription: HashMap<Ticket, String>,
    /// The last event of each cache channel (by topic), as sent, and when.
    cached: HashMap<String, (String, Instant)>,
    /// Webhook events gathering per app, and the timer that sends them.
    batches: Vec<Vec<Value>>,
    batch_timer: Option<TimerId>,
    /// Leavings held back, in order of their due time (all wait the same
    /// time), and the number of the live one of each key: an arrival
    /// cancels a leaving by removing its key, in O(1).
    held: VecDeque<Held>,
    held_live: HashMap<HeldKey, u64>,
    held_seq: u64,
    /// Webhook requests out, by ticket, and those waiting to be retried.
    hooks_out: HashMap<Ticket, Hook>,
    retries: HashMap<TimerId, Hook>,
    sweep: Option<TimerId>,
    seed: u64,
    /// With the Redis bus: presence members across processes.
    cluster: Option<Cluster>,
    /// Control topic to the channel's topic, by subscription.
    by_control: HashMap<Ticket, String>,
    /// With the cluster: channels whose number of subscribers here
    /// changed (neither to nor from none) since the last sweep wrote them.
    dirty: HashSet<(usize, String)>,
}

/// The bus topic of `channel` of `app`.
fn topic(app: &PusherApp, channel: &str) -> String {
    format!("pusher/{}/{channel}", app.id)
}

impl PusherServer {
    /// A server for `apps`, each with its own limits.
    pub fn new(apps: Vec<PusherApp>) -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let batches = vec![Vec::new(); apps.len()];
        PusherServer {
            prefix: String::new(),
            open: vec![0; apps.len()],
            open_elsewhere: vec![0; apps.len()],
            apps,
            conns: ConnMap::new(),
            channels: HashMap::new(),
            by_subscription: HashMap::new(),
            cached: HashMap::new(),
            batches,
            batch_timer: None,
            held: VecDeque::new(),
            held_live: HashMap::new(),
            held_seq: 0,
            hooks_out: HashMap::new(),
            retries: HashMap::new(),
            sweep: None,
            seed: u64::from_le_bytes(seed) | 1,
            cluster: None,
            by_control: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    /// Serves under `prefix` (`/ws`: clients at `/ws/app/{key}`, the
    /// HTTP API at `/ws/apps/{id}/...`); the router must route those
    /// paths here ([`Self::paths`]).
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// The path prefixes this server answers: `{prefix}/app/` and
    /// `{prefix}/apps/`.
    pub fn paths(&self) -> [String; 2] {
        [
            format!("{}/app/", self.prefix),
            format!("{}/apps/", self.prefix),
        ]
    }

    /// Presence members, counts, the cache and webhook decisions across
    /// the processes sharing the Redis bus, kept on `redis` (the bus's
    /// Redis server) under keys starting with `key_prefix` (the bus's
    /// `--bus-prefix`).
    pub fn cluster(mut self, redis: RedisId, key_prefix: &str) -> Self {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        let process = id.iter().map(|b| format!("{b:02x}")).collect();
        self.cluster = Some(Cluster {
            redis,
            keys: Keys::new(key_prefix),
            process,
            checks: HashMap::new(),
            ticks: HEARTBEAT_EVERY,
            asked: HashMap::new(),
            triggers: HashMap::new(),
            next_trigger: 0,
            since: HashMap::new(),
        });
        self
    }

    /// A new socket id: a random number of twelve digits and the
    /// connection id. Unique in this process; across processes (an
    /// exclusion travels with an event on the bus) two ids meet only if
    /// their random parts do, one in 10^12.
    fn socket_id(&mut self, conn: ConnId) -> String {
        // xorshift64*: unpredictable enough for an id that is no secret.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let a = self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % 1_000_000_000_000;
        let b = u64::from(conn.index() as u32) << 32 | u64::from(conn.generation());
        format!("{a}.{b}")
    }

    fn app_by_key(&self, key: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.key == key)
    }

    fn error(ctx: &mut Context<'_>, conn: ConnId, code: Option<u16>, message: &str) {
        ctx.send_text(conn, &protocol::error(code, message));
    }

    fn subscribe(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        name: &str,
        auth_field: Option<&str>,
        channel_data: Option<&str>,
    ) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let app = &self.apps[c.app];
        let refuse = |ctx: &mut Context<'_>, kind: &str, why: &str, status: u16| {
            ctx.count("pusher_subscriptions", "refused");
            ctx.send_text(conn, &protocol::subscription_error(name, kind, why, status));
        };
        let channel = match Channel::parse(name) {
            Ok(ch) => ch,
            Err(e) => return refuse(ctx, "InvalidChannel", &e.to_string(), 400),
        };
        if c.channels.iter().any(|n| n == name) {
            return; // already subscribed: nothing to do
        }
        if c.channels.len() >= app.limits.max_channels {
            let why = format!(
                "at most {} channels per connection",
                app.limits.max_channels
            );
            return refuse(ctx, "LimitReached", &why, 400);
        }
        let mut member = None;
        match channel.kind {
            Kind::User if channel.user() != c.user.as_deref() => {
                return refuse(ctx, "AuthError", "not signed in as this user", 403);
            }
            Kind::User => {}
            _ if channel.needs_auth() => {
                let Some(sig) = auth_field else {
                    return refuse(ctx, "AuthError", "this channel needs auth", 401);
                };
                let data = if channel.kind == Kind::Presence {
                    let Some(data) = channel_data else {
                        return refuse(
                            ctx,
                            "AuthError",
                            "a presence channel needs channel_data",
                            401,
                        );
                    };
                    Some(data)
                } else {
                    None
                };
                if let Err(e) =
                    auth::check_channel(&app.key, &app.secret, sig, &c.socket_id, name, data)
                {
                    return refuse(ctx, "AuthError", &e.to_string(), 401);
                }
                if let Some(data) = data {
                    match Member::parse(data) {
                        Ok(m) if m.user_info.to_string().len() > app.limits.max_user_info => {
                            let why = format!("user_info over {} bytes", app.limits.max_user_info);
                            return refuse(ctx, "LimitReached", &why, 400);
                        }
                        Ok(m) => member = Some(m),
                        Err(why) => return refuse(ctx, "AuthError", why, 400),
                    }
                }
            }
            _ => {}
        }
        match (member, &mut self.cluster) {
            (Some(member), Some(cluster)) => {
                // The members of other processes first, from Redis.
                let cmd = cluster.keys.read_members(&app.id, name);
                let pending = PendingJoin {
                    app: c.app,
                    conn,
                    name: name.to_owned(),
                    cache: channel.cache,
                    member: Some(member),
                };
                if cluster
                    .ask(ctx, &cmd, Asked::Join(Box::new(pending)))
                    .is_err()
                {
                    return refuse(ctx, "Unavailable", "the cluster state is unreachable", 503);
                }
                let control = control_topic(app, name);
                let topic = topic(app, name);
                let chan = self.channels.entry(topic.clone()).or_default();
                if chan.control.is_none() {
                    chan.control = ctx.bus_subscribe(&control);
                    if let Some(t) = chan.control {
                        self.by_control.insert(t, topic);
                    }
                }
            }
            (None, Some(_)) if channel.cache => {
                let pending = PendingJoin {
                    app: c.app,
                    conn,
                    name: name.to_owned(),
                    cache: true,
                    member: None,
                };
                self.fetch_cached(ctx, pending);
            }
            (member, _) => self.join(ctx, conn, name, channel.cache, member),
        }
    }

    /// Reads a cache channel's last event from the cluster, then goes on
    /// with the subscription; without an answer, with what is known here.
    fn fetch_cached(&mut self, ctx: &mut Context<'_>, pending: PendingJoin) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let cmd = cluster
            .keys
            .read_cached(&self.apps[pending.app].id, &pending.name);
        if let Err(Asked::Cache(pending)) = cluster.ask(ctx, &cmd, Asked::Cache(Box::new(pending)))
        {
            self.cached_fetched(ctx, *pending, Err("Redis is not reachable".into()));
        }
    }

    /// The cluster's last event of a cache channel came (or did not): it
    /// replaces what this process remembers, and the subscription goes on.
    fn cached_fetched(
        &mut self,
        ctx: &mut Context<'_>,
        pending: PendingJoin,
        last: Result<Option<String>, String>,
    ) {
        let topic = topic(&self.apps[pending.app], &pending.name);
        match last {
            Ok(Some(text)) => remember(&mut self.cached, &topic, &text, ctx.now()),
            Ok(None) => {
                self.cached.remove(&topic);
            }
            Err(why) => {
                ctx.count("pusher_cluster", "redis_error");
                log::warn!(
                    "Pusher app {}: the cluster's last event of {} is unknown ({why}); this process's is used",
                    self.apps[pending.app].id,
                    pending.name
                );
            }
        }
        self.join(ctx, pending.conn, &pending.name, true, pending.member);
        self.drop_if_empty(ctx, &topic);
    }

    /// Writes this process's number of subscribers of a channel to the
    /// cluster after its first came or its last went; the reply says
    /// whether the channel's webhooks are this process's to send.
    fn set_count(&mut self, ctx: &mut Context<'_>, app: usize, name: &str, count: usize) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let a = &self.apps[app];
        let wait = if a.webhook.is_some() {
            (WEBHOOK_DEBOUNCE + VACATING_GRACE).as_millis()
        } else {
            0
        };
        let cmd = cluster
            .keys
            .set_count(&a.id, name, &cluster.process, count, wait);
        let came = count > 0;
        let asked = Asked::Count {
            app,
            name: name.to_owned(),
            came,
        };
        if cluster.ask(ctx, &cmd, asked).is_err() {
            let guess = if came {
                Count::Occupied
            } else {
                Count::Vacating
            };
            self.counted(ctx, app, name, Err("Redis is not reachable".into()), guess);
        }
    }

    /// The reply of [`Keys::set_count`]: the webhook it calls for. Without
    /// one, this process's view (`guess`) decides, as without a cluster.
    fn counted(
        &mut self,
        ctx: &mut Context<'_>,
        app: usize,
        name: &str,
        reply: Result<Count, String>,
        guess: Count,
    ) {
        let confirm = reply.is_ok();
        let what = reply.unwrap_or_else(|why| {
            ctx.count("pusher_cluster", "redis_error");
            log::warn!(
                "Pusher app {}: the cluster's subscribers of {name} are unknown ({why}); webhooks go as this process sees it",
                self.apps[app].id
            );
            guess
        });
        match what {
            Count::Nothing => {}
            Count::Occupied => self.arrived(ctx, app, name, None),
            Count::Vacating => self.departed(ctx, app, name, None, confirm),
        }
    }

    /// Subscribes `conn` to the checked channel `name` (as `member` of a
    /// presence channel).
    fn join(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        name: &str,
        cache: bool,
        member: Option<Member>,
    ) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        if c.channels.iter().any(|n| n == name) {
            return;
        }
        let app = &self.apps[c.app];
        let refuse = |ctx: &mut Context<'_>, kind: &str, why: &str, status: u16| {
            ctx.count("pusher_subscriptions", "refused");
            ctx.send_text(conn, &protocol::subscription_error(name, kind, why, status));
        };
        let topic = topic(app, name);
        let chan = self.channels.entry(topic.clone()).or_default();
        chan.cache = cache;
        if let Some(m) = &member
            && !chan.has(&m.user_id)
            && chan.member_count() >= app.limits.max_presence_members
        {
            let why = format!(
                "the channel has {} members, the most allowed",
                app.limits.max_presence_members
            );
            refuse(ctx, "LimitReached", &why, 400);
            return self.drop_if_empty(ctx, &topic);
        }
        if chan.subscription.is_none() {
            chan.subscription = ctx.bus_subscribe(&topic);
            if let Some(t) = chan.subscription {
                self.by_subscription.insert(t, topic.clone());
            }
        }
        let occupied = chan.subscribers.is_empty();
        chan.subscribers.insert(conn);
        ctx.count("pusher_subscriptions", "ok");
        let mut joined = None;
        let answer = match member {
            Some(m) => {
                let first = match chan.members.get_mut(&m.user_id) {
                    Some((n, _)) => {
                        *n += 1;
                        false
                    }
                    None => {
                        chan.members
                            .insert(m.user_id.clone(), (1, m.user_info.clone()));
                        chan.order.push(m.user_id.clone());
                        true
                    }
                };
                chan.member_of.insert(conn, m.user_id.clone());
                if first {
                    if let Some(cluster) = &self.cluster {
                        announce(ctx, cluster, app, name, "+", &m.user_id, &m.user_info);
                    }
                    if !chan.remote.contains_key(&m.user_id) {
                        let added = protocol::member_added(name, &m.user_id, &m.user_info);
                        let others: Vec<ConnId> =
                            chan.subscribers.iter().filter(|&o| o != conn).collect();
                        ctx.broadcast(others, Message::Text(&added));
                        joined = Some(m.user_id.clone());
                    }
                }
                protocol::presence_succeeded(name, chan.all_members())
            }
            None => protocol::subscription_succeeded(name),
        };
        ctx.send_text(conn, &answer);
        let mut missed = false;
        if cache {
            match self.cached.get(&topic) {
                Some((last, _)) => ctx.send_text(conn, last),
                None => {
                    missed = true;
                    ctx.count("pusher_cache", "miss");
                    ctx.send_text(conn, &protocol::cache_miss(name))
                }
            };
        }
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.channels.push(name.to_owned());
        let app = c.app;
        if self.cluster.is_none() {
            if occupied {
                self.arrived(ctx, app, name, None);
            }
        } else if occupied {
            // A vacating held here is called off in Redis by the script.
            self.held_live.remove(&(app, name.to_owned(), None));
            self.set_count(ctx, app, name, 1);
        } else {
            self.dirty.insert((app, name.to_owned()));
        }
        if let Some(user) = joined {
            self.arrived(ctx, app, name, Some(&user));
        }
        if missed {
            self.hook(ctx, app, json!({"name": "cache_miss", "channel": name}));
        }
    }

    fn unsubscribe(&mut self, ctx: &mut Context<'_>, conn: ConnId, name: &str) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some(at) = c.channels.iter().position(|n| n == name) else {
            return;
        };
        c.channels.swap_remove(at);
        let app = c.app;
        let topic = topic(&self.apps[app], name);
        self.leave(ctx, app, conn, &topic, name);
    }

    /// Takes `conn` off the channel: the last connection of a presence
    /// member makes it leave; the last subscriber ends the bus
    /// subscription.
    fn leave(&mut self, ctx: &mut Context<'_>, app: usize, conn: ConnId, topic: &str, name: &str) {
        let Some(chan) = self.channels.get_mut(topic) else {
            return;
        };
        let mut gone_user = None;
        chan.subscribers.remove(conn);
        if let Some(user) = chan.member_of.remove(&conn)
            && let Some((n, _)) = chan.members.get_mut(&user)
        {
            *n -= 1;
            if *n == 0 {
                chan.members.remove(&user);
                chan.order.retain(|u| u != &user);
                if let Some(cluster) = &self.cluster {
                    announce(
                        ctx,
                        cluster,
                        &self.apps[app],
                        name,
                        "-",
                        &user,
                        &Value::Null,
                    );
                }
                if !chan.remote.contains_key(&user) {
                    let removed = protocol::member_removed(name, &user);
                    ctx.broadcast(chan.subscribers.iter(), Message::Text(&removed));
                    gone_user = Some(user);
                }
            }
        }
        let vacated = chan.subscribers.is_empty();
        if vacated {
            self.drop_if_empty(ctx, topic);
        }
        if let Some(user) = gone_user {
            self.departed(ctx, app, name, Some(&user), false);
        }
        match (vacated, self.cluster.is_some()) {
            (true, false) => self.departed(ctx, app, name, None, false),
            (true, true) => self.set_count(ctx, app, name, 0),
            (false, true) => {
                self.dirty.insert((app, name.to_owned()));
            }
            (false, false) => {}
        }
    }

    fn client_event(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        event: &str,
        name: &str,
        data: &Value,
        size: usize,
    ) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let app = &self.apps[c.app];
        let refuse = |ctx: &mut Context<'_>, code: Option<u16>, why: &str| {
            ctx.count("pusher_client_events", "refused");
            Self::error(ctx, conn, code, why);
        };
        if !app.client_events {
            return refuse(ctx, None, "client events are not enabled for this app");
        }
        // A channel subscribed to was checked then: its prefixes say the
        // rest.
        let subscribed = c.channels.iter().any(|n| n == name);
        let allowed = if subscribed {
            Channel::checked(name).allows_client_events()
        } else {
            Channel::parse(name).is_ok_and(|ch| ch.allows_client_events())
        };
        if !allowed {
            return refuse(
                ctx,
                None,
                "client events are allowed on private and presence channels only",
            );
        }
        if !subscribed {
            return refuse(
                ctx,
                None,
                "client events need a subscription to the channel",
            );
        }
        if size > app.limits.max_client_event {
            let why = format!("client event over {} bytes", app.limits.max_client_event);
            return refuse(ctx, None, &why);
        }
        if now.duration_since(c.burst.1) >= Duration::from_secs(1) {
            c.burst = (0, now);
        }
        c.burst.0 += 1;
        if c.burst.0 > app.limits.client_events_per_second {
            let why = format!(
                "more than {} client events per second",
                app.limits.client_events_per_second
            );
            return refuse(ctx, Some(code::CLIENT_EVENT_RATE), &why);
        }
        let topic = topic(app, name);
        let user = self
            .channels
            .get(&topic)
            .and_then(|ch| ch.member_of.get(&conn).cloned());
        let text = protocol::client_event(name, event, data, user.as_deref());
        ctx.count("pusher_client_events", "ok");
        let socket_id = c.socket_id.clone();
        let app = c.app;
        ctx.publish(Event {
            exclude: vec![socket_id.clone()],
            ..Event::raw(topic, text)
        });
        if self.apps[app].webhook.is_some() {
            let mut hook = json!({
                "name": "client_event",
                "channel": name,
                "event": event,
                "data": match data {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                "socket_id": socket_id,
            });
            if let Some(user) = user {
                hook["user_id"] = Value::String(user);
            }
            self.hook(ctx, app, hook);
        }
    }

    fn signin(&mut self, ctx: &mut Context<'_>, conn: ConnId, sig: &str, user_data: &str) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let app = &self.apps[c.app];
        let checked = auth::check_user(&app.key, &app.secret, sig, &c.socket_id, user_data)
            .map_err(|e| e.to_string())
            .and_then(|()| protocol::signed_in_user(user_data).map_err(str::to_owned));
        match checked {
            Ok(user) => {
                ctx.count("pusher_signins", "ok");
                c.user = Some(user.clone());
                ctx.set_user(conn, Some(user.into()));
                ctx.send_text(conn, &protocol::signin_success(user_data));
            }
            Err(why) => {
                ctx.count("pusher_signins", "refused");
                Self::error(ctx, conn, Some(code::UNAUTHORIZED), &why);
                ctx.close(conn, code::UNAUTHORIZED, "sign-in refused");
            }
        }
    }

    /// Pings connections silent for `activity_timeout`, closes those whose
    /// ping went unanswered for `pong_timeout` (4201). Anything heard
    /// counts: a message, or a WebSocket ping or pong frame (which the
    /// reactor answers itself), as Pusher's servers count them.
    fn check_activity(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        let mut late = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            let limits = &self.apps[c.app].limits;
            let idle = Duration::from_secs(limits.activity_timeout);
            if let Some(heard) = ctx.last_input(id)
                && heard > c.last_seen
            {
                c.last_seen = heard;
                if c.ping_sent.is_some_and(|at| heard >= at) {
                    c.ping_sent = None;
                }
            }
            match c.ping_sent {
                Some(at) if now.duration_since(at) >= limits.pong_timeout => late.push(id),
                Some(_) => {}
                None if now.duration_since(c.last_seen) >= idle => {
                    c.ping_sent = Some(now);
                    ctx.send_text(id, &protocol::ping());
                }
                None => {}
            }
        }
        for id in late {
            ctx.count("pusher_pong_timeouts", "closed");
            ctx.close(id, code::PONG_TIMEOUT, "pong reply not received");
        }
    }

    /// The HTTP API: `/apps/{id}/...`.
    /// Answers an HTTP API request: the page now, or `None` when it comes
    /// later through [`Context::respond`] (a presence channel's info and
    /// users with the Redis bus: the cluster's members are read first).
    fn api(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Option<Page> {
        let Some(rest) = req
            .path
            .strip_prefix(self.prefix.as_str())
            .and_then(|p| p.strip_prefix("/apps/"))
        else {
            return Some(Page::text(404, "not found\n"));
        };
        let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(app) = self.apps.iter().position(|a| a.id == id) else {
            return Some(api_error(404, &format!("unknown app id {id:?}")));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signed = ApiRequest {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            body: &req.body,
        };
        let a = &self.apps[app];
        let params = match auth::check_api(&signed, &a.key, &a.secret, now, a.limits.api_window) {
            Ok(p) => p,
            Err(e) => {
                ctx.count("pusher_api", "unauthorized");
                log::info!("{}: Pusher API {} refused: {e}", req.peer, req.path);
                return Some(api_error(401, &e.to_string()));
            }
        };
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if (req.method.as_str(), what) == ("GET", "channels")
            && param("info").is_some_and(|i| i.split(',').any(|i| i == "user_count"))
            && !param("filter_by_prefix").is_some_and(|p| p.starts_with("presence-"))
        {
            // Pusher counts users of presence channels only.
            ctx.count("pusher_api", "refused");
            return Some(api_error(
                400,
                "info=user_count needs filter_by_prefix=presence-",
            ));
        }
        if let (Some(cluster), "GET") = (&mut self.cluster, req.method.as_str()) {
            // The cluster's counts and members are in Redis: the answer
            // waits for them (without a reply, this process's view).
            let a = &self.apps[app];
            let info = param("info").unwrap_or("").to_owned();
            let ask = if let Some(rest) = what.strip_prefix("channels/") {
                match rest.strip_suffix("/users") {
                    Some(name) if name.starts_with("presence-") => {
                        let name = name.to_owned();
                        let cmd = cluster.keys.read_members(&a.id, &name);
                        Some((cmd, Asked::Users(PendingApi { conn, app, name })))
                    }
                    Some(_) => None,
                    None => {
                        let asked = Asked::Info {
                            conn,
                            name: rest.to_owned(),
                            info,
                        };
                        Some((cluster.keys.channel_counts(&a.id, rest), asked))
                    }
                }
            } else if what == "channels" {
                let prefix = param("filter_by_prefix").unwrap_or("");
                Some((
                    cluster.keys.channel_list(&a.id, prefix),
                    Asked::List { conn, info },
                ))
            } else {
                None
            };
            if let Some((cmd, asked)) = ask
                && cluster.ask(ctx, &cmd, asked).is_ok()
            {
                return None;
            }
        }
        let page = match (req.method.as_str(), what) {
            ("POST", "events" | "batch_events") => {
                let limits = &self.apps[app].limits.api;
                let batch = what == "batch_events";
                let parsed = if batch {
                    api::parse_batch(&req.body, limits)
                } else {
                    api::parse_trigger(&req.body, limits).map(|t| vec![t])
                };
                match parsed {
                    Ok(events) => match self.triggered(ctx, conn, app, events, batch) {
                        Some(page) => page,
                        None => {
                            ctx.count("pusher_api", "ok");
                            return None;
                        }
                    },
                    Err(e) => api_error(e.status, &e.reason),
                }
            }
            ("GET", "channels") => {
                let prefix = param("filter_by_prefix").unwrap_or("");
                let info = param("info").unwrap_or("");
                Page::json(200, self.channel_list(app, prefix, info).to_string())
            }
            ("GET", w) if w.starts_with("channels/") => {
                let rest = &w["channels/".len()..];
                match rest.strip_suffix("/users") {
                    Some(name) => self.users_of(app, name),
                    None => {
                        let info = param("info").unwrap_or("");
                        Page::json(200, self.channel_info(app, rest, info).to_string())
                    }
                }
            }
            ("POST", w) if w.starts_with("users/") && w.ends_with("/terminate_connections") => {
                let user = &w["users/".len()..w.len() - "/terminate_connections".len()];
                self.terminate(ctx, app, user);
                Page::json(200, "{}")
            }
            (m, w)
                if matches!(w, "events" | "batch_events" | "channels")
                    || w.starts_with("channels/")
                    || w.starts_with("users/") =>
            {
                api_error(405, &format!("{m} is not allowed on /apps/{id}/{w}"))
            }
            _ => api_error(404, &format!("no such endpoint: {}", req.path)),
        };
        ctx.count(
            "pusher_api",
            if page.status == 200 { "ok" } else { "refused" },
        );
        Some(page)
    }

    /// Answers `GET /apps/{id}/channels/{presence}/users` with the members
    /// of this process and of the others (`members`, from the channel's
    /// Redis hash).
    fn answer_users(
        &mut self,
        ctx: &mut Context<'_>,
        pending: PendingApi,
        members: Result<Vec<(String, String, Value)>, String>,
    ) {
        let page = members.map(|members| {
            let topic = topic(&self.apps[pending.app], &pending.name);
            let chan = self.channels.get(&topic);
            let mut users: Vec<String> = chan.map(|c| c.order.clone()).unwrap_or_default();
            let mut others: Vec<String> = members.into_iter().map(|(_, u, _)| u).collect();
            others.sort();
            others.dedup();
            for u in others {
                if !users.contains(&u) {
                    users.push(u);
                }
            }
            let list: Vec<Value> = users.iter().map(|id| json!({"id": id})).collect();
            Page::json(200, json!({ "users": list }).to_string())
        });
        respond_from_cluster(ctx, pending.conn, page, "members");
    }

    /// Answers `GET /apps/{id}/channels/{name}` with the cluster's counts
    /// ([`Keys::channel_counts`]'s reply).
    fn answer_info(
        ctx: &mut Context<'_>,
        conn: ConnId,
        name: &str,
        info: &str,
        counts: Result<(u64, u64), String>,
    ) {
        let page = counts.map(|(subs, users)| {
            let mut out = attributes(name, info, subs, users);
            out.insert("occupied".into(), json!(subs > 0));
            Page::json(200, Value::Object(out).to_string())
        });
        respond_from_cluster(ctx, conn, page, "counts");
    }

    /// Answers `GET /apps/{id}/channels` with the cluster's channels
    /// ([`Keys::channel_list`]'s reply).
    fn answer_list(
        ctx: &mut Context<'_>,
        conn: ConnId,
        info: &str,
        channels: Result<Vec<(String, u64)>, String>,
    ) {
        let users = info.split(',').any(|i| i == "user_count");
        let page = channels.map(|list| {
            let out: Map<String, Value> = list
                .into_iter()
                .map(|(name, n)| {
                    let attrs = if users {
                        json!({ "user_count": n })
                    } else {
                        json!({})
                    };
                    (name, attrs)
                })
                .collect();
            Page::json(200, json!({ "channels": out }).to_string())
        });
        respond_from_cluster(ctx, conn, page, "channels");
    }

    /// Publishes `t` on each of its channels.
    fn trigger(&mut self, ctx: &mut Context<'_>, app: usize, t: &Trigger) {
        let a = &self.apps[app];
        for name in &t.channels {
            let text = protocol::channel_message(name, &t.name, &t.data);
            let topic = topic(a, name);
            // The names were checked when the request was decoded.
            if Channel::checked(name).cache {
                remember(&mut self.cached, &topic, &text, ctx.now());
                if let Some(cluster) = &self.cluster {
                    let ttl = CACHE_TTL.as_secs();
                    let cmd = cluster.keys.keep_cached(&a.id, name, &text, ttl);
                    ctx.redis(cluster.redis, &cmd.args());
                }
            }
            let mut event = Event::raw(topic.clone(), text);
            event.exclude.extend(t.socket_id.clone());
            ctx.publish(event);
            ctx.count("pusher_events", "triggered");
        }
    }

    /// Publishes the events of a trigger (`batch`: of `batch_events`) and
    /// answers with the channel attributes their `info` asks for: at once
    /// from this process's counts, or, with the cluster, once its counts
    /// came (`None`).
    fn triggered(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        app: usize,
        events: Vec<Trigger>,
        batch: bool,
    ) -> Option<Page> {
        for t in &events {
            self.trigger(ctx, app, t);
        }
        let asked: HashSet<String> = events
            .iter()
            .filter(|t| t.info.is_some())
            .flat_map(|t| t.channels.iter().cloned())
            .collect();
        let mut pending = PendingTrigger {
            conn,
            app,
            events,
            batch,
            counts: HashMap::new(),
            left: 0,
        };
        let Some(cluster) = &mut self.cluster else {
            return Some(self.trigger_page(&pending));
        };
        let id = cluster.next_trigger;
        cluster.next_trigger += 1;
        let a = &self.apps[app];
        for name in asked {
            let cmd = cluster.keys.channel_counts(&a.id, &name);
            if cluster
                .ask(ctx, &cmd, Asked::TriggerInfo { id, name })
                .is_ok()
            {
                pending.left += 1;
            }
        }
        if pending.left == 0 {
            // Nothing asked (or not one request could be sent): this
            // process's counts.
            return Some(self.trigger_page(&pending));
        }
        cluster.triggers.insert(id, pending);
        None
    }

    /// The cluster's counts of one channel of a trigger waiting (without
    /// them, this process's); the answer once the last came.
    fn trigger_counted(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        name: String,
        counts: Result<(u64, u64), String>,
    ) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let Some(pending) = cluster.triggers.get_mut(&id) else {
            return;
        };
        match counts {
            Ok(c) => {
                pending.counts.insert(name, c);
            }
            Err(why) => {
                ctx.count("pusher_cluster", "redis_error");
                log::warn!(
                    "Pusher API: the cluster's counts of {name} are unknown ({why}); this process's are answered"
                );
            }
        }
        pending.left -= 1;
        if pending.left > 0 {
            return;
        }
        if let Some(pending) = cluster.triggers.remove(&id) {
            let page = self.trigger_page(&pending);
            ctx.respond(pending.conn, page);
        }
    }

    /// The answer of a trigger from the counts gathered, this process's
    /// for those missing.
    fn trigger_page(&self, pending: &PendingTrigger) -> Page {
        let a = &self.apps[pending.app];
        let answer = trigger_answer(&pending.events, pending.batch, |name| {
            pending
                .counts
                .get(name)
                .copied()
                .unwrap_or_else(|| self.local_counts(&topic(a, name)))
        });
        Page::json(200, answer.to_string())
    }

    /// This process's subscribers and presence members (with those it
    /// knows of on other processes) of the channel `topic`.
    fn local_counts(&self, topic: &str) -> (u64, u64) {
        self.channels.get(topic).map_or((0, 0), |c| {
            (c.subscribers.len() as u64, c.member_count() as u64)
        })
    }

    fn info_of(&self, topic: &str, name: &str, info: &str) -> Value {
        let (subs, users) = self.local_counts(topic);
        Value::Object(attributes(name, info, subs, users))
    }

    fn channel_list(&self, app: usize, prefix: &str, info: &str) -> Value {
        let head = format!("pusher/{}/", self.apps[app].id);
        let mut channels = Map::new();
        for (topic, chan) in &self.channels {
            let Some(name) = topic.strip_prefix(&head) else {
                continue;
            };
            if chan.subscribers.is_empty() || !name.starts_with(prefix) {
                continue;
            }
            channels.insert(name.to_owned(), self.info_of(topic, name, info));
        }
        json!({ "channels": channels })
    }

    fn channel_info(&self, app: usize, name: &str, info: &str) -> Value {
        let topic = topic(&self.apps[app], name);
        let occupied = self
            .channels
            .get(&topic)
            .is_some_and(|c| !c.subscribers.is_empty());
        let mut out = match self.info_of(&topic, name, info) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        out.insert("occupied".into(), json!(occupied));
        Value::Object(out)
    }

    fn users_of(&self, app: usize, name: &str) -> Page {
        if !name.starts_with("presence-") {
            return api_error(400, "users are listed for presence channels only");
        }
        let topic = topic(&self.apps[app], name);
        let users: Vec<Value> = self
            .channels
            .get(&topic)
            .map(|c| {
                c.all_members()
                    .iter()
                    .map(|(id, _)| json!({"id": id}))
                    .collect()
            })
            .unwrap_or_default();
        Page::json(200, json!({ "users": users }).to_string())
    }

    fn terminate(&mut self, ctx: &mut Context<'_>, app: usize, user: &str) {
        let doomed: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.app == app && c.user.as_deref() == Some(user))
            .map(|(id, _)| id)
            .collect();
        for id in doomed {
            ctx.close(
                id,
                code::UNAUTHORIZED,
                "connections of this user terminated",
            );
        }
    }

    /// Queues a webhook event of `app`; nothing without a webhook URL.
    fn hook(&mut self, ctx: &mut Context<'_>, app: usize, event: Value) {
        if self.apps[app].webhook.is_none() {
            return;
        }
        self.batches[app].push(event);
        if self.batches[app].len() >= WEBHOOK_BATCH {
            self.send_batch(ctx, app);
        } else if self.batch_timer.is_none() {
            self.batch_timer = Some(ctx.add_timer(WEBHOOK_WINDOW));
        }
    }

    /// A channel became occupied here, or a user joined a presence
    /// channel: the webhook, unless it cancels a leaving still held.
    fn arrived(&mut self, ctx: &mut Context<'_>, app: usize, channel: &str, user: Option<&str>) {
        if self.apps[app].webhook.is_none() {
            return;
        }
        if !self.held_live.is_empty() {
            let key = (app, channel.to_owned(), user.map(str::to_owned));
            if self.held_live.remove(&key).is_some() {
                return;
            }
        }
        let event = match user {
            None => json!({"name": "channel_occupied", "channel": channel}),
            Some(u) => json!({"name": "member_added", "channel": channel, "user_id": u}),
        };
        self.hook(ctx, app, event);
    }

    /// The leaving counterpart: held back for [`WEBHOOK_DEBOUNCE`], then
    /// sent (or, with `confirm`, sent if the cluster confirms it).
    fn departed(
        &mut self,
        ctx: &mut Context<'_>,
        app: usize,
        channel: &str,
        user: Option<&str>,
        confirm: bool,
    ) {
        if self.apps[app].webhook.is_some() {
            self.held_seq += 1;
            let key = (app, channel.to_owned(), user.map(str::to_owned));
            self.held_live.insert(key.clone(), self.held_seq);
            self.held.push_back(Held {
                key,
                seq: self.held_seq,
                due: ctx.now() + WEBHOOK_DEBOUNCE,
                confirm,
            });
        }
    }

    /// Sends the leavings whose time has come.
    fn release_held(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        while self.held.front().is_some_and(|h| h.due <= now) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            if self.held_live.get(&h.key) != Some(&h.seq) {
                continue; // cancelled by a coming back
            }
            self.held_live.remove(&h.key);
            let (app, channel, user) = h.key;
            if h.confirm {
                self.confirm_vacated(ctx, app, channel);
                continue;
            }
            let event = match user {
                None => json!({"name": "channel_vacated", "channel": channel}),
                Some(u) => json!({"name": "member_removed", "channel": channel, "user_id": u}),
            };
            self.hook(ctx, app, event);
        }
    }

    /// Writes the numbers of subscribers here that changed since the last
    /// sweep (those that came to or from none were written then), and
    /// the connections of each app with a quota, learning the others'.
    fn write_counts(&mut self, ctx: &mut Context<'_>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        for (app, a) in self.apps.iter().enumerate() {
            if a.limits.max_connections.is_none() {
                continue;
            }
            let cmd = cluster
                .keys
                .set_connections(&a.id, &cluster.process, self.open[app]);
            // Unsent, the quota counts the others as of before.
            let _ = cluster.ask(ctx, &cmd, Asked::Conns { app });
        }
        for (app, name) in self.dirty.drain() {
            let a = &self.apps[app];
            let Some(chan) = self.channels.get(&topic(a, &name)) else {
                continue;
            };
            if chan.subscribers.is_empty() {
                continue;
            }
            let key = cluster.keys.subs(&a.id, &name);
            let n = chan.subscribers.len().to_string();
            ctx.redis(
                cluster.redis,
                &[
                    b"HSET",
                    key.as_bytes(),
                    cluster.process.as_bytes(),
                    n.as_bytes(),
                ],
            );
        }
    }

    /// Asks the cluster whether a held `channel_vacated` still stands.
    fn confirm_vacated(&mut self, ctx: &mut Context<'_>, app: usize, name: String) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let cmd = cluster
            .keys
            .confirm_vacated(&self.apps[app].id, &name, &cluster.process);
        if let Err(Asked::Confirm { app, name }) =
            cluster.ask(ctx, &cmd, Asked::Confirm { app, name })
        {
            self.vacated(ctx, app, &name, Err("Redis is not reachable".into()));
        }
    }

    /// The cluster's answer to [`Self::confirm_vacated`]; without one the
    /// webhook goes, as this process saw the channel vacated.
    fn vacated(
        &mut self,
        ctx: &mut Context<'_>,
        app: usize,
        name: &str,
        reply: Result<bool, String>,
    ) {
        let send = reply.unwrap_or_else(|why| {
            ctx.count("pusher_cluster", "redis_error");
            log::warn!(
                "Pusher app {}: whether {name} is vacated everywhere is unknown ({why}); channel_vacated goes",
                self.apps[app].id
            );
            true
        });
        if send {
            self.hook(
                ctx,
                app,
                json!({"name": "channel_vacated", "channel": name}),
            );
        }
    }

    fn send_batches(&mut self, ctx: &mut Context<'_>) {
        for app in 0..self.apps.len() {
            if !self.batches[app].is_empty() {
                self.send_batch(ctx, app);
            }
        }
    }

    fn send_batch(&mut self, ctx: &mut Context<'_>, app: usize) {
        let events = std::mem::take(&mut self.batches[app]);
        if self.hooks_out.len() + self.retries.len() >= MAX_WEBHOOKS_OUT {
            log::warn!(
                "Pusher app {}: {} webhook event(s) dropped: {MAX_WEBHOOKS_OUT} webhook requests are already out or waiting",
                self.apps[app].id,
                events.len()
            );
            ctx.count("pusher_webhooks", "dropped");
            return;
        }
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let body = json!({"time_ms": time_ms, "events": events})
            .to_string()
            .into_bytes();
        let hook = Hook {
            app,
            body,
            attempt: 0,
            first: ctx.now(),
        };
        self.post(ctx, hook);
    }

    /// POSTs a webhook request, signed with the app's secret.
    fn post(&mut self, ctx: &mut Context<'_>, mut hook: Hook) {
        let app = &self.apps[hook.app];
        let Some(url) = &app.webhook else {
            return;
        };
        hook.attempt += 1;
        let signature = auth::webhook_signature(&app.secret, &hook.body);
        let request = HttpRequest::new("POST", url.target())
            .and_then(|r| r.header("Content-Type", "application/json"))
            .and_then(|r| r.header("X-Pusher-Key", &app.key))
            .and_then(|r| r.header("X-Pusher-Signature", &signature))
            .map(|r| r.body(hook.body.clone()));
        match request.ok().and_then(|r| ctx.http_request(url, r)) {
            Some(ticket) => {
                self.hooks_out.insert(ticket, hook);
            }
            None => self.retry(ctx, hook, "the request could not be sent"),
        }
    }

    /// Sends `hook` again after 1, 2, 4... seconds, unless that is past
    /// [`WEBHOOK_RETRY_FOR`] since its first attempt.
    fn retry(&mut self, ctx: &mut Context<'_>, hook: Hook, why: &str) {
        let app = &self.apps[hook.app];
        let delay = Duration::from_secs(1 << (hook.attempt.clamp(1, 9) - 1));
        if ctx.now() + delay > hook.first + WEBHOOK_RETRY_FOR {
            log::warn!(
                "Pusher app {}: webhook dropped after {} attempts: {why}",
                app.id,
                hook.attempt
            );
            ctx.count("pusher_webhooks", "dropped");
            return;
        }
        log::info!(
            "Pusher app {}: webhook attempt {} failed ({why}); again in {delay:?}",
            app.id,
            hook.attempt
        );
        ctx.count("pusher_webhooks", "retried");
        let timer = ctx.add_timer(delay);
        self.retries.insert(timer, hook);
    }

    /// Ends the bus subscriptions of the channel `topic` and forgets it,
    /// if nobody here is subscribed.
    fn drop_if_empty(&mut self, ctx: &mut Context<'_>, topic: &str) {
        if !self
            .channels
            .get(topic)
            .is_some_and(|c| c.subscribers.is_empty())
        {
            return;
        }
        if let Some(chan) = self.channels.remove(topic) {
            if let Some(t) = chan.subscription {
                ctx.bus_unsubscribe(t);
                self.by_subscription.remove(&t);
            }
            if let Some(t) = chan.control {
                ctx.bus_unsubscribe(t);
                self.by_control.remove(&t);
            }
        }
    }

    /// The members of another process's subscription waited for: the
    /// channel learns them (announcing the new ones to its subscribers
    /// here), then the subscription goes on.
    fn joined_cluster(
        &mut self,
        ctx: &mut Context<'_>,
        pending: PendingJoin,
        members: Result<Vec<(String, String, Value)>, String>,
    ) {
        let app = &self.apps[pending.app];
        let topic = topic(app, &pending.name);
        match members {
            Ok(members) => {
                let chan = self.channels.entry(topic.clone()).or_default();
                for (process, user, info) in members {
                    if !chan.has(&user) {
                        let added = protocol::member_added(&pending.name, &user, &info);
                        ctx.broadcast(chan.subscribers.iter(), Message::Text(&added));
                    }
                    chan.remote.entry(user).or_default().insert(process, info);
                }
            }
            Err(why) => log::warn!(
                "Pusher app {}: the members of {} on other processes are unknown: {why}",
                app.id,
                pending.name
            ),
        }
        let chan = self.channels.entry(topic.clone()).or_default();
        if chan.control.is_none() {
            chan.control = ctx.bus_subscribe(&control_topic(app, &pending.name));
            if let Some(t) = chan.control {
                self.by_control.insert(t, topic.clone());
            }
        }
        if pending.cache {
            return self.fetch_cached(ctx, pending);
        }
        self.join(ctx, pending.conn, &pending.name, false, pending.member);
        self.drop_if_empty(ctx, &topic);
    }

    /// An announcement on the membership topic of the channel `topic`:
    /// another process's first connection of a user came (`+`) or its
    /// last went (`-`); subscribers here hear of it when the user's
    /// cluster-wide presence changes.
    fn remote_change(&mut self, ctx: &mut Context<'_>, topic: &str, data: &str) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return log::warn!("{topic}: a malformed membership announcement: {data:?}");
        };
        let (Some(process), Some(op), Some(user)) =
            (v["p"].as_str(), v["op"].as_str(), v["u"].as_str())
        else {
            return log::warn!("{topic}: a membership announcement without p, op or u: {data:?}");
        };
        if process == cluster.process {
            return;
        }
        let Some(name) = topic.splitn(3, '/').nth(2) else {
            return;
        };
        let Some(chan) = self.channels.get_mut(topic) else {
            return;
        };
        match op {
            "+" => {
                let info = v.get("i").cloned().unwrap_or(Value::Null);
                if !chan.has(user) {
                    let added = protocol::member_added(name, user, &info);
                    ctx.broadcast(chan.subscribers.iter(), Message::Text(&added));
                }
                chan.remote
                    .entry(user.to_owned())
                    .or_default()
                    .insert(process.to_owned(), info);
            }
            "-" => remove_remote(ctx, chan, name, user, process),
            _ => log::warn!("{topic}: a membership announcement with op {op:?}"),
        }
    }

    /// Another process is gone (its liveness key expired): its members
    /// leave every channel, here and in Redis.
    fn purge(&mut self, ctx: &mut Context<'_>, process: &str) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        log::info!("Pusher: process {process} is gone; its presence members leave");
        ctx.count("pusher_cluster", "process_gone");
        for (topic, chan) in &mut self.channels {
            // `pusher/{app id}/{channel}`.
            let mut parts = topic.splitn(3, '/').skip(1);
            let (Some(app_id), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let users: Vec<String> = chan
                .remote
                .iter()
                .filter(|(_, procs)| procs.contains_key(process))
                .map(|(u, _)| u.clone())
                .collect();
            let key = cluster.keys.members(app_id, name);
            for user in users {
                remove_remote(ctx, chan, name, &user, process);
                let field = format!("{process} {user}");
                ctx.redis(cluster.redis, &[b"HDEL", key.as_bytes(), field.as_bytes()]);
            }
        }
    }

    /// The heartbeat of this process, and a liveness check of every other
    /// process with members here.
    fn heartbeat(&mut self, ctx: &mut Context<'_>) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let key = cluster.keys.alive(&cluster.process);
        let ttl = HEARTBEAT_TTL.to_string();
        ctx.redis(
            cluster.redis,
            &[b"SET", key.as_bytes(), b"1", b"EX", ttl.as_bytes()],
        );
        let mut others: Vec<&String> = self
            .channels
            .values()
            .flat_map(|c| c.remote.values().flat_map(|p| p.keys()))
            .collect();
        others.sort();
        others.dedup();
        for process in others {
            if cluster.checks.values().any(|p| p == process) {
                continue;
            }
            let key = cluster.keys.alive(process);
            if let Some(t) = ctx.redis(cluster.redis, &[b"EXISTS", key.as_bytes()]) {
                cluster.checks.insert(t, process.clone());
            }
        }
    }

    /// A reply from the cluster's Redis, or `Err` when it failed or did
    /// not come within [`CLUSTER_WAIT`]: what was waiting for it goes on.
    fn cluster_answer(
        &mut self,
        ctx: &mut Context<'_>,
        ticket: Ticket,
        result: Result<&RespReply, String>,
    ) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.since.remove(&ticket);
        if let Some(asked) = cluster.asked.remove(&ticket) {
            return match asked {
                Asked::Join(pending) => {
                    let members = result.and_then(|r| members_of(r, &cluster.process));
                    self.joined_cluster(ctx, *pending, members)
                }
                Asked::Users(pending) => {
                    let members = result.and_then(|r| members_of(r, &cluster.process));
                    self.answer_users(ctx, pending, members)
                }
                Asked::Count { app, name, came } => {
                    let count = result.and_then(keys::count);
                    let guess = if came {
                        Count::Occupied
                    } else {
                        Count::Vacating
                    };
                    self.counted(ctx, app, &name, count, guess)
                }
                Asked::Conns { app } => match result.and_then(keys::others) {
                    Ok(n) => self.open_elsewhere[app] = usize::try_from(n).unwrap_or(usize::MAX),
                    Err(why) => {
                        ctx.count("pusher_cluster", "redis_error");
                        log::warn!(
                            "Pusher app {}: the other processes' connections are unknown ({why}); the quota counts {} as of before",
                            self.apps[app].id,
                            self.open_elsewhere[app]
                        );
                    }
                },
                Asked::Confirm { app, name } => {
                    let confirmed = result.and_then(keys::confirmed);
                    self.vacated(ctx, app, &name, confirmed)
                }
                Asked::Info { conn, name, info } => {
                    Self::answer_info(ctx, conn, &name, &info, result.and_then(keys::info))
                }
                Asked::TriggerInfo { id, name } => {
                    let counts = result.and_then(keys::info);
                    self.trigger_counted(ctx, id, name, counts)
                }
                Asked::List { conn, info } => {
                    Self::answer_list(ctx, conn, &info, result.and_then(keys::list))
                }
                Asked::Cache(pending) => {
                    let last = result.and_then(keys::cached);
                    self.cached_fetched(ctx, *pending, last)
                }
            };
        }
        if let Some(process) = cluster.checks.remove(&ticket)
            && let Ok(RespReply::Integer(0)) = result
        {
            self.purge(ctx, &process);
        }
    }

    /// Whatever waits for Redis longer than [`CLUSTER_WAIT`] goes on
    /// without it (a late reply is then ignored).
    fn expire_waits(&mut self, ctx: &mut Context<'_>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let now = ctx.now();
        let late: Vec<Ticket> = cluster
            .since
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= CLUSTER_WAIT)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            let why = format!("Redis did not answer within {CLUSTER_WAIT:?}");
            self.cluster_answer(ctx, t, Err(why));
        }
    }

    /// Leaves every channel of a connection that is going.
    fn forget(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let Some(c) = self.conns.remove(conn) else {
            return;
        };
        self.open[c.app] -= 1;
        for name in &c.channels {
            let topic = topic(&self.apps[c.app], name);
            self.leave(ctx, c.app, conn, &topic, name);
        }
    }
}

/// Keeps `text` as the last event of the cache channel `topic`.
fn remember(
    cached: &mut HashMap<String, (String, Instant)>,
    topic: &str,
    text: &str,
    now: Instant,
) {
    if let Some(entry) = cached.get_mut(topic) {
        *entry = (text.to_owned(), now);
    } else if cached.len() < MAX_CACHED {
        cached.insert(topic.to_owned(), (text.to_owned(), now));
    } else {
        log::warn!("cache channel {topic} not remembered: {MAX_CACHED} are already");
    }
}

/// `process` no longer has `user` on the presence channel `name`: the
/// subscribers here hear of it if nobody else has them.
fn remove_remote(ctx: &mut Context<'_>, chan: &mut Chan, name: &str, user: &str, process: &str) {
    let Some(procs) = chan.remote.get_mut(user) else {
        return;
    };
    procs.remove(process);
    if procs.is_empty() {
        chan.remote.remove(user);
        if !chan.members.contains_key(user) {
            let removed = protocol::member_removed(name, user);
            ctx.broadcast(chan.subscribers.iter(), Message::Text(&removed));
        }
    }
}

/// Tells the other processes that this one's first connection of `user`
/// came to presence channel `name` (`+`) or its last went (`-`), and
/// keeps it in the channel's Redis hash for those that subscribe later.
fn announce(
    ctx: &mut Context<'_>,
    cluster: &Cluster,
    app: &PusherApp,
    name: &str,
    op: &str,
    user: &str,
    info: &Value,
) {
    let key = cluster.keys.members(&app.id, name);
    let field = format!("{} {user}", cluster.process);
    if op == "+" {
        let value = info.to_string();
        ctx.redis(
            cluster.redis,
            &[b"HSET", key.as_bytes(), field.as_bytes(), value.as_bytes()],
        );
    } else {
        ctx.redis(cluster.redis, &[b"HDEL", key.as_bytes(), field.as_bytes()]);
    }
    let data = json!({"p": cluster.process, "op": op, "u": user, "i": info});
    ctx.publish(Event::new(control_topic(app, name), &data));
}

/// The fields of a channel's members hash (`HGETALL`) but this process's:
/// (process, user, info).
fn members_of(
    reply: &crate::clients::resp::Reply,
    own: &str,
) -> Result<Vec<(String, String, Value)>, String> {
    use crate::clients::resp::Reply as R;
    let R::Array(Some(items)) = reply else {
        return Err(format!("HGETALL answered {reply:?}"));
    };
    let mut out = Vec::new();
    for pair in items.chunks(2) {
        let [R::Bulk(Some(field)), R::Bulk(Some(value))] = pair else {
            continue;
        };
        let field = String::from_utf8_lossy(field);
        let Some((process, user)) = field.split_once(' ') else {
            continue;
        };
        if process == own {
            continue;
        }
        let info = serde_json::from_slice(value).unwrap_or(Value::Null);
        out.push((process.to_owned(), user.to_owned(), info));
    }
    Ok(out)
}

/// The attributes `info` asks for (`subscription_count`, and
/// `user_count` of presence channels) of the channel `name`.
fn attributes(name: &str, info: &str, subs: u64, users: u64) -> Map<String, Value> {
    let mut out = Map::new();
    for want in info.split(',') {
        match want {
            "subscription_count" => {
                out.insert(want.into(), json!(subs));
            }
            "user_count" if name.starts_with("presence-") => {
                out.insert(want.into(), json!(users));
            }
            _ => {}
        }
    }
    out
}

/// A trigger's answer: `{"channels": {name: attributes}}` for one event
/// with `info`, `{"batch": [attributes, ...]}` for a batch with any
/// (`{}` for an event without), else `{}`; `counts` gives a channel's
/// (subscribers, users).
fn trigger_answer(
    events: &[Trigger],
    batch: bool,
    mut counts: impl FnMut(&str) -> (u64, u64),
) -> Value {
    let mut attrs = |name: &str, info: &str| {
        let (subs, users) = counts(name);
        Value::Object(attributes(name, info, subs, users))
    };
    if batch {
        if events.iter().all(|t| t.info.is_none()) {
            return json!({});
        }
        let list: Vec<Value> = events
            .iter()
            .map(|t| match (&t.info, t.channels.first()) {
                (Some(info), Some(name)) => attrs(name, info),
                _ => json!({}),
            })
            .collect();
        return json!({ "batch": list });
    }
    let Some(t) = events.first() else {
        return json!({});
    };
    let Some(info) = &t.info else {
        return json!({});
    };
    let channels: Map<String, Value> = t
        .channels
        .iter()
        .map(|name| (name.clone(), attrs(name, info)))
        .collect();
    json!({ "channels": channels })
}

/// Answers an API request that waited for the cluster: `page`, or 503
/// when the cluster's `what` could not be read (logged, counted).
fn respond_from_cluster(
    ctx: &mut Context<'_>,
    conn: ConnId,
    page: Result<Page, String>,
    what: &str,
) {
    let page = page.unwrap_or_else(|why| {
        ctx.count("pusher_cluster", "redis_error");
        log::warn!("Pusher API: the cluster's {what} are unknown: {why}");
        api_error(503, &format!("the cluster's {what} are unreachable"))
    });
    ctx.count(
        "pusher_api",
        if page.status == 200 { "ok" } else { "refused" },
    );
    ctx.respond(conn, page);
}

fn api_error(status: u16, reason: &str) -> Page {
    Page::json(status, json!({ "error": reason }).to_string())
}

impl Application for PusherServer {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.sweep = Some(ctx.add_periodic_timer(Duration::from_secs(1)));
        self.heartbeat(ctx);
    }

    /// Closes every Pusher connection with 4200, which tells pusher-js to
    /// reconnect at once (a 1001 would make it wait a second), so that
    /// its clients reach the next process or a sibling without delay.
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        for (id, _) in self.conns.iter() {
            ctx.close(id, code::RECONNECT, "server restarting, reconnect now");
        }
    }

    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        let api = req
            .path
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|p| p.starts_with("/apps/"));
        if api {
            match self.api(ctx, conn, req) {
                Some(page) => Http::Respond(page),
                None => Http::Later,
            }
        } else {
            Http::Pass
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        let key = req
            .path
            .strip_prefix(self.prefix.as_str())
            .and_then(|p| p.strip_prefix("/app/"))
            .unwrap_or("");
        let Some(app) = self.app_by_key(key) else {
            ctx.count("pusher_connections", "unknown_app");
            log::info!(
                "{conn} {}: Pusher connection for unknown app key {key:?}",
                req.peer
            );
            Self::error(ctx, conn, Some(code::APP_UNKNOWN), "unknown app key");
            return ctx.close(conn, code::APP_UNKNOWN, "unknown app key");
        };
        let origin = req.header("origin");
        if !super::origin::origin_allowed(&self.apps[app].allowed_origins, origin) {
            ctx.count("pusher_connections", "origin_refused");
            log::info!(
                "{conn} {}: Pusher app {} refuses origin {origin:?}",
                req.peer,
                self.apps[app].id
            );
            Self::error(ctx, conn, Some(code::UNAUTHORIZED), "origin not allowed");
            return ctx.close(conn, code::UNAUTHORIZED, "origin not allowed");
        }
        let version = req.query_param("protocol");
        let refusal = match version.map(str::parse::<u32>) {
            None => Some((code::NO_PROTOCOL, "no protocol version given")),
            Some(Err(_)) => Some((
                code::INVALID_VERSION,
                "the protocol version is not a number",
            )),
            Some(Ok(v)) if !(5..=PROTOCOL).contains(&v) => {
                Some((code::UNSUPPORTED_PROTOCOL, "unsupported protocol version"))
            }
            Some(Ok(_)) => None,
        };
        if let Some((code, why)) = refusal {
            ctx.count("pusher_connections", "bad_protocol");
            Self::error(ctx, conn, Some(code), why);
            return ctx.close(conn, code, why);
        }
        if let Some(most) = self.apps[app].limits.max_connections
            && self.open[app] + self.open_elsewhere[app] >= most
        {
            ctx.count("pusher_connections", "over_quota");
            log::warn!(
                "{conn} {}: Pusher app {} is at its {most} connections; refused with 4004",
                req.peer,
                self.apps[app].id
            );
            let why = "over connection quota";
            Self::error(ctx, conn, Some(code::OVER_QUOTA), why);
            return ctx.close(conn, code::OVER_QUOTA, why);
        }
        self.open[app] += 1;
        let socket_id = self.socket_id(conn);
        let now = ctx.now();
        ctx.send_text(
            conn,
            &protocol::connection_established(&socket_id, self.apps[app].limits.activity_timeout),
        );
        ctx.count("pusher_connections", "ok");
        self.conns.insert(
            conn,
            Conn {
                app,
                socket_id,
                channels: Vec::new(),
                user: None,
                last_seen: now,
                ping_sent: None,
                burst: (0, now),
            },
        );
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.last_seen = now;
        c.ping_sent = None;
        let Message::Text(text) = msg else {
            return Self::error(ctx, conn, None, "messages are JSON text");
        };
        let decoded = match ClientMessage::decode(text) {
            Ok(m) => m,
            Err(e) => {
                ctx.count("pusher_messages", "malformed");
                return Self::error(ctx, conn, None, &e.to_string());
            }
        };
        match decoded {
            ClientMessage::Ping => {
                ctx.send_text(conn, &protocol::pong());
            }
            ClientMessage::Pong | ClientMessage::Other { .. } => {}
            ClientMessage::Subscribe {
                channel,
                auth,
                channel_data,
            } => self.subscribe(
                ctx,
                conn,
                &channel,
                auth.as_deref(),
                channel_data.as_deref(),
            ),
            ClientMessage::Unsubscribe { channel } => self.unsubscribe(ctx, conn, &channel),
            ClientMessage::Signin { auth, user_data } => self.signin(ctx, conn, &auth, &user_data),
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => self.client_event(ctx, conn, &event, &channel, &data, text.len()),
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, _code: u16, _reason: &str) {
        self.forget(ctx, conn);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if Some(timer) == self.batch_timer {
            self.batch_timer = None;
            return self.send_batches(ctx);
        }
        if let Some(hook) = self.retries.remove(&timer) {
            return self.post(ctx, hook);
        }
        if Some(timer) == self.sweep {
            self.check_activity(ctx);
            self.release_held(ctx);
            self.write_counts(ctx);
            self.expire_waits(ctx);
            if let Some(cluster) = &mut self.cluster {
                cluster.ticks += 1;
                if cluster.ticks >= HEARTBEAT_EVERY {
                    cluster.ticks = 0;
                    self.heartbeat(ctx);
                }
            }
            let now = ctx.now();
            self.cached
                .retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
        }
    }

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if let Reply::Http(result) = &reply
            && let Some(hook) = self.hooks_out.remove(&ticket)
        {
            match result {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    ctx.count("pusher_webhooks", "ok");
                }
                Ok(resp) => self.retry(ctx, hook, &format!("status {}", resp.status)),
                Err(e) => self.retry(ctx, hook, &e.to_string()),
            }
            return;
        }
        if let Reply::Redis(result) = &reply
            && self.cluster.is_some()
        {
            let result = result.as_ref().map_err(|e| e.to_string());
            return self.cluster_answer(ctx, ticket, result);
        }
        let Reply::Bus(event) = reply else {
            return;
        };
        if let Some(topic) = self.by_control.get(&ticket) {
            let topic = topic.clone();
            return self.remote_change(ctx, &topic, &event.data);
        }
        let Some(topic) = self.by_subscription.get(&ticket) else {
            return;
        };
        let Some(chan) = self.channels.get(topic) else {
            return;
        };
        // A cache channel remembers the last event from the API, also
        // one another process triggered; client events are not kept.
        if chan.cache && !event.data.starts_with("{\"event\":\"client-") {
            remember(&mut self.cached, topic, &event.data, ctx.now());
        }
        let conns = &self.conns;
        let targets = chan.subscribers.iter().filter(|&s| {
            conns
                .get(s)
                .is_some_and(|c| event.admits(&c.socket_id, c.user.as_deref()))
        });
        ctx.broadcast(targets, Message::Text(&event.data));
    }
}
