//! The WAMP v2 router: sessions in realms, a broker and a dealer, driven
//! by the WAMP route's [`crate::wamp::WampServer`] for connections that
//! chose `wamp.2.json` or `wamp.2.msgpack`.
//!
//! The broker shares topics with WAMP v1 through the bus: a v2 PUBLISH is
//! delivered to this router's subscribers at once and handed to the bus
//! beside them (so v1 sessions, other apps and, with the Redis bus, other
//! processes get it), and bus events (v1 publishes, pushes from the
//! backend, other processes) reach v2 subscribers of the topic. Topics of
//! the first realm are the plain URIs v1 uses; those of other realms are
//! `urn:sprocket:realm:{realm}:{uri}` on the bus.
//!
//! Everything a session holds is bounded ([`Limits`]); what goes past a
//! bound gets an ERROR naming it, never silence.

use super::codec;
use super::uri::{self, Policy, Rules};
use super::{Dict, Id, List, MAX_ID, Message, Serializer, code};
use crate::app::{ConnId, ConnMap, Context, Message as WsMessage, Ticket, TimerId};
use crate::ws::close;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Bounds on what one session may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Subscriptions per session.
    pub subscriptions: usize,
    /// Registrations per session.
    pub registrations: usize,
    /// Calls a session may have waiting for their results.
    pub calls: usize,
    /// Invocations waiting for one callee's YIELD.
    pub invocations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            subscriptions: 1024,
            registrations: 256,
            calls: 1000,
            invocations: 10_000,
        }
    }
}

/// The error and close URIs the router sends, beside the application's
/// own; each constant is the URI its name spells.
#[allow(missing_docs)]
pub mod error {
    pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
    pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
    pub const INVALID_URI: &str = "wamp.error.invalid_uri";
    pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
    pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
    pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
    pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
    pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
    pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
    pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
    pub const CANCELED: &str = "wamp.error.canceled";
    pub const PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY: &str =
        "wamp.error.procedure_exists_with_different_invocation_policy";
    pub const UNAVAILABLE: &str = "wamp.error.unavailable";
    pub const GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
    pub const SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
    /// A per-session bound ([`super::Limits`]) was reached.
    pub const LIMIT: &str = "sprocket.error.limit_exceeded";
}

/// Where the first realm's topics and other realms' topics live on the bus.
pub fn bus_topic(realm_index: usize, realm: &str, uri: &str) -> String {
    if realm_index == 0 {
        uri.to_owned()
    } else {
        format!("urn:sprocket:realm:{realm}:{uri}")
    }
}

/// A CALL nobody in the realm registered, for the WAMP route's
/// application (its Rust procedures and backend forwarding) to answer
/// through [`Router::app_result`] / [`Router::app_error`].
#[derive(Clone, Debug, PartialEq)]
pub struct AppCall {
    /// The caller's request id.
    pub request: Id,
    /// The procedure URI.
    pub procedure: String,
    /// Positional arguments (keyword arguments, which WAMP v1 apps cannot
    /// take, come as one last argument when there are any).
    pub args: List,
}

/// What the router hands to the WAMP route's application.
#[derive(Clone, Debug, PartialEq)]
pub enum Upcall {
    /// A CALL for the application's procedures.
    Call(AppCall),
    /// May the session subscribe to `topic`? The answer comes back through
    /// [`Router::decide_subscription`], now or later.
    Subscribe {
        /// The exact topic URI.
        topic: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Invoke {
    Single,
    RoundRobin,
    Random,
    First,
    Last,
}

impl Invoke {
    fn parse(v: Option<&Value>) -> Option<Invoke> {
        Some(match v {
            None => Invoke::Single,
            Some(Value::String(s)) => match s.as_str() {
                "single" => Invoke::Single,
                "roundrobin" => Invoke::RoundRobin,
                "random" => Invoke::Random,
                "first" => Invoke::First,
                "last" => Invoke::Last,
                _ => return None,
            },
            Some(_) => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Invoke::Single => "single",
            Invoke::RoundRobin => "roundrobin",
            Invoke::Random => "random",
            Invoke::First => "first",
            Invoke::Last => "last",
        }
    }
}

struct Subscription {
    id: Id,
    topic: String,
    policy: Policy,
    created: String,
    subscribers: Vec<ConnId>,
}

struct Registration {
    id: Id,
    procedure: String,
    invoke: Invoke,
    created: String,
    /// Callees in registration order.
    callees: Vec<ConnId>,
    /// The next callee of a round robin.
    next: usize,
}

/// An invocation waiting for its callee's answer.
struct Pending {
    caller: ConnId,
    call: Id,
    callee: ConnId,
    progress: bool,
    timer: Option<TimerId>,
    /// The caller was answered (skip/killnowait cancel, timeout): later
    /// answers of the callee are dropped.
    answered: bool,
    /// Canceled with `kill`: the callee's ERROR reaches the caller as
    /// `wamp.error.canceled`.
    killed: bool,
}

#[derive(Default)]
struct Realm {
    name: String,
    sessions: HashMap<Id, ConnId>,
    subs: HashMap<Id, Subscription>,
    exact: HashMap<String, Id>,
    /// Prefix and wildcard subscriptions, by (policy, pattern).
    patterns: HashMap<(Policy, String), Id>,
    regs: HashMap<Id, Registration>,
    procedures: HashMap<String, Id>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for HELLO.
    Hello,
    /// Joined a realm.
    Joined,
    /// Told GOODBYE by the router (it is shutting down): the client's
    /// GOODBYE, or anything else, is not answered.
    Leaving,
}

struct Session {
    serializer: Serializer,
    state: State,
    id: Id,
    /// `id` in decimal: how the bus and v1 name this session.
    id_text: String,
    realm: usize,
    authid: String,
    authrole: String,
    authmethod: &'static str,
    /// The client's roles, for the features it announced.
    roles: Dict,
    subscriptions: Vec<Id>,
    registrations: Vec<Id>,
    /// This session's calls waiting: its request id → the invocation.
    calls: HashMap<Id, Key>,
    /// Exact subscriptions the application is deciding: topic → the
    /// SUBSCRIBE requests waiting for it.
    asking: HashMap<String, Vec<Id>>,
    /// Its calls handed to the application (see [`AppCall`]).
    app_calls: std::collections::HashSet<Id>,
    /// Invocations this session (as callee) owes an answer.
    invocations: usize,
    /// The last id of the router's requests to this session.
    next_request: Id,
}

impl Session {
    fn feature(&self, role: &str, feature: &str) -> bool {
        self.roles
            .get(role)
            .and_then(|r| r.get("features"))
            .and_then(|f| f.get(feature))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// An invocation's key: the callee and its request id (request ids are
/// per session).
type Key = (ConnId, Id);

/// A small PRNG for publication, subscription and registration ids
/// (splitmix64, seeded from the OS): ids need to be unique and spread,
/// not secret. Session ids come from the OS directly.
struct Ids(u64);

impl Ids {
    fn new() -> Ids {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Ids(u64::from_le_bytes(seed))
    }

    fn next(&mut self) -> Id {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % MAX_ID) + 1
    }
}

/// A session id in `1..=2^53` from the OS's randomness.
fn session_id() -> Option<Id> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes) % MAX_ID + 1)
}

/// The WAMP v2 router of one WAMP route (see the module docs).
pub struct Router {
    realms: Vec<Realm>,
    sessions: ConnMap<Session>,
    limits: Limits,
    agent: String,
    ids: Ids,
    /// Invocations waiting, by (callee, the callee's request id).
    pending: HashMap<Key, Pending>,
    timers: HashMap<TimerId, Key>,
    /// The bus subscription of each (realm, exact topic) with v2
    /// subscribers here, and back.
    bus: HashMap<(usize, String), Ticket>,
    bus_topics: HashMap<Ticket, (usize, String)>,
    /// Sessions of every realm, by id (session ids are unique across
    /// realms, so the meta API and exclusion lists need no realm).
    by_id: HashMap<Id, ConnId>,
}

/// The broker's and the dealer's announced features.
fn router_roles() -> Value {
    json!({
        "broker": {"features": {
            "publisher_exclusion": true,
            "publisher_identification": true,
            "subscriber_blackwhite_listing": true,
            "pattern_based_subscription": true,
            "subscription_meta_api": true,
            "session_meta_api": true,
        }},
        "dealer": {"features": {
            "progressive_call_results": true,
            "call_timeout": true,
            "call_canceling": true,
            "caller_identification": true,
            "shared_registration": true,
            "session_meta_api": true,
        }},
    })
}

fn now_iso() -> String {
    // Seconds since the epoch as an ISO-8601 UTC timestamp, for the meta
    // API's `created` fields.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic
/// Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn ids_of(v: Option<&Value>) -> Result<Option<Vec<Id>>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_u64().filter(|&n| (1..=MAX_ID).contains(&n)).ok_or(()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(()),
    }
}

