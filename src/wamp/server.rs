//! [`WampServer`]: turns a [`WampApp`] into an [`Application`] speaking WAMP
//! v1 — sessions, CURIE prefixes, topics and their subscribers, and the
//! answers to malformed messages. Mirrors Ratchet's `WampServer` +
//! `TopicManager`.

use super::v1::{self, DecodeError, Exclude, Incoming};
use super::v2::Serializer;
use super::v2::router::{Router, Upcall};
use crate::app::{Application, ConnId, ConnMap, Context, Message, Reply, Request, Ticket, TimerId};
use crate::ws::close;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The realm WAMP v2 sessions join when none is configured.
pub const DEFAULT_REALM: &str = "realm1";
/// Error URI sent with CALLERROR for a CALL that could not be decoded.
pub const ERROR_INVALID_CALL: &str = "urn:sprocket:error:invalid-call";
/// Most CURIE prefixes one session may define.
pub const MAX_PREFIXES: usize = 256;
/// Most topics one session may subscribe to.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
/// The meta topic on which the Redis bus announces lost events: a session
/// subscribed to it and to topic `T` gets `[8, META_GAP, {"topic": T,
/// "missed": N, "cause": "gap"}]` when `N` events of another process on
/// `T` were lost just before the next one it gets, and `{"topic": T,
/// "missed": null, "cause": "outage"}` when the bus's subscription to
/// Redis is back after an outage (events published meanwhile may be
/// lost; the gaps later events show follow as `gap` notices). Clients
/// cannot publish to it.
pub const META_GAP: &str = "urn:sprocket:meta:gap";
/// The meta topic that tells where each event of a durable topic stands:
/// a session subscribed to it and to a durable topic `T` gets, right after
/// each EVENT of `T`, `[8, META_POSITION, {"topic": T, "position": P}]`.
/// `P` is what it gives `urn:sprocket:resume` to get what it missed.
pub const META_POSITION: &str = "urn:sprocket:meta:position";
/// The procedure a session calls, `[topic, position]`, to subscribe to a
/// durable topic and first get what it missed after `position` (the last
/// one it saw on [`META_POSITION`]; `null`: everything the stream keeps).
/// The result is `{"position": P, "replayed": N, "complete": bool}`:
/// `complete` is false when the stream no longer held all that followed.
pub const PROC_RESUME: &str = "urn:sprocket:resume";
/// The error URI of a resume that could not be done.
pub const ERROR_RESUME: &str = "urn:sprocket:error:resume";
/// Live events held for one session while its resume reads the stream.
const MAX_RESUME_HELD: usize = 10_000;
/// Topics under this prefix belong to the server: client publishes to them
/// are dropped.
pub const META_PREFIX: &str = "urn:sprocket:meta:";

/// A call to answer, now or later (after a timer, or a backend reply).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    /// The calling connection.
    pub conn: ConnId,
    /// The client's call id.
    pub id: String,
}

/// The answer to a SUBSCRIBE (see [`WampApp::on_subscribe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribe {
    /// Subscribed now.
    Allow,
    /// Not subscribed.
    Refuse,
    /// The app decides later; it calls [`WampContext::subscribe`] to allow.
    Later,
}

impl From<bool> for Subscribe {
    fn from(allow: bool) -> Subscribe {
        if allow {
            Subscribe::Allow
        } else {
            Subscribe::Refuse
        }
    }
}

/// A WAMP v1 application: the shape of Ratchet's `WampServerInterface`.
/// URIs given to it are full URIs (CURIEs already expanded).
pub trait WampApp {
    /// A session opened (WELCOME already sent). For a WAMP v2 connection:
    /// the connection opened (its HELLO is still to come); calls and
    /// subscriptions of v2 sessions reach the app as v1's do, with the
    /// request id as the call id.
    fn on_open(&mut self, ctx: &mut WampContext<'_, '_>, conn: ConnId, req: &Request) {
        let _ = (ctx, conn, req);
    }

    /// A session closed (for WAMP v2: the connection); it has already left
    /// all its topics.
    fn on_close(&mut self, ctx: &mut WampContext<'_, '_>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// A remote procedure call. Answer it with [`WampContext::call_result`]
    /// or [`WampContext::call_error`], now or later.
    fn on_call(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        call: Call,
        procedure: &str,
        args: &[Value],
    );

    /// A session asks to subscribe: allow, refuse (WAMP v1 has no error
    /// reply: the client just gets no events), or decide later with
    /// [`WampContext::subscribe`]. The default allows.
    fn on_subscribe(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        conn: ConnId,
        topic: &str,
    ) -> Subscribe {
        let _ = (ctx, conn, topic);
        Subscribe::Allow
    }

    /// A session unsubscribed (it was subscribed).
    fn on_unsubscribe(&mut self, ctx: &mut WampContext<'_, '_>, conn: ConnId, topic: &str) {
        let _ = (ctx, conn, topic);
    }

    /// A session published. `exclude` holds session ids (the publisher's
    /// own when it sent `excludeMe = true`); an empty `eligible` means
    /// everybody, as in Ratchet. The default broadcasts the event
    /// accordingly, like Ratchet's `$topic->broadcast($event, $exclude,
    /// $eligible)`, through the bus: with the Redis bus, subscribers of
    /// every process get it.
    fn on_publish(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        conn: ConnId,
        topic: &str,
        event: &Value,
        exclude: &[String],
        eligible: &[String],
    ) {
        ctx.broadcast_from(conn, topic, event, exclude, eligible);
    }

    /// Whether subscriptions are decided by someone (a subscribe backend):
    /// then WAMP v2's pattern-based subscriptions, which no one could
    /// decide topic by topic, are refused. The default: false.
    fn guards_subscriptions(&self) -> bool {
        false
    }

    /// A timer this app created fired.
    fn on_timer(&mut self, ctx: &mut WampContext<'_, '_>, timer: TimerId) {
        let _ = (ctx, timer);
    }

    /// Something this app started (through [`WampContext::context`])
    /// answered.
    fn on_reply(&mut self, ctx: &mut WampContext<'_, '_>, ticket: Ticket, reply: Reply<'_>) {
        let _ = (ctx, ticket, reply);
    }
}

struct Session {
    id: String,
    prefixes: HashMap<String, String>,
    topics: Vec<String>,
}

/// Sessions and topics, shared by the server and the context it lends.
#[derive(Default)]
pub struct WampState {
    sessions: ConnMap<Session>,
    by_session_id: HashMap<String, ConnId>,
    /// Subscribers of each topic, in subscription order. A topic with no
    /// subscribers is removed.
    topics: HashMap<String, Vec<ConnId>>,
    /// The bus subscription of each topic with subscribers here, and
    /// back: pushes from the backend arrive through the bus.
    bus: HashMap<String, Ticket>,
    bus_topics: HashMap<Ticket, String>,
    /// Bus subscriptions to end after the current change.
    bus_gone: Vec<Ticket>,
    /// Resumes reading the stream, by session and topic, and their
    /// history reads.
    resuming: HashMap<(ConnId, String), Resume>,
    resume_reads: HashMap<Ticket, (ConnId, String)>,
    /// After a resume, the position it reached: live events at or before
    /// it (the replay had them; they may come live later) are skipped
    /// for that session, until one beyond it comes.
    floors: HashMap<(ConnId, String), (String, crate::bus::remote::durable::StreamId)>,
    /// The WAMP v2 sessions, realms, broker and dealer.
    v2: Router,
}

/// A resume under way: the call to answer, and the live events held
/// meanwhile.
struct Resume {
    call: Call,
    held: Vec<crate::bus::Event>,
    /// Held events were dropped to stay within the bound.
    overflowed: bool,
}

impl WampState {
    /// Expands a CURIE with the session's prefixes (WAMP v1: the prefix's
    /// URI followed by the rest). URIs with a scheme (`http://…`,
    /// `urn:…` when `urn` is not a defined prefix) pass unchanged.
    fn expand(&self, conn: ConnId, uri: &str) -> String {
        if !uri.contains("://")
            && let Some((prefix, rest)) = uri.split_once(':')
            && let Some(base) = self.sessions.get(conn).and_then(|s| s.prefixes.get(prefix))
        {
            return format!("{base}{rest}");
        }
        uri.to_owned()
    }

    /// Queues the bus unsubscription of a topic that lost its last
    /// subscriber (applied by [`WampState::sync_bus`]).
    fn drop_bus(&mut self, topic: &str) {
        if let Some(ticket) = self.bus.remove(topic) {
            self.bus_topics.remove(&ticket);
            self.bus_gone.push(ticket);
        }
    }