fn strings_of(v: Option<&Value>) -> Result<Option<Vec<String>>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned).ok_or(()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(()),
    }
}

fn bool_of(options: &Dict, key: &str) -> Result<Option<bool>, ()> {
    match options.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(()),
    }
}

/// Who a publication goes to.
#[derive(Default)]
struct Audience {
    exclude: Vec<Id>,
    eligible: Option<Vec<Id>>,
    exclude_authid: Option<Vec<String>>,
    eligible_authid: Option<Vec<String>>,
    exclude_authrole: Option<Vec<String>>,
    eligible_authrole: Option<Vec<String>>,
    /// Bus events: their own admission (exclude/eligible as strings, user).
    bus: Option<Arc<crate::bus::Event>>,
}

impl Audience {
    fn admits(&self, ctx: &Context<'_>, conn: ConnId, s: &Session) -> bool {
        if let Some(event) = &self.bus {
            return event.admits(&s.id_text, ctx.user(conn).as_deref());
        }
        !self.exclude.contains(&s.id)
            && self.eligible.as_ref().is_none_or(|e| e.contains(&s.id))
            && self
                .exclude_authid
                .as_ref()
                .is_none_or(|e| !e.contains(&s.authid))
            && self
                .eligible_authid
                .as_ref()
                .is_none_or(|e| e.contains(&s.authid))
            && self
                .exclude_authrole
                .as_ref()
                .is_none_or(|e| !e.contains(&s.authrole))
            && self
                .eligible_authrole
                .as_ref()
                .is_none_or(|e| e.contains(&s.authrole))
    }
}

/// The WAMP v1 view of a v2 payload: one positional argument alone is
/// the event; otherwise the list, the dict, or both in
/// `{"args", "kwargs"}` (`docs/wamp.md`, "v1 and v2 together").
pub fn v1_payload(args: Option<&List>, kwargs: Option<&Dict>) -> Value {
    let args = args.filter(|a| !a.is_empty());
    let kwargs = kwargs.filter(|k| !k.is_empty());
    match (args, kwargs) {
        (None, None) => Value::Null,
        (Some(a), None) if a.len() == 1 => a[0].clone(),
        (Some(a), None) => Value::Array(a.clone()),
        (None, Some(k)) => Value::Object(k.clone()),
        (Some(a), Some(k)) => json!({"args": a, "kwargs": k}),
    }
}

impl Router {
    /// A router serving `realms` (the first is the one v1 shares); WELCOME
    /// names it `agent`.
    pub fn new(realms: Vec<String>, agent: String, limits: Limits) -> Router {
        let realms = realms
            .into_iter()
            .map(|name| Realm {
                name,
                ..Realm::default()
            })
            .collect();
        Router {
            realms,
            sessions: ConnMap::new(),
            limits,
            agent,
            ids: Ids::new(),
            pending: HashMap::new(),
            timers: HashMap::new(),
            bus: HashMap::new(),
            bus_topics: HashMap::new(),
            by_id: HashMap::new(),
        }
    }

    /// The realms served, first the default.
    pub fn realms(&self) -> impl Iterator<Item = &str> {
        self.realms.iter().map(|r| r.name.as_str())
    }

    /// Whether `conn` speaks WAMP v2 here.
    pub fn has(&self, conn: ConnId) -> bool {
        self.sessions.contains(conn)
    }

    /// Whether `ticket` is one of this router's bus subscriptions.
    pub fn owns_ticket(&self, ticket: Ticket) -> bool {
        self.bus_topics.contains_key(&ticket)
    }

    /// Whether `timer` is one of this router's call timeouts.
    pub fn owns_timer(&self, timer: TimerId) -> bool {
        self.timers.contains_key(&timer)
    }

    /// Sessions joined, in every realm.
    pub fn session_count(&self) -> usize {
        self.by_id.len()
    }

    /// A connection that chose `serializer` opened: it has to say HELLO.
    pub fn open(&mut self, conn: ConnId, serializer: Serializer) {
        self.sessions.insert(
            conn,
            Session {
                serializer,
                state: State::Hello,
                id: 0,
                id_text: String::new(),
                realm: 0,
                authid: String::new(),
                authrole: String::new(),
                authmethod: "anonymous",
                roles: Dict::new(),
                subscriptions: Vec::new(),
                registrations: Vec::new(),
                calls: HashMap::new(),
                asking: HashMap::new(),
                app_calls: std::collections::HashSet::new(),
                invocations: 0,
                next_request: 0,
            },
        );
    }

    fn send(&self, ctx: &mut Context<'_>, conn: ConnId, msg: &Message) -> bool {
        let Some(s) = self.sessions.get(conn) else {
            return false;
        };
        send_as(ctx, conn, s.serializer, msg)
    }

    fn error(
        &self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request_type: u64,
        request: Id,
        uri: &str,
        text: &str,
    ) {
        let msg = Message::Error {
            request_type,
            request,
            details: Dict::new(),
            error: uri.to_owned(),
            args: (!text.is_empty()).then(|| vec![Value::String(text.to_owned())]),
            kwargs: None,
        };
        self.send(ctx, conn, &msg);
    }

    /// ABORTs the session with `reason` and closes the connection.
    fn abort(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &str, message: &str) {
        log::info!("{conn}: WAMP v2 abort {reason}: {message}");
        let mut details = Dict::new();
        details.insert("message".into(), Value::String(message.to_owned()));
        self.send(
            ctx,
            conn,
            &Message::Abort {
                details,
                reason: reason.to_owned(),
            },
        );
        ctx.count(
            "wamp2_aborts",
            if reason == error::PROTOCOL_VIOLATION {
                "protocol_violation"
            } else {
                "other"
            },
        );
        self.leave(ctx, conn);
        let code = if reason == error::PROTOCOL_VIOLATION {
            close::PROTOCOL_ERROR
        } else {
            close::NORMAL
        };
        ctx.close(conn, code, message);
    }

    /// A message from a v2 connection. A CALL the realm cannot route comes
    /// back for the application.
    pub fn message(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        msg: WsMessage<'_>,
        guarded: bool,
    ) -> Option<Upcall> {
        let serializer = self.sessions.get(conn)?.serializer;
        let decoded = match (serializer.is_binary(), msg) {
            (false, WsMessage::Text(t)) => codec::decode(serializer, t.as_bytes()),
            (true, WsMessage::Binary(b)) => codec::decode(serializer, b),
            _ => {
                let want = if serializer.is_binary() {
                    "binary"
                } else {
                    "text"
                };
                let text = format!("{} messages come in {want} frames", serializer.protocol());
                self.abort(ctx, conn, error::PROTOCOL_VIOLATION, &text);
                return None;
            }
        };
        match decoded {
            Ok(m) => self.handle(ctx, conn, m, guarded),
            Err(e) => {
                ctx.count("wamp2_messages", "invalid");
                self.abort(ctx, conn, error::PROTOCOL_VIOLATION, &e.to_string());
                None
            }
        }
    }