    /// Tells the bus which subscriptions ended.
    fn sync_bus(&mut self, ctx: &mut Context<'_>) {
        for ticket in self.bus_gone.drain(..) {
            ctx.bus_unsubscribe(ticket);
        }
    }

    /// Delivers a bus event to this server's subscribers of its topic:
    /// minus `exclude`, only `eligible` if given, only `user`'s
    /// connections if set. The payload is copied, not re-encoded.
    fn deliver(&mut self, ctx: &mut Context<'_>, event: &crate::bus::Event) -> usize {
        let Some(subs) = self.topics.get(&event.topic) else {
            return 0;
        };
        let text = v1::event_raw(&event.topic, &event.data);
        let mut targets: Vec<ConnId> = subs
            .iter()
            .copied()
            .filter(|&c| self.admits(ctx, c, event))
            .collect();
        if !self.floors.is_empty()
            && let Some((epoch, id)) = event
                .position
                .as_deref()
                .and_then(crate::bus::remote::durable::parse_position)
        {
            targets.retain(|c| {
                let key = (*c, event.topic.clone());
                match self.floors.get(&key) {
                    Some((fe, fid)) if fe == epoch && id <= *fid => false,
                    Some(_) => {
                        self.floors.remove(&key);
                        true
                    }
                    None => true,
                }
            });
        }
        if !self.resuming.is_empty() {
            // Sessions resuming this topic get it after what they missed.
            targets.retain(|c| {
                let Some(r) = self.resuming.get_mut(&(*c, event.topic.clone())) else {
                    return true;
                };
                if r.held.len() >= MAX_RESUME_HELD {
                    r.held.remove(0);
                    r.overflowed = true;
                }
                r.held.push(event.clone());
                false
            });
        }
        let reached = ctx.broadcast(targets.iter().copied(), Message::Text(&text));
        if let (Some(position), Some(watchers)) = (&event.position, self.topics.get(META_POSITION))
        {
            let notice = serde_json::json!({"topic": event.topic, "position": position});
            let text = v1::event(META_POSITION, &notice);
            let to = targets.iter().copied().filter(|c| watchers.contains(c));
            ctx.broadcast(to, Message::Text(&text));
        }
        reached
    }

    /// Sends one event to one session (a resume's replay), with its
    /// position notice if the session watches [`META_POSITION`], if the
    /// event's exclude, eligible and user let it through.
    /// Whether `event` goes to the session on `conn` (its exclude,
    /// eligible and user).
    fn admits(&self, ctx: &Context<'_>, conn: ConnId, event: &crate::bus::Event) -> bool {
        self.sessions
            .get(conn)
            .is_some_and(|s| event.admits(&s.id, ctx.user(conn).as_deref()))
    }

    fn send_one(&self, ctx: &mut Context<'_>, conn: ConnId, event: &crate::bus::Event) -> bool {
        if !self.admits(ctx, conn, event) {
            return false;
        }
        ctx.send_text(conn, &v1::event_raw(&event.topic, &event.data));
        if let Some(position) = &event.position
            && self
                .topics
                .get(META_POSITION)
                .is_some_and(|w| w.contains(&conn))
        {
            let notice = serde_json::json!({"topic": event.topic, "position": position});
            ctx.send_text(conn, &v1::event(META_POSITION, &notice));
        }
        true
    }

    /// Tells the sessions subscribed to `topic` and to [`META_GAP`] that
    /// `missed` events on it were lost.
    fn announce_gap(&self, ctx: &mut Context<'_>, topic: &str, missed: Option<u64>) -> usize {
        let (Some(subs), Some(watchers)) = (self.topics.get(topic), self.topics.get(META_GAP))
        else {
            return 0;
        };
        let cause = if missed.is_some() { "gap" } else { "outage" };
        let notice = serde_json::json!({"topic": topic, "missed": missed, "cause": cause});
        let text = v1::event(META_GAP, &notice);
        let targets = subs.iter().copied().filter(|c| watchers.contains(c));
        ctx.broadcast(targets, Message::Text(&text))
    }

    /// Subscribes `conn` to `topic` (and this server to the topic on the
    /// bus, for its first subscriber); false if the session is gone,
    /// already subscribed or at its subscription limit.
    fn add_subscription(&mut self, ctx: &mut Context<'_>, conn: ConnId, topic: String) -> bool {
        let Some(session) = self.sessions.get_mut(conn) else {
            return false;
        };
        if session.topics.contains(&topic) || session.topics.len() >= MAX_SUBSCRIPTIONS {
            return false;
        }
        session.topics.push(topic.clone());
        if !self.bus.contains_key(&topic)
            && !topic.starts_with(META_PREFIX)
            && let Some(ticket) = ctx.bus_subscribe(&topic)
        {
            self.bus.insert(topic.clone(), ticket);
            self.bus_topics.insert(ticket, topic.clone());
        }
        self.topics.entry(topic).or_default().push(conn);
        true
    }

    fn unsubscribe(&mut self, conn: ConnId, topic: &str) -> bool {
        let Some(subs) = self.topics.get_mut(topic) else {
            return false;
        };
        let Some(pos) = subs.iter().position(|c| *c == conn) else {
            return false;
        };
        subs.remove(pos);
        if subs.is_empty() {
            self.topics.remove(topic);
            self.drop_bus(topic);
        }
        self.floors.remove(&(conn, topic.to_owned()));
        if let Some(s) = self.sessions.get_mut(conn) {
            s.topics.retain(|t| t != topic);
        }
        true
    }
}

/// What WAMP callbacks act through: the plain [`Context`] plus sessions
/// and topics.
pub struct WampContext<'c, 'a> {
    ctx: &'c mut Context<'a>,
    state: &'c mut WampState,
}

impl<'c, 'a> WampContext<'c, 'a> {
    /// The plain context: timers, outbound requests, raw sends.
    pub fn context(&mut self) -> &mut Context<'a> {
        self.ctx
    }

    /// Answers a call with its result.
    pub fn call_result(&mut self, call: &Call, result: &Value) -> bool {
        if self.state.v2.has(call.conn) {
            return call
                .id
                .parse()
                .is_ok_and(|r| self.state.v2.app_result(self.ctx, call.conn, r, result));
        }
        self.ctx
            .send_text(call.conn, &v1::call_result(&call.id, result))
    }

    /// Answers a call with an error URI, a description and optional details.
    pub fn call_error(
        &mut self,
        call: &Call,
        error_uri: &str,
        desc: &str,
        details: Option<&Value>,
    ) -> bool {
        if self.state.v2.has(call.conn) {
            return call.id.parse().is_ok_and(|r| {
                self.state
                    .v2
                    .app_error(self.ctx, call.conn, r, error_uri, desc, details)
            });
        }
        self.ctx.send_text(
            call.conn,
            &v1::call_error(&call.id, error_uri, desc, details),
        )
    }

    /// Publishes `event` on `topic`: EVENT to its subscribers here at
    /// once, and through the bus to other apps and, with the Redis bus,
    /// every process, skipping the session ids in `exclude` and, unless
    /// `eligible` is empty, those not in it (session ids are unique across
    /// processes). The payload is encoded once per process. Returns how
    /// many subscribers of this server got it.
    pub fn broadcast(
        &mut self,
        topic: &str,
        event: &Value,
        exclude: &[String],
        eligible: &[String],
    ) -> usize {
        self.send_event(bus_event(topic, event, exclude, eligible, None))
    }

    fn send_event(&mut self, event: crate::bus::Event) -> usize {
        if self.ctx.is_durable(&event.topic) {
            // Delivered in the stream's order, when Redis has it.
            self.ctx.publish(event);
            return 0;
        }
        let reached = self.state.deliver(self.ctx, &event);
        let own = self.state.bus.get(&event.topic).copied();
        self.ctx.publish_beside(event, own);
        reached
    }

    /// [`WampContext::broadcast`] on behalf of session `conn`, the
    /// publisher the event carries (what a client PUBLISH does).
    pub fn broadcast_from(
        &mut self,
        conn: ConnId,
        topic: &str,
        event: &Value,
        exclude: &[String],
        eligible: &[String],
    ) -> usize {
        let publisher = self.session_id(conn).map(str::to_owned);
        self.send_event(bus_event(topic, event, exclude, eligible, publisher))
    }

    /// Sends EVENT to every subscriber of `topic` (server-side push), as
    /// [`WampContext::broadcast`] does.
    pub fn publish(&mut self, topic: &str, event: &Value) -> usize {
        self.broadcast(topic, event, &[], &[])
    }

    /// Sends EVENT for `topic` to one session, subscribed or not.
    pub fn event(&mut self, conn: ConnId, topic: &str, event: &Value) -> bool {
        self.ctx.send_text(conn, &v1::event(topic, event))
    }