    fn handle(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        msg: Message,
        guarded: bool,
    ) -> Option<Upcall> {
        let state = self.sessions.get(conn)?.state;
        match (state, msg) {
            (State::Leaving, _) => {}
            (State::Hello, Message::Hello { realm, details }) => {
                self.hello(ctx, conn, realm, details)
            }
            (State::Hello, Message::Abort { .. }) => ctx.close(conn, close::NORMAL, ""),
            (State::Hello, m) => {
                let text = format!("message type {} before HELLO", m.code());
                self.abort(ctx, conn, error::PROTOCOL_VIOLATION, &text);
            }
            (State::Joined, Message::Hello { .. }) => {
                self.abort(ctx, conn, error::PROTOCOL_VIOLATION, "HELLO in a session");
            }
            (State::Joined, Message::Goodbye { .. }) => {
                let msg = Message::Goodbye {
                    details: Dict::new(),
                    reason: error::GOODBYE_AND_OUT.to_owned(),
                };
                self.send(ctx, conn, &msg);
                self.leave(ctx, conn);
                // The session is over; so is the transport, as Crossbar
                // does (AutobahnJS reports a connection it closes itself
                // after GOODBYE as lost).
                ctx.close(conn, close::NORMAL, "");
            }
            (State::Joined, Message::Abort { reason, .. }) => {
                log::debug!("{conn}: WAMP v2 client aborted: {reason}");
                self.leave(ctx, conn);
                ctx.close(conn, close::NORMAL, "");
            }
            (
                State::Joined,
                Message::Subscribe {
                    request,
                    options,
                    topic,
                },
            ) => return self.subscribe(ctx, conn, request, &options, topic, guarded),
            (
                State::Joined,
                Message::Unsubscribe {
                    request,
                    subscription,
                },
            ) => self.unsubscribe(ctx, conn, request, subscription),
            (
                State::Joined,
                Message::Publish {
                    request,
                    options,
                    topic,
                    args,
                    kwargs,
                },
            ) => self.publish(ctx, conn, request, &options, &topic, args, kwargs),
            (
                State::Joined,
                Message::Register {
                    request,
                    options,
                    procedure,
                },
            ) => self.register(ctx, conn, request, &options, procedure),
            (
                State::Joined,
                Message::Unregister {
                    request,
                    registration,
                },
            ) => self.unregister(ctx, conn, request, registration),
            (
                State::Joined,
                Message::Call {
                    request,
                    options,
                    procedure,
                    args,
                    kwargs,
                },
            ) => {
                return self
                    .call(ctx, conn, request, &options, procedure, args, kwargs)
                    .map(Upcall::Call);
            }
            (State::Joined, Message::Cancel { request, options }) => {
                self.cancel(ctx, conn, request, &options)
            }
            (
                State::Joined,
                Message::Yield {
                    request,
                    options,
                    args,
                    kwargs,
                },
            ) => self.yielded(ctx, conn, request, &options, args, kwargs),
            (
                State::Joined,
                Message::Error {
                    request_type: code::INVOCATION,
                    request,
                    details,
                    error,
                    args,
                    kwargs,
                },
            ) => self.invocation_error(ctx, conn, request, details, error, args, kwargs),
            (State::Joined, m) => {
                let text = format!("message type {} is not one a client sends", m.code());
                self.abort(ctx, conn, error::PROTOCOL_VIOLATION, &text);
            }
        }
        None
    }

    fn hello(&mut self, ctx: &mut Context<'_>, conn: ConnId, realm: String, details: Dict) {
        if uri::check(&realm, Rules::Loose, Policy::Exact).is_err() {
            return self.abort(
                ctx,
                conn,
                error::INVALID_URI,
                "the realm is not a valid URI",
            );
        }
        let Some(index) = self.realms.iter().position(|r| r.name == realm) else {
            let text = format!("no realm {realm:?} here");
            return self.abort(ctx, conn, error::NO_SUCH_REALM, &text);
        };
        let roles = match details.get("roles") {
            Some(Value::Object(r)) if !r.is_empty() => r.clone(),
            _ => {
                return self.abort(
                    ctx,
                    conn,
                    error::PROTOCOL_VIOLATION,
                    "HELLO.Details.roles must be a non-empty dict",
                );
            }
        };
        let Some(id) = session_id().filter(|id| !self.by_id.contains_key(id)) else {
            log::error!("{conn}: no randomness for a WAMP session id");
            return self.abort(ctx, conn, error::UNAVAILABLE, "no session id");
        };
        let user = ctx.user(conn);
        let (authid, authrole, authmethod) = match &user {
            Some(u) => (u.to_string(), "user".to_owned(), "session"),
            None => (
                format!("anonymous-{id}"),
                "anonymous".to_owned(),
                "anonymous",
            ),
        };
        let Some(s) = self.sessions.get_mut(conn) else {
            return;
        };
        s.state = State::Joined;
        s.id = id;
        s.id_text = id.to_string();
        s.realm = index;
        s.authid = authid.clone();
        s.authrole = authrole.clone();
        s.authmethod = authmethod;
        s.roles = roles;
        self.by_id.insert(id, conn);
        self.realms[index].sessions.insert(id, conn);
        let mut welcome = Dict::new();
        welcome.insert("realm".into(), Value::String(realm));
        welcome.insert("authid".into(), Value::String(authid));
        welcome.insert("authrole".into(), Value::String(authrole));
        welcome.insert("authmethod".into(), Value::String(authmethod.to_owned()));
        welcome.insert("authprovider".into(), Value::String("sprocket".into()));
        welcome.insert("roles".into(), router_roles());
        welcome.insert("agent".into(), Value::String(self.agent.clone()));
        self.send(
            ctx,
            conn,
            &Message::Welcome {
                session: id,
                details: welcome,
            },
        );
        ctx.count("wamp2_sessions", "joined");
        let info = self.session_info(conn);
        self.meta_event(ctx, index, "wamp.session.on_join", vec![info]);
    }

    fn session_info(&self, conn: ConnId) -> Value {
        let Some(s) = self.sessions.get(conn) else {
            return Value::Null;
        };
        json!({
            "session": s.id,
            "authid": s.authid,
            "authrole": s.authrole,
            "authmethod": s.authmethod,
            "authprovider": "sprocket",
            "transport": {"type": "websocket", "protocol": s.serializer.protocol()},
        })
    }