    /// The WAMP session id of a connection.
    pub fn session_id(&self, conn: ConnId) -> Option<&str> {
        self.state.sessions.get(conn).map(|s| s.id.as_str())
    }

    /// The PHP session attached to a connection (see
    /// [`crate::app::SessionProvider`]); not to be confused with the WAMP
    /// session of [`Self::session_id`].
    pub fn php_session(&self, conn: ConnId) -> Option<std::sync::Arc<crate::session::Session>> {
        self.ctx.session(conn)
    }

    /// The user a connection belongs to (from its PHP session, or set by
    /// an app).
    pub fn user(&self, conn: ConnId) -> Option<std::sync::Arc<str>> {
        self.ctx.user(conn)
    }

    /// Completes a subscription the app answered [`Subscribe::Later`]:
    /// `conn` gets `topic`'s events from now on. False if the session is
    /// gone, already subscribed or at its subscription limit.
    pub fn subscribe(&mut self, conn: ConnId, topic: &str) -> bool {
        if self.state.v2.has(conn) {
            return self
                .state
                .v2
                .decide_subscription(self.ctx, conn, topic, Ok(()));
        }
        self.state
            .add_subscription(self.ctx, conn, topic.to_owned())
    }

    /// Refuses a subscription the app answered [`Subscribe::Later`]: a
    /// WAMP v2 session gets ERROR `wamp.error.not_authorized` with
    /// `reason`; WAMP v1 has no such answer (false).
    pub fn refuse_subscription(&mut self, conn: ConnId, topic: &str, reason: &str) -> bool {
        self.state.v2.has(conn)
            && self
                .state
                .v2
                .decide_subscription(self.ctx, conn, topic, Err(reason))
    }

    /// The connection of a WAMP session id.
    pub fn conn_of(&self, session_id: &str) -> Option<ConnId> {
        self.state.by_session_id.get(session_id).copied()
    }

    /// Subscribers of a topic, in subscription order.
    pub fn subscribers(&self, topic: &str) -> &[ConnId] {
        self.state.topics.get(topic).map_or(&[], Vec::as_slice)
    }

    /// Topics with at least one subscriber.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.state.topics.keys().map(String::as_str)
    }

    /// Closes a session's connection.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.ctx.close(conn, code, reason)
    }

    /// See [`Context::add_timer`].
    pub fn add_timer(&mut self, delay: Duration) -> TimerId {
        self.ctx.add_timer(delay)
    }

    /// See [`Context::add_periodic_timer`].
    pub fn add_periodic_timer(&mut self, interval: Duration) -> TimerId {
        self.ctx.add_periodic_timer(interval)
    }

    /// See [`Context::cancel_timer`].
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.ctx.cancel_timer(timer)
    }

    /// The reactor's current time.
    pub fn now(&self) -> Instant {
        self.ctx.now()
    }

    /// The underlying plain context, e.g. to send raw text.
    pub fn raw(&mut self) -> &mut Context<'a> {
        self.ctx
    }
}

/// Serves a [`WampApp`] over the `wamp` subprotocol.
pub struct WampServer<A> {
    app: A,
    state: WampState,
    ident: String,
}

impl<A: WampApp> WampServer<A> {
    /// Wraps `app`; WELCOME names the server `sprocket/<version>`. WAMP
    /// v2 sessions join the realm `realm1` (see [`Self::realms`]).
    pub fn new(app: A) -> Self {
        WampServer {
            app,
            state: WampState::default(),
            ident: format!("sprocket/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The realms WAMP v2 sessions may join; the first shares its topics
    /// with WAMP v1 (and the backend's pushes). Empty: `realm1`.
    pub fn realms(mut self, realms: Vec<String>) -> Self {
        let realms = if realms.is_empty() {
            vec![DEFAULT_REALM.to_owned()]
        } else {
            realms
        };
        self.state.v2 = Router::new(realms, self.ident.clone(), Default::default());
        self
    }

    /// WAMP v2 sessions joined, in every realm.
    pub fn v2_sessions(&self) -> usize {
        self.state.v2.session_count()
    }

    /// A WAMP v2 connection's message: the router's, and what it hands
    /// to the app.
    fn v2_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        let guarded = self.app.guards_subscriptions();
        match self.state.v2.message(ctx, conn, msg, guarded) {
            None => {}
            Some(Upcall::Call(c)) => {
                let call = Call {
                    conn,
                    id: c.request.to_string(),
                };
                self.split(ctx, |app, w| app.on_call(w, call, &c.procedure, &c.args));
            }
            Some(Upcall::Subscribe { topic }) => {
                let mut decision = Subscribe::Refuse;
                self.split(ctx, |app, w| decision = app.on_subscribe(w, conn, &topic));
                let answer = match decision {
                    Subscribe::Allow => Ok(()),
                    Subscribe::Refuse => Err("subscription refused"),
                    Subscribe::Later => return,
                };
                self.state.v2.decide_subscription(ctx, conn, &topic, answer);
            }
        }
    }

    /// The wrapped app.
    pub fn app(&self) -> &A {
        &self.app
    }

    fn split(&mut self, ctx: &mut Context<'_>, f: impl FnOnce(&mut A, &mut WampContext<'_, '_>)) {
        let mut wctx = WampContext {
            ctx,
            state: &mut self.state,
        };
        f(&mut self.app, &mut wctx);
    }

    fn protocol_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        log::info!("{conn}: WAMP protocol error, closing with {code}: {reason}");
        ctx.close(conn, code, reason);
    }

    fn handle(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Incoming) {
        match msg {
            Incoming::Prefix { prefix, uri } => {
                let Some(session) = self.state.sessions.get_mut(conn) else {
                    return;
                };
                if session.prefixes.len() >= MAX_PREFIXES && !session.prefixes.contains_key(&prefix)
                {
                    return self.protocol_error(ctx, conn, close::POLICY, "too many prefixes");
                }
                session.prefixes.insert(prefix, uri);
            }
            Incoming::Call {
                call_id,
                proc_uri,
                args,
            } => {
                let procedure = self.state.expand(conn, &proc_uri);
                let call = Call { conn, id: call_id };
                if procedure == PROC_RESUME {
                    return self.resume(ctx, call, &args);
                }
                self.split(ctx, |app, w| app.on_call(w, call, &procedure, &args));
            }
            Incoming::Subscribe { topic } => {
                let topic = self.state.expand(conn, &topic);
                let Some(session) = self.state.sessions.get(conn) else {
                    return;
                };
                if session.topics.contains(&topic) {
                    return;
                }
                if session.topics.len() >= MAX_SUBSCRIPTIONS {
                    return self.protocol_error(ctx, conn, close::POLICY, "too many subscriptions");
                }
                let mut decision = Subscribe::Refuse;
                self.split(ctx, |app, w| decision = app.on_subscribe(w, conn, &topic));
                match decision {
                    Subscribe::Allow => {
                        self.state.add_subscription(ctx, conn, topic);
                    }
                    Subscribe::Refuse => {
                        log::debug!("{conn}: subscription to {topic} refused by the application");
                    }
                    Subscribe::Later => {}
                }
            }
            Incoming::Unsubscribe { topic } => {
                let topic = self.state.expand(conn, &topic);
                if self.state.unsubscribe(conn, &topic) {
                    self.state.sync_bus(ctx);
                    self.split(ctx, |app, w| app.on_unsubscribe(w, conn, &topic));
                }
            }
            Incoming::Publish {
                topic,
                event,
                exclude,
            } => {
                let topic = self.state.expand(conn, &topic);
                if topic.starts_with(META_PREFIX) {
                    // WAMP v1 has no error for a PUBLISH: drop it.
                    log::debug!("{conn}: publish to server meta topic {topic} dropped");
                    return;
                }
                let (exclude, eligible) = match exclude {
                    Exclude::Nobody => (Vec::new(), Vec::new()),
                    Exclude::Me => (
                        self.state
                            .sessions
                            .get(conn)
                            .map(|s| vec![s.id.clone()])
                            .unwrap_or_default(),
                        Vec::new(),
                    ),
                    Exclude::Lists { exclude, eligible } => (exclude, eligible.unwrap_or_default()),
                };
                self.split(ctx, |app, w| {
                    app.on_publish(w, conn, &topic, &event, &exclude, &eligible)
                });
            }
        }
    }
}

impl<A: WampApp> WampServer<A> {
    /// `CALL urn:sprocket:resume [topic, position]`: subscribes the session
    /// to a durable topic and replays what the stream holds after
    /// `position` before any live event.
    fn resume(&mut self, ctx: &mut Context<'_>, call: Call, args: &[Value]) {
        let conn = call.conn;
        let fail = |ctx: &mut Context<'_>, desc: &str| {
            ctx.send_text(conn, &v1::call_error(&call.id, ERROR_RESUME, desc, None));
        };
        let (Some(topic), position) = (args.first().and_then(Value::as_str), args.get(1)) else {
            return fail(ctx, "resume takes [topic, position]");
        };
        let position = match position {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(_) => {
                return fail(
                    ctx,
                    "the position is a string from urn:sprocket:meta:position",
                );
            }
        };
        let topic = self.state.expand(conn, topic);
        if !ctx.is_durable(&topic) {
            return fail(ctx, "not a durable topic (see --durable-topics)");
        }
        let Some(session) = self.state.sessions.get(conn) else {
            return;
        };
        if session.topics.contains(&topic) {
            return fail(
                ctx,
                "already subscribed: resume instead of SUBSCRIBE, not after",
            );
        }
        if self.state.resuming.contains_key(&(conn, topic.clone())) {
            return fail(ctx, "a resume of this topic is under way");
        }
        let mut decision = Subscribe::Refuse;
        self.split(ctx, |app, w| decision = app.on_subscribe(w, conn, &topic));
        match decision {
            Subscribe::Allow => {}
            Subscribe::Refuse => return fail(ctx, "subscription refused"),
            Subscribe::Later => {
                return fail(
                    ctx,
                    "this topic's subscriptions are decided later: SUBSCRIBE instead",
                );
            }
        }
        if position.is_some_and(|p| crate::bus::remote::durable::parse_position(p).is_none()) {
            return fail(ctx, "malformed position");
        }
        // Subscribed first: the read then waits for the bus's subscription,
        // so that every event is in the read or comes live (held).
        if !self.state.add_subscription(ctx, conn, topic.clone()) {
            return fail(ctx, "too many subscriptions");
        }
        let Some(read) = ctx.bus_history(&topic, position) else {
            return fail(ctx, "the topic's stream cannot be read");
        };
        self.state.resume_reads.insert(read, (conn, topic.clone()));
        let resume = Resume {
            call,
            held: Vec::new(),
            overflowed: false,
        };
        self.state.resuming.insert((conn, topic), resume);
    }