    /// The server is shutting down: every joined session is told GOODBYE
    /// `wamp.close.system_shutdown` and leaves its realm (the transport's
    /// close follows).
    pub fn shutdown(&mut self, ctx: &mut Context<'_>) {
        let joined: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.state == State::Joined)
            .map(|(c, _)| c)
            .collect();
        let mut details = Dict::new();
        details.insert("message".into(), "the server is shutting down".into());
        let msg = Message::Goodbye {
            details,
            reason: error::SYSTEM_SHUTDOWN.to_owned(),
        };
        for conn in joined {
            self.send(ctx, conn, &msg);
            self.leave(ctx, conn);
            if let Some(s) = self.sessions.get_mut(conn) {
                s.state = State::Leaving;
            }
        }
    }

    /// The session on `conn` left its realm (GOODBYE, ABORT, or the
    /// connection closed): its subscriptions and registrations end, its
    /// calls are forgotten (their callees interrupted), and its callers
    /// get an error. The connection may say HELLO again.
    fn leave(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let Some(s) = self.sessions.get_mut(conn) else {
            return;
        };
        if s.state != State::Joined {
            return;
        }
        s.state = State::Hello;
        let (id, realm) = (s.id, s.realm);
        let (authid, authrole) = (s.authid.clone(), s.authrole.clone());
        let subs = std::mem::take(&mut s.subscriptions);
        let regs = std::mem::take(&mut s.registrations);
        let calls = std::mem::take(&mut s.calls);
        s.app_calls.clear();
        s.asking.clear();
        s.invocations = 0;
        self.by_id.remove(&id);
        self.realms[realm].sessions.remove(&id);
        for sub in subs {
            self.drop_subscriber(ctx, conn, id, realm, sub);
        }
        for reg in regs {
            self.drop_callee(ctx, conn, id, realm, reg);
        }
        // Its calls: interrupt the callees that can take it.
        for (_, invocation) in calls {
            if let Some(p) = self.pending.remove(&invocation) {
                self.cancel_timer(ctx, p.timer);
                self.interrupt(ctx, p.callee, invocation, "killnowait");
                self.owe_less(p.callee);
            }
        }
        // Invocations it owed: their callers get an error.
        let owed: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| p.callee == conn)
            .map(|(&k, _)| k)
            .collect();
        for invocation in owed {
            if let Some(p) = self.pending.remove(&invocation) {
                self.cancel_timer(ctx, p.timer);
                self.forget_call(p.caller, p.call);
                if !p.answered {
                    self.error(
                        ctx,
                        p.caller,
                        code::CALL,
                        p.call,
                        error::CANCELED,
                        "the callee left",
                    );
                }
            }
        }
        self.meta_event(
            ctx,
            realm,
            "wamp.session.on_leave",
            vec![json!(id), json!(authid), json!(authrole)],
        );
    }

    /// The connection closed.
    pub fn close(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        self.leave(ctx, conn);
        self.sessions.remove(conn);
    }

    // ----- broker ---------------------------------------------------------

    fn subscribe(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        options: &Dict,
        topic: String,
        guarded: bool,
    ) -> Option<Upcall> {
        let fail = |r: &Self, ctx: &mut Context<'_>, uri: &str, text: &str| {
            ctx.count("wamp2_subscriptions", "refused");
            r.error(ctx, conn, code::SUBSCRIBE, request, uri, text)
        };
        let policy = match options.get("match").map(Value::as_str) {
            None | Some(Some("exact")) => Policy::Exact,
            Some(Some("prefix")) => Policy::Prefix,
            Some(Some("wildcard")) => Policy::Wildcard,
            _ => {
                fail(
                    self,
                    ctx,
                    error::INVALID_ARGUMENT,
                    "match must be exact, prefix or wildcard",
                );
                return None;
            }
        };
        if let Err(why) = uri::check(&topic, Rules::Loose, policy) {
            fail(self, ctx, error::INVALID_URI, why);
            return None;
        }
        let s = self.sessions.get(conn)?;
        let realm = s.realm;
        let existing = self.subscription_of(realm, policy, &topic);
        if let Some(id) = existing
            && s.subscriptions.contains(&id)
        {
            // Subscribing again to the same subscription: the same id.
            self.send(
                ctx,
                conn,
                &Message::Subscribed {
                    request,
                    subscription: id,
                },
            );
            return None;
        }
        if s.subscriptions.len() + s.asking.len() >= self.limits.subscriptions {
            let text = format!(
                "at most {} subscriptions a session",
                self.limits.subscriptions
            );
            fail(self, ctx, error::LIMIT, &text);
            return None;
        }
        if policy != Policy::Exact {
            if guarded {
                fail(
                    self,
                    ctx,
                    error::NOT_AUTHORIZED,
                    "pattern-based subscriptions are off while a subscribe backend decides",
                );
                return None;
            }
            self.finish_subscribe(ctx, conn, request, topic, policy);
            return None;
        }
        // The application decides (a subscribe backend may be asked).
        let s = self.sessions.get_mut(conn)?;
        let waiting = s.asking.entry(topic.clone()).or_default();
        waiting.push(request);
        (waiting.len() == 1).then_some(Upcall::Subscribe { topic })
    }

    /// The application's decision on an exact subscription it was asked
    /// about ([`Upcall::Subscribe`]): SUBSCRIBED, or ERROR
    /// `wamp.error.not_authorized` with `reason`. False if nothing waited.
    pub fn decide_subscription(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        topic: &str,
        allowed: Result<(), &str>,
    ) -> bool {
        let Some(requests) = self
            .sessions
            .get_mut(conn)
            .and_then(|s| s.asking.remove(topic))
        else {
            return false;
        };
        for request in requests {
            match allowed {
                Ok(()) => {
                    self.finish_subscribe(ctx, conn, request, topic.to_owned(), Policy::Exact)
                }
                Err(reason) => {
                    ctx.count("wamp2_subscriptions", "refused");
                    self.error(
                        ctx,
                        conn,
                        code::SUBSCRIBE,
                        request,
                        error::NOT_AUTHORIZED,
                        reason,
                    );
                }
            }
        }
        true
    }

    fn subscription_of(&self, realm: usize, policy: Policy, topic: &str) -> Option<Id> {
        let r = &self.realms[realm];
        match policy {
            Policy::Exact => r.exact.get(topic).copied(),
            _ => r.patterns.get(&(policy, topic.to_owned())).copied(),
        }
    }

    fn finish_subscribe(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        topic: String,
        policy: Policy,
    ) {
        let Some(s) = self.sessions.get(conn) else {
            return;
        };
        if s.state != State::Joined {
            return;
        }
        let (realm, sid) = (s.realm, s.id);
        let existing = self.subscription_of(realm, policy, &topic);
        if let Some(id) = existing
            && s.subscriptions.contains(&id)
        {
            self.send(
                ctx,
                conn,
                &Message::Subscribed {
                    request,
                    subscription: id,
                },
            );
            return;
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.ids.next();
                let created = now_iso();
                let r = &mut self.realms[realm];
                r.subs.insert(
                    id,
                    Subscription {
                        id,
                        topic: topic.clone(),
                        policy,
                        created: created.clone(),
                        subscribers: Vec::new(),
                    },
                );
                match policy {
                    Policy::Exact => {
                        r.exact.insert(topic.clone(), id);
                        let bus_name = bus_topic(realm, &r.name, &topic);
                        if !topic.starts_with("wamp.")
                            && let Some(ticket) = ctx.bus_subscribe(&bus_name)
                        {
                            self.bus.insert((realm, topic.clone()), ticket);
                            self.bus_topics.insert(ticket, (realm, topic.clone()));
                        }
                    }
                    _ => {
                        r.patterns.insert((policy, topic.clone()), id);
                    }
                }
                if !topic.starts_with("wamp.") {
                    let info = json!({
                        "id": id, "created": created, "uri": topic,
                        "match": policy_name(policy),
                    });
                    self.meta_event(
                        ctx,
                        realm,
                        "wamp.subscription.on_create",
                        vec![json!(sid), info],
                    );
                }
                id
            }
        };
        if let Some(sub) = self.realms[realm].subs.get_mut(&id) {
            sub.subscribers.push(conn);
        }
        if let Some(s) = self.sessions.get_mut(conn) {
            s.subscriptions.push(id);
        }
        self.send(
            ctx,
            conn,
            &Message::Subscribed {
                request,
                subscription: id,
            },
        );
        ctx.count("wamp2_subscriptions", "ok");
        if !topic.starts_with("wamp.") {
            self.meta_event(
                ctx,
                realm,
                "wamp.subscription.on_subscribe",
                vec![json!(sid), json!(id)],
            );
        }
    }

    fn unsubscribe(&mut self, ctx: &mut Context<'_>, conn: ConnId, request: Id, subscription: Id) {
        let Some(s) = self.sessions.get_mut(conn) else {
            return;
        };
        let Some(pos) = s.subscriptions.iter().position(|&x| x == subscription) else {
            return self.error(
                ctx,
                conn,
                code::UNSUBSCRIBE,
                request,
                error::NO_SUCH_SUBSCRIPTION,
                "not subscribed",
            );
        };
        s.subscriptions.swap_remove(pos);
        let (sid, realm) = (s.id, s.realm);
        self.drop_subscriber(ctx, conn, sid, realm, subscription);
        self.send(
            ctx,
            conn,
            &Message::Unsubscribed {
                request,
                details: None,
            },
        );
    }

    /// Takes `conn` off subscription `id`, removing the subscription (and
    /// its bus subscription) after its last subscriber.
    fn drop_subscriber(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        sid: Id,
        realm: usize,
        id: Id,
    ) {
        let r = &mut self.realms[realm];
        let Some(sub) = r.subs.get_mut(&id) else {
            return;
        };
        sub.subscribers.retain(|&c| c != conn);
        let gone = sub.subscribers.is_empty();
        // Subscriptions to the meta topics are not announced themselves
        // (nor are they by Crossbar).
        let announce = !sub.topic.starts_with("wamp.");
        if announce {
            self.meta_event(
                ctx,
                realm,
                "wamp.subscription.on_unsubscribe",
                vec![json!(sid), json!(id)],
            );
        }
        if !gone {
            return;
        }
        let r = &mut self.realms[realm];
        let Some(sub) = r.subs.remove(&id) else {
            return;
        };
        match sub.policy {
            Policy::Exact => {
                r.exact.remove(&sub.topic);
                if let Some(ticket) = self.bus.remove(&(realm, sub.topic.clone())) {
                    self.bus_topics.remove(&ticket);
                    ctx.bus_unsubscribe(ticket);
                }
            }
            p => {
                r.patterns.remove(&(p, sub.topic.clone()));
            }
        }
        if announce {
            self.meta_event(
                ctx,
                realm,
                "wamp.subscription.on_delete",
                vec![json!(sid), json!(id)],
            );
        }
    }

    /// The subscriptions of `realm` that `topic` matches.
    fn matching(&self, realm: usize, topic: &str) -> Vec<Id> {
        let r = &self.realms[realm];
        let mut out: Vec<Id> = r.exact.get(topic).copied().into_iter().collect();
        for ((policy, pattern), &id) in &r.patterns {
            let hit = match policy {
                Policy::Prefix => uri::prefix_matches(pattern, topic),
                Policy::Wildcard => uri::wildcard_matches(pattern, topic),
                Policy::Exact => false,
            };
            if hit {
                out.push(id);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        options: &Dict,
        topic: &str,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let acknowledge = matches!(options.get("acknowledge"), Some(Value::Bool(true)));
        let fail = |r: &Self, ctx: &mut Context<'_>, uri: &str, text: &str| {
            ctx.count("wamp2_publishes", "refused");
            if acknowledge {
                r.error(ctx, conn, code::PUBLISH, request, uri, text);
            } else {
                log::debug!("{conn}: WAMP v2 publish to {topic:?} dropped: {text}");
            }
        };
        if let Err(why) = uri::check(topic, Rules::Loose, Policy::Exact) {
            return fail(self, ctx, error::INVALID_URI, why);
        }
        if topic.starts_with("wamp.") || topic.starts_with(super::super::META_PREFIX) {
            return fail(
                self,
                ctx,
                error::NOT_AUTHORIZED,
                "topics under wamp. and urn:sprocket:meta: are the router's",
            );
        }
        let parsed = (|| -> Result<(Audience, bool, bool), ()> {
            let exclude_me = bool_of(options, "exclude_me")?.unwrap_or(true);
            let disclose = bool_of(options, "disclose_me")?.unwrap_or(true);
            let a = Audience {
                exclude: ids_of(options.get("exclude"))?.unwrap_or_default(),
                eligible: ids_of(options.get("eligible"))?,
                exclude_authid: strings_of(options.get("exclude_authid"))?,
                eligible_authid: strings_of(options.get("eligible_authid"))?,
                exclude_authrole: strings_of(options.get("exclude_authrole"))?,
                eligible_authrole: strings_of(options.get("eligible_authrole"))?,
                bus: None,
            };
            Ok((a, exclude_me, disclose))
        })();
        let Ok((mut audience, exclude_me, disclose)) = parsed else {
            return fail(
                self,
                ctx,
                error::INVALID_ARGUMENT,
                "exclude/eligible must be lists of session ids, the authid/authrole \
                 lists lists of strings, exclude_me/disclose_me/acknowledge booleans",
            );
        };
        let Some(s) = self.sessions.get(conn) else {
            return;
        };
        let (sid, realm) = (s.id, s.realm);
        let publisher = disclose.then(|| (sid, s.authid.clone(), s.authrole.clone()));
        if exclude_me {
            audience.exclude.push(sid);
        }
        let publication = self.ids.next();
        let r = &self.realms[realm];
        let bus_name = bus_topic(realm, &r.name, topic);
        let durable = ctx.is_durable(&bus_name);
        let own = self.bus.get(&(realm, topic.to_owned())).copied();
        // On a durable topic with an exact subscription here, everyone
        // here gets it from the stream, in its order (the bus event comes
        // in on that subscription and reaches the pattern subscriptions
        // too); otherwise here and now.
        if !(durable && own.is_some()) {
            self.deliver(
                ctx,
                realm,
                topic,
                publication,
                publisher.as_ref(),
                &audience,
                args.as_ref(),
                kwargs.as_ref(),
            );
        }
        // The bus: v1 sessions, other apps, other processes.
        let data = v1_payload(args.as_ref(), kwargs.as_ref());
        let mut exclude: Vec<String> = audience.exclude.iter().map(Id::to_string).collect();
        let mut eligible = audience
            .eligible
            .as_ref()
            .map(|e| e.iter().map(Id::to_string).collect::<Vec<_>>());
        if audience.eligible_authid.is_some() || audience.eligible_authrole.is_some() {
            // Only v2 sessions of this process can be told by authid or
            // authrole: elsewhere, nobody.
            eligible = Some(Vec::new());
        }
        if audience.exclude_authid.is_some() || audience.exclude_authrole.is_some() {
            // Same: the sessions excluded by authid are named by id.
            for (c, s) in self.sessions.iter() {
                if s.state == State::Joined
                    && s.realm == realm
                    && !audience.admits(ctx, c, s)
                    && !exclude.contains(&s.id_text)
                {
                    exclude.push(s.id_text.clone());
                }
            }
        }
        let event = crate::bus::Event {
            exclude,
            eligible,
            publisher: Some(sid.to_string()),
            ..crate::bus::Event::raw(bus_name, data.to_string())
        };
        if durable {
            ctx.publish(event);
        } else {
            ctx.publish_beside(event, own);
        }
        ctx.count("wamp2_publishes", "ok");
        if acknowledge {
            self.send(
                ctx,
                conn,
                &Message::Published {
                    request,
                    publication,
                },
            );
        }
    }

    /// Sends EVENT for `topic` to every matching subscription's admitted
    /// subscribers, encoded once per subscription and serializer.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        ctx: &mut Context<'_>,
        realm: usize,
        topic: &str,
        publication: Id,
        publisher: Option<&(Id, String, String)>,
        audience: &Audience,
        args: Option<&List>,
        kwargs: Option<&Dict>,
    ) -> usize {
        let mut reached = 0;
        for id in self.matching(realm, topic) {
            let Some(sub) = self.realms[realm].subs.get(&id) else {
                continue;
            };
            let mut details = Dict::new();
            if sub.policy != Policy::Exact {
                details.insert("topic".into(), Value::String(topic.to_owned()));
            }
            if let Some((pid, authid, authrole)) = publisher {
                details.insert("publisher".into(), json!(pid));
                details.insert("publisher_authid".into(), json!(authid));
                details.insert("publisher_authrole".into(), json!(authrole));
            }
            let event = Message::Event {
                subscription: id,
                publication,
                details,
                args: args.cloned(),
                kwargs: kwargs.cloned(),
            };
            let (mut json_to, mut mp_to) = (Vec::new(), Vec::new());
            for &c in &sub.subscribers {
                let Some(s) = self.sessions.get(c).filter(|s| s.state == State::Joined) else {
                    continue;
                };
                if !audience.admits(ctx, c, s) {
                    continue;
                }
                match s.serializer {
                    Serializer::Json => json_to.push(c),
                    Serializer::MsgPack => mp_to.push(c),
                }
            }
            if !json_to.is_empty() {
                let bytes = codec::encode(Serializer::Json, &event);
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    reached += ctx.broadcast(json_to, WsMessage::Text(text));
                }
            }
            if !mp_to.is_empty() {
                let bytes = codec::encode(Serializer::MsgPack, &event);
                reached += ctx.broadcast(mp_to, WsMessage::Binary(&bytes));
            }
        }
        reached
    }

    /// A bus event on one of this router's bus subscriptions (a v1
    /// publish, a push from the backend, another process).
    pub fn bus_event(
        &mut self,
        ctx: &mut Context<'_>,
        ticket: Ticket,
        event: &crate::bus::Event,
    ) -> usize {
        let Some((realm, topic)) = self.bus_topics.get(&ticket).cloned() else {
            return 0;
        };
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => {
                log::warn!("bus event on {topic:?} is not JSON, not sent to WAMP v2: {e}");
                return 0;
            }
        };
        let audience = Audience {
            bus: Some(Arc::new(event.clone())),
            ..Audience::default()
        };
        let publication = self.ids.next();
        let args = vec![data];
        self.deliver(
            ctx,
            realm,
            &topic,
            publication,
            None,
            &audience,
            Some(&args),
            None,
        )
    }

    /// Publishes a meta event to the realm's v2 subscribers of `topic`.
    fn meta_event(&mut self, ctx: &mut Context<'_>, realm: usize, topic: &str, args: List) {
        if self.matching(realm, topic).is_empty() {
            return;
        }
        let publication = self.ids.next();
        self.deliver(
            ctx,
            realm,
            topic,
            publication,
            None,
            &Audience::default(),
            Some(&args),
            None,
        );
    }

    // ----- dealer ---------------------------------------------------------

    fn register(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        options: &Dict,
        procedure: String,
    ) {
        let fail = |r: &Self, ctx: &mut Context<'_>, uri: &str, text: &str| {
            ctx.count("wamp2_registrations", "refused");
            r.error(ctx, conn, code::REGISTER, request, uri, text)
        };
        match options.get("match").map(Value::as_str) {
            None | Some(Some("exact")) => {}
            _ => {
                return fail(
                    self,
                    ctx,
                    error::INVALID_ARGUMENT,
                    "only exact registrations are supported",
                );
            }
        }
        let Some(invoke) = Invoke::parse(options.get("invoke")) else {
            return fail(
                self,
                ctx,
                error::INVALID_ARGUMENT,
                "invoke must be single, roundrobin, random, first or last",
            );
        };
        if let Err(why) = uri::check(&procedure, Rules::Loose, Policy::Exact) {
            return fail(self, ctx, error::INVALID_URI, why);
        }
        if procedure.starts_with("wamp.") {
            return fail(
                self,
                ctx,
                error::INVALID_URI,
                "procedures under wamp. are the router's",
            );
        }
        let Some(s) = self.sessions.get(conn) else {
            return;
        };
        let (realm, sid) = (s.realm, s.id);
        if s.registrations.len() >= self.limits.registrations {
            let text = format!(
                "at most {} registrations a session",
                self.limits.registrations
            );
            return fail(self, ctx, error::LIMIT, &text);
        }
        let r = &mut self.realms[realm];
        let id = match r.procedures.get(&procedure).copied() {
            Some(id) => {
                let Some(reg) = r.regs.get_mut(&id) else {
                    return;
                };
                if reg.invoke == Invoke::Single && invoke == Invoke::Single {
                    let text = format!("{procedure} is registered already");
                    return fail(self, ctx, error::PROCEDURE_ALREADY_EXISTS, &text);
                }
                if reg.invoke != invoke {
                    // Crossbar's URI (the spec names none).
                    let text = format!(
                        "{procedure} is registered already with invoke {}",
                        reg.invoke.name()
                    );
                    let uri = error::PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY;
                    return fail(self, ctx, uri, &text);
                }
                if reg.callees.contains(&conn) {
                    let text = format!("{procedure} is registered already by this session");
                    return fail(self, ctx, error::PROCEDURE_ALREADY_EXISTS, &text);
                }
                reg.callees.push(conn);
                id
            }
            None => {
                let id = self.ids.next();
                let created = now_iso();
                r.procedures.insert(procedure.clone(), id);
                r.regs.insert(
                    id,
                    Registration {
                        id,
                        procedure: procedure.clone(),
                        invoke,
                        created: created.clone(),
                        callees: vec![conn],
                        next: 0,
                    },
                );
                let info = json!({
                    "id": id, "created": created, "uri": procedure,
                    "match": "exact", "invoke": invoke.name(),
                });
                self.meta_event(
                    ctx,
                    realm,
                    "wamp.registration.on_create",
                    vec![json!(sid), info],
                );
                id
            }
        };
        if let Some(s) = self.sessions.get_mut(conn) {
            s.registrations.push(id);
        }
        ctx.count("wamp2_registrations", "ok");
        self.send(
            ctx,
            conn,
            &Message::Registered {
                request,
                registration: id,
            },
        );
        self.meta_event(
            ctx,
            realm,
            "wamp.registration.on_register",
            vec![json!(sid), json!(id)],
        );
    }

    fn unregister(&mut self, ctx: &mut Context<'_>, conn: ConnId, request: Id, registration: Id) {
        let Some(s) = self.sessions.get_mut(conn) else {
            return;
        };
        let Some(pos) = s.registrations.iter().position(|&x| x == registration) else {
            return self.error(
                ctx,
                conn,
                code::UNREGISTER,
                request,
                error::NO_SUCH_REGISTRATION,
                "not registered by this session",
            );
        };
        s.registrations.swap_remove(pos);
        let (sid, realm) = (s.id, s.realm);
        self.drop_callee(ctx, conn, sid, realm, registration);
        self.send(
            ctx,
            conn,
            &Message::Unregistered {
                request,
                details: None,
            },
        );
    }

    fn drop_callee(&mut self, ctx: &mut Context<'_>, conn: ConnId, sid: Id, realm: usize, id: Id) {
        let r = &mut self.realms[realm];
        let Some(reg) = r.regs.get_mut(&id) else {
            return;
        };
        reg.callees.retain(|&c| c != conn);
        if reg.next >= reg.callees.len() {
            reg.next = 0;
        }
        let gone = reg.callees.is_empty();
        if gone && let Some(reg) = r.regs.remove(&id) {
            r.procedures.remove(&reg.procedure);
        }
        self.meta_event(
            ctx,
            realm,
            "wamp.registration.on_unregister",
            vec![json!(sid), json!(id)],
        );
        if gone {
            self.meta_event(
                ctx,
                realm,
                "wamp.registration.on_delete",
                vec![json!(sid), json!(id)],
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        options: &Dict,
        procedure: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) -> Option<AppCall> {
        let fail = |r: &Self, ctx: &mut Context<'_>, uri: &str, text: &str| {
            ctx.count("wamp2_calls", "refused");
            r.error(ctx, conn, code::CALL, request, uri, text)
        };
        if let Err(why) = uri::check(&procedure, Rules::Loose, Policy::Exact) {
            fail(self, ctx, error::INVALID_URI, why);
            return None;
        }
        let s = self.sessions.get(conn)?;
        let (realm, sid) = (s.realm, s.id);
        if s.calls.len() + s.app_calls.len() >= self.limits.calls {
            let text = format!("at most {} calls waiting a session", self.limits.calls);
            fail(self, ctx, error::LIMIT, &text);
            return None;
        }
        if s.calls.contains_key(&request) || s.app_calls.contains(&request) {
            self.abort(
                ctx,
                conn,
                error::PROTOCOL_VIOLATION,
                "a CALL request id in use",
            );
            return None;
        }
        if procedure.starts_with("wamp.") {
            return self.meta_call(ctx, conn, request, &procedure, args.as_deref());
        }
        let timeout = match options.get("timeout") {
            None => 0,
            Some(v) => match v.as_u64() {
                Some(ms) => ms,
                None => {
                    fail(
                        self,
                        ctx,
                        error::INVALID_ARGUMENT,
                        "timeout is milliseconds",
                    );
                    return None;
                }
            },
        };
        // Disclosed unless the caller says disclose_me: false (the realm's
        // sessions are listed by the meta API anyway; docs/wamp.md).
        let disclose = !matches!(options.get("disclose_me"), Some(Value::Bool(false)));
        let receive_progress = matches!(options.get("receive_progress"), Some(Value::Bool(true)));
        let r = &mut self.realms[realm];
        let Some(reg) = r
            .procedures
            .get(&procedure)
            .and_then(|id| r.regs.get_mut(id))
        else {
            // Not in the realm: the application's procedures and backend.
            let mut args = args.unwrap_or_default();
            if let Some(k) = kwargs.filter(|k| !k.is_empty()) {
                args.push(Value::Object(k));
            }
            if let Some(s) = self.sessions.get_mut(conn) {
                s.app_calls.insert(request);
            }
            ctx.count("wamp2_calls", "app");
            return Some(AppCall {
                request,
                procedure,
                args,
            });
        };
        let n = reg.callees.len();
        let pick = match reg.invoke {
            Invoke::Single | Invoke::First => 0,
            Invoke::Last => n - 1,
            Invoke::RoundRobin => {
                let i = reg.next % n;
                reg.next = (i + 1) % n;
                i
            }
            Invoke::Random => (self.ids.next() % n as u64) as usize,
        };
        let (callee, registration) = (reg.callees[pick], reg.id);
        let cs = self.sessions.get_mut(callee)?;
        if cs.invocations >= self.limits.invocations {
            let text = "the callee has too many invocations waiting";
            self.error(ctx, conn, code::CALL, request, error::UNAVAILABLE, text);
            return None;
        }
        cs.invocations += 1;
        cs.next_request = cs.next_request % MAX_ID + 1;
        if self.pending.contains_key(&(callee, cs.next_request)) {
            // 2^53 invocations later, the first still waits: refuse.
            self.error(
                ctx,
                conn,
                code::CALL,
                request,
                error::UNAVAILABLE,
                "no request id free",
            );
            return None;
        }
        let invocation_request = cs.next_request;
        let progress = receive_progress && cs.feature("callee", "progressive_call_results");
        let mut details = Dict::new();
        if progress {
            details.insert("receive_progress".into(), Value::Bool(true));
        }
        if timeout > 0 {
            details.insert("timeout".into(), json!(timeout));
        }
        if disclose && let Some(s) = self.sessions.get(conn) {
            details.insert("caller".into(), json!(sid));
            details.insert("caller_authid".into(), json!(s.authid));
            details.insert("caller_authrole".into(), json!(s.authrole));
        }
        let key = (callee, invocation_request);
        let timer = (timeout > 0).then(|| ctx.add_timer(Duration::from_millis(timeout)));
        if let Some(t) = timer {
            self.timers.insert(t, key);
        }
        self.pending.insert(
            key,
            Pending {
                caller: conn,
                call: request,
                callee,
                progress,
                timer,
                answered: false,
                killed: false,
            },
        );
        if let Some(s) = self.sessions.get_mut(conn) {
            s.calls.insert(request, key);
        }
        ctx.count("wamp2_calls", "routed");
        self.send(
            ctx,
            callee,
            &Message::Invocation {
                request: invocation_request,
                registration,
                details,
                args,
                kwargs,
            },
        );
        None
    }

    /// `wamp.session.*` and `wamp.registration.*`/`wamp.subscription.*`
    /// lookups, answered by the router itself.
    fn meta_call(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        procedure: &str,
        args: Option<&[Value]>,
    ) -> Option<AppCall> {
        type Answer = Result<Value, (&'static str, String)>;
        let realm = self.sessions.get(conn)?.realm;
        let args = args.unwrap_or(&[]);
        let r = &self.realms[realm];
        let id_arg = |what: &str| {
            args.first()
                .and_then(Value::as_u64)
                .ok_or_else(|| (error::INVALID_ARGUMENT, format!("takes a {what} id")))
        };
        let uri_arg = |what: &str| {
            args.first()
                .and_then(Value::as_str)
                .ok_or_else(|| (error::INVALID_ARGUMENT, format!("takes a {what}")))
        };
        let sub = |id: Id| {
            r.subs
                .get(&id)
                .ok_or_else(|| (error::NO_SUCH_SUBSCRIPTION, format!("no subscription {id}")))
        };
        let reg = |id: Id| {
            r.regs
                .get(&id)
                .ok_or_else(|| (error::NO_SUCH_REGISTRATION, format!("no registration {id}")))
        };
        let session_ids = |conns: &[ConnId]| -> Value {
            let ids: Vec<Id> = conns
                .iter()
                .filter_map(|&c| self.sessions.get(c).map(|s| s.id))
                .collect();
            json!(ids)
        };
        let answer: Answer = match procedure {
            "wamp.session.count" => Ok(json!(r.sessions.len())),
            "wamp.session.list" => Ok(json!(r.sessions.keys().collect::<Vec<_>>())),
            "wamp.session.get" => id_arg("session").and_then(|id| {
                r.sessions
                    .get(&id)
                    .map(|&c| self.session_info(c))
                    .ok_or_else(|| (error::NO_SUCH_SESSION, format!("no session {id}")))
            }),
            "wamp.subscription.lookup" => uri_arg("topic").map(|t| json!(r.exact.get(t))),
            "wamp.subscription.match" => uri_arg("topic").map(|t| {
                let ids = self.matching(realm, t);
                if ids.is_empty() {
                    Value::Null
                } else {
                    json!(ids)
                }
            }),
            "wamp.subscription.get" => id_arg("subscription").and_then(sub).map(|s| {
                json!({
                    "id": s.id, "created": s.created, "uri": s.topic,
                    "match": policy_name(s.policy),
                })
            }),
            "wamp.subscription.list_subscribers" => id_arg("subscription")
                .and_then(sub)
                .map(|s| session_ids(&s.subscribers)),
            "wamp.subscription.count_subscribers" => id_arg("subscription")
                .and_then(sub)
                .map(|s| json!(s.subscribers.len())),
            "wamp.registration.lookup" => uri_arg("procedure").map(|p| json!(r.procedures.get(p))),
            "wamp.registration.get" => id_arg("registration").and_then(reg).map(|g| {
                json!({
                    "id": g.id, "created": g.created, "uri": g.procedure,
                    "match": "exact", "invoke": g.invoke.name(),
                })
            }),
            "wamp.registration.list_callees" => id_arg("registration")
                .and_then(reg)
                .map(|g| session_ids(&g.callees)),
            _ => Err((
                error::NO_SUCH_PROCEDURE,
                format!("no procedure {procedure}"),
            )),
        };
        let answer = answer.map(|v| Message::Result {
            request,
            details: Dict::new(),
            args: Some(vec![v]),
            kwargs: None,
        });
        match answer {
            Ok(msg) => {
                ctx.count("wamp2_calls", "meta");
                self.send(ctx, conn, &msg);
            }
            Err((uri, text)) => self.error(ctx, conn, code::CALL, request, uri, &text),
        }
        None
    }

    fn cancel(&mut self, ctx: &mut Context<'_>, conn: ConnId, request: Id, options: &Dict) {
        let mode = match options.get("mode").map(Value::as_str) {
            None => "killnowait",
            Some(Some(m @ ("skip" | "kill" | "killnowait"))) => m,
            _ => {
                return self.error(
                    ctx,
                    conn,
                    code::CANCEL,
                    request,
                    error::INVALID_ARGUMENT,
                    "mode must be skip, kill or killnowait",
                );
            }
        };
        let Some(key) = self
            .sessions
            .get(conn)
            .and_then(|s| s.calls.get(&request).copied())
        else {
            // Answered already, or handed to the application: nothing to do.
            return;
        };
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        if p.answered {
            return;
        }
        let callee = p.callee;
        let can_interrupt = self
            .sessions
            .get(callee)
            .is_some_and(|s| s.feature("callee", "call_canceling"));
        let mode = if can_interrupt { mode } else { "skip" };
        ctx.count("wamp2_cancels", mode_name(mode));
        if mode == "kill" {
            // The callee answers the INTERRUPT; its answer goes to the caller
            // (an ERROR as wamp.error.canceled).
            if let Some(p) = self.pending.get_mut(&key) {
                p.killed = true;
            }
            self.interrupt(ctx, callee, key, "kill");
            return;
        }
        if mode == "killnowait" {
            self.interrupt(ctx, callee, key, "killnowait");
            if let Some(p) = self.pending.remove(&key) {
                self.cancel_timer(ctx, p.timer);
                self.owe_less(callee);
            }
        } else {
            // skip: the callee's answer, when it comes, is dropped, and the
            // caller is sent nothing, as Crossbar does: AutobahnJS settles
            // a call it cancels without `kill` by itself, and takes an
            // ERROR for it later as a protocol violation (docs/wamp.md).
            if let Some(p) = self.pending.get_mut(&key) {
                p.answered = true;
            }
            self.forget_call(conn, request);
            return;
        }
        self.forget_call(conn, request);
        self.error(ctx, conn, code::CALL, request, error::CANCELED, "canceled");
    }

    fn interrupt(&self, ctx: &mut Context<'_>, callee: ConnId, key: Key, mode: &str) {
        let Some(s) = self.sessions.get(callee) else {
            return;
        };
        if !s.feature("callee", "call_canceling") {
            return;
        }
        let mut options = Dict::new();
        options.insert("mode".into(), Value::String(mode.to_owned()));
        let msg = Message::Interrupt {
            request: key.1,
            options,
        };
        self.send(ctx, callee, &msg);
    }

    fn owe_less(&mut self, callee: ConnId) {
        if let Some(s) = self.sessions.get_mut(callee) {
            s.invocations = s.invocations.saturating_sub(1);
        }
    }

    fn forget_call(&mut self, caller: ConnId, request: Id) {
        if let Some(s) = self.sessions.get_mut(caller) {
            s.calls.remove(&request);
        }
    }

    fn cancel_timer(&mut self, ctx: &mut Context<'_>, timer: Option<TimerId>) {
        if let Some(t) = timer {
            ctx.cancel_timer(t);
            self.timers.remove(&t);
        }
    }

    fn yielded(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        options: &Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        let key = (conn, request);
        let Some(p) = self.pending.get(&key) else {
            // An answer to an invocation canceled meanwhile.
            return;
        };
        let progress = matches!(options.get("progress"), Some(Value::Bool(true)));
        let (caller, call, answered, wants_progress) = (p.caller, p.call, p.answered, p.progress);
        if progress {
            if !answered && wants_progress {
                let mut details = Dict::new();
                details.insert("progress".into(), Value::Bool(true));
                let msg = Message::Result {
                    request: call,
                    details,
                    args,
                    kwargs,
                };
                self.send(ctx, caller, &msg);
            }
            return;
        }
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        self.cancel_timer(ctx, p.timer);
        self.owe_less(conn);
        if answered {
            return;
        }
        self.forget_call(caller, call);
        let msg = Message::Result {
            request: call,
            details: Dict::new(),
            args,
            kwargs,
        };
        self.send(ctx, caller, &msg);
    }

    #[allow(clippy::too_many_arguments)]
    fn invocation_error(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        details: Dict,
        error: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    ) {
        if uri::check(&error, Rules::Loose, Policy::Exact).is_err() {
            return self.abort(
                ctx,
                conn,
                error::PROTOCOL_VIOLATION,
                "ERROR.Error must be a valid URI",
            );
        }
        let key = (conn, request);
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        self.cancel_timer(ctx, p.timer);
        self.owe_less(conn);
        if p.answered {
            return;
        }
        self.forget_call(p.caller, p.call);
        let error = if p.killed {
            error::CANCELED.to_owned()
        } else {
            error
        };
        let msg = Message::Error {
            request_type: code::CALL,
            request: p.call,
            details,
            error,
            args,
            kwargs,
        };
        self.send(ctx, p.caller, &msg);
    }

    /// A call timeout fired: the caller gets `wamp.error.canceled` (as
    /// Crossbar answers) and the callee an INTERRUPT (killnowait).
    pub fn timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let Some(key) = self.timers.remove(&timer) else {
            return;
        };
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        ctx.count("wamp2_calls", "timeout");
        self.interrupt(ctx, p.callee, key, "killnowait");
        self.owe_less(p.callee);
        self.forget_call(p.caller, p.call);
        if !p.answered {
            self.error(
                ctx,
                p.caller,
                code::CALL,
                p.call,
                error::CANCELED,
                "the call timed out",
            );
        }
    }

    /// The application's answer to an [`AppCall`]; false if the caller is
    /// gone or was answered.
    pub fn app_result(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        result: &Value,
    ) -> bool {
        if !self
            .sessions
            .get_mut(conn)
            .is_some_and(|s| s.app_calls.remove(&request))
        {
            return false;
        }
        let msg = Message::Result {
            request,
            details: Dict::new(),
            args: Some(vec![result.clone()]),
            kwargs: None,
        };
        self.send(ctx, conn, &msg)
    }

    /// The application's error for an [`AppCall`]: its URI (the v1
    /// "no such procedure" becomes `wamp.error.no_such_procedure`), the
    /// description and details as arguments.
    pub fn app_error(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        request: Id,
        uri: &str,
        desc: &str,
        details: Option<&Value>,
    ) -> bool {
        if !self
            .sessions
            .get_mut(conn)
            .is_some_and(|s| s.app_calls.remove(&request))
        {
            return false;
        }
        let uri = if uri == crate::wamp::ERROR_NO_SUCH_PROCEDURE {
            error::NO_SUCH_PROCEDURE
        } else {
            uri
        };
        let mut args = vec![Value::String(desc.to_owned())];
        if let Some(d) = details {
            args.push(d.clone());
        }
        let msg = Message::Error {
            request_type: code::CALL,
            request,
            details: Dict::new(),
            error: uri.to_owned(),
            args: Some(args),
            kwargs: None,
        };
        self.send(ctx, conn, &msg)
    }

    /// The session id of a v2 connection, if it joined.
    pub fn session_id(&self, conn: ConnId) -> Option<Id> {
        self.sessions
            .get(conn)
            .filter(|s| s.state == State::Joined)
            .map(|s| s.id)
    }
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Exact => "exact",
        Policy::Prefix => "prefix",
        Policy::Wildcard => "wildcard",
    }
}

fn mode_name(m: &str) -> &'static str {
    match m {
        "kill" => "kill",
        "skip" => "skip",
        _ => "killnowait",
    }
}

/// Encodes `msg` for `serializer` and sends it in the right frame.
fn send_as(ctx: &mut Context<'_>, conn: ConnId, serializer: Serializer, msg: &Message) -> bool {
    let bytes = codec::encode(serializer, msg);
    if serializer.is_binary() {
        ctx.send_binary(conn, &bytes)
    } else {
        match std::str::from_utf8(&bytes) {
            Ok(text) => ctx.send_text(conn, text),
            Err(_) => false,
        }
    }
}

impl Default for Router {
    /// One realm, `realm1`, with the default limits.
    fn default() -> Self {
        Router::new(
            vec![crate::wamp::DEFAULT_REALM.to_owned()],
            format!("sprocket/{}", env!("CARGO_PKG_VERSION")),
            Limits::default(),
        )
    }
}