    /// The stream's answer to a resume: what was missed, then what waited,
    /// then the result.
    fn resumed(
        &mut self,
        ctx: &mut Context<'_>,
        key: (ConnId, String),
        answer: Result<crate::bus::History, String>,
    ) {
        let Some(r) = self.state.resuming.remove(&key) else {
            return;
        };
        let conn = key.0;
        let (mut last, mut complete, mut replayed) = (None, !r.overflowed, 0);
        match answer {
            Ok(history) => {
                complete &= history.complete;
                last = history.position.clone();
                for e in &history.events {
                    replayed += usize::from(self.state.send_one(ctx, conn, e));
                }
            }
            Err(e) => {
                log::warn!("{conn}: resume of {}: {e}", key.1);
                complete = false;
            }
        }
        // What came live meanwhile, but what the replay already had.
        let seen = last
            .as_deref()
            .and_then(crate::bus::remote::durable::parse_position);
        let seen = seen.map(|(e, id)| (e.to_owned(), id));
        for e in &r.held {
            let at = e
                .position
                .as_deref()
                .and_then(crate::bus::remote::durable::parse_position);
            if let (Some((ep, id)), Some((sep, sid))) = (at, &seen)
                && ep == sep
                && id <= *sid
            {
                continue;
            }
            self.state.send_one(ctx, conn, e);
            if e.position.is_some() {
                last = e.position.clone();
            }
        }
        if let Some((e, id)) = last
            .as_deref()
            .and_then(crate::bus::remote::durable::parse_position)
        {
            self.state.floors.insert(key.clone(), (e.to_owned(), id));
        }
        let result = serde_json::json!({
            "position": last,
            "replayed": replayed,
            "complete": complete,
        });
        ctx.send_text(conn, &v1::call_result(&r.call.id, &result));
    }
}

/// The bus event of a WAMP publish (an empty `eligible` is everybody).
fn bus_event(
    topic: &str,
    event: &Value,
    exclude: &[String],
    eligible: &[String],
    publisher: Option<String>,
) -> crate::bus::Event {
    crate::bus::Event {
        exclude: exclude.to_vec(),
        eligible: (!eligible.is_empty()).then(|| eligible.to_vec()),
        publisher,
        ..crate::bus::Event::raw(topic, event.to_string())
    }
}

/// 128 random bits as hex, from the OS: not guessable by other clients
/// (nor repeated by another process: ids are unique cluster-wide).
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl<A: WampApp> Application for WampServer<A> {
    fn protocols(&self) -> &[&str] {
        &["wamp", "wamp.2.json", "wamp.2.msgpack"]
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        if let Some(serializer) = req.protocol.as_deref().and_then(Serializer::from_protocol) {
            // WAMP v2: the client speaks first (HELLO).
            self.state.v2.open(conn, serializer);
            return self.split(ctx, |app, w| app.on_open(w, conn, req));
        }
        let Some(id) = new_session_id() else {
            log::error!("{conn}: no randomness for a WAMP session id");
            return ctx.close(conn, close::INTERNAL_ERROR, "internal error");
        };
        ctx.send_text(conn, &v1::welcome(&id, &self.ident));
        self.state.by_session_id.insert(id.clone(), conn);
        let session = Session {
            id,
            prefixes: HashMap::new(),
            topics: Vec::new(),
        };
        self.state.sessions.insert(conn, session);
        self.split(ctx, |app, w| app.on_open(w, conn, req));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        if self.state.v2.has(conn) {
            return self.v2_message(ctx, conn, msg);
        }
        let Message::Text(text) = msg else {
            return self.protocol_error(
                ctx,
                conn,
                close::UNSUPPORTED_DATA,
                "WAMP v1 messages are JSON text",
            );
        };
        match v1::decode(text) {
            Ok(incoming) => self.handle(ctx, conn, incoming),
            Err(DecodeError::BadCall { call_id, reason }) => {
                ctx.send_text(
                    conn,
                    &v1::call_error(&call_id, ERROR_INVALID_CALL, reason, None),
                );
            }
            Err(e) => self.protocol_error(ctx, conn, close::INVALID_PAYLOAD, &e.to_string()),
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, _code: u16, _reason: &str) {
        if self.state.v2.has(conn) {
            self.state.v2.close(ctx, conn);
            return self.split(ctx, |app, w| app.on_close(w, conn));
        }
        let Some(session) = self.state.sessions.remove(conn) else {
            return;
        };
        self.state.by_session_id.remove(&session.id);
        self.state.resuming.retain(|(c, _), _| *c != conn);
        self.state.floors.retain(|(c, _), _| *c != conn);
        for topic in &session.topics {
            if let Some(subs) = self.state.topics.get_mut(topic) {
                subs.retain(|c| *c != conn);
                if subs.is_empty() {
                    self.state.topics.remove(topic);
                    self.state.drop_bus(topic);
                }
            }
        }
        self.state.sync_bus(ctx);
        self.split(ctx, |app, w| app.on_close(w, conn));
    }

    /// WAMP v2 sessions are told GOODBYE `wamp.close.system_shutdown`
    /// before the server's 1001 (v1 has no such message).
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        self.state.v2.shutdown(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if self.state.v2.owns_timer(timer) {
            return self.state.v2.timer(ctx, timer);
        }
        self.split(ctx, |app, w| app.on_timer(w, timer));
    }

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if let Reply::History(answer) = reply {
            if let Some(key) = self.state.resume_reads.remove(&ticket) {
                return self.resumed(ctx, key, answer);
            }
            return self.split(ctx, |app, w| {
                app.on_reply(w, ticket, Reply::History(answer))
            });
        }
        if self.state.v2.owns_ticket(ticket) {
            match reply {
                Reply::Bus(event) => {
                    self.state.v2.bus_event(ctx, ticket, event);
                    return;
                }
                Reply::Gap { topic, missed } => {
                    log::debug!("WAMP v2 subscribers of {topic:?} missed {missed:?} events");
                    return;
                }
                _ => {}
            }
        }
        if self.state.bus_topics.contains_key(&ticket) {
            match reply {
                Reply::Bus(event) => {
                    self.state.deliver(ctx, event);
                    return;
                }
                Reply::Gap { topic, missed } => {
                    self.state.announce_gap(ctx, topic, missed);
                    return;
                }
                _ => {}
            }
        }
        self.split(ctx, |app, w| app.on_reply(w, ticket, reply));
    }
}
