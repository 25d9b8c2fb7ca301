//! The handle applications act through.

use super::{ConnId, Message, Page, Reject, Route, Ticket, TimerId};
use crate::clients::http;
use crate::session::Session;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Redis server the reactor talks to, as registered with
/// [`crate::Server::add_redis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RedisId(pub u32);

/// A ZeroMQ PULL socket the reactor binds, as returned by
/// [`crate::Server::listen_zmq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZmqId(pub u32);

/// What a [`Context`] forwards to. The reactor implements it; implement it
/// yourself to unit-test an application without sockets (the methods with
/// a default answer "not available here").
pub trait Sink {
    /// Queues `msg` to `conn`; false if the connection is not open.
    fn send(&mut self, conn: ConnId, msg: Message<'_>) -> bool;
    /// Queues `msg` to every connection in `conns`, encoding the frame once;
    /// returns how many were open and got it.
    fn send_many(&mut self, conns: &mut dyn Iterator<Item = ConnId>, msg: Message<'_>) -> usize;
    /// Starts the close handshake with `code` and `reason`.
    fn close(&mut self, conn: ConnId, code: u16, reason: &str);
    /// Whether `conn` is open (handshake done, no close started).
    fn is_open(&self, conn: ConnId) -> bool;
    /// Schedules a timer for the app at `route` after `delay`, repeating
    /// every `period` if given.
    fn add_timer(&mut self, delay: Duration, period: Option<Duration>, route: Route) -> TimerId;
    /// Cancels a timer; false if it was not pending.
    fn cancel_timer(&mut self, timer: TimerId) -> bool;
    /// The reactor's current time (read once per loop turn).
    fn now(&self) -> Instant;
    /// When anything (a message, a ping or pong frame) last arrived on the
    /// open WebSocket `conn`; `None` if it is not open, or not known here.
    fn last_input(&self, conn: ConnId) -> Option<Instant> {
        let _ = conn;
        None
    }
    /// Whether `conn` waits for a decision: a handshake or a plain HTTP
    /// request the app deferred.
    fn is_deciding(&self, conn: ConnId) -> bool {
        let _ = conn;
        false
    }
    /// Completes a handshake the app deferred: open with `protocol`.
    fn accept(&mut self, conn: ConnId, protocol: Option<String>) -> bool {
        let _ = (conn, protocol);
        false
    }
    /// Refuses a handshake the app deferred.
    fn reject(&mut self, conn: ConnId, reject: Reject) -> bool {
        let _ = (conn, reject);
        false
    }
    /// Answers a plain HTTP request the app deferred.
    fn respond(&mut self, conn: ConnId, page: Page) -> bool {
        let _ = (conn, page);
        false
    }
    /// Sends an HTTP request; the response comes to `route`'s `on_reply`.
    fn http_request(
        &mut self,
        url: &http::Url,
        request: http::Request,
        route: Route,
    ) -> Option<Ticket> {
        let _ = (url, request, route);
        None
    }
    /// Sends a Redis command; the reply comes to `route`'s `on_reply`.
    fn redis(&mut self, server: RedisId, args: &[&[u8]], route: Route) -> Option<Ticket> {
        let _ = (server, args, route);
        None
    }
    /// Subscribes `route` to a channel (or a pattern); messages come to its
    /// `on_reply` with the returned ticket, until [`Sink::redis_unsubscribe`].
    fn redis_subscribe(
        &mut self,
        server: RedisId,
        channel: &[u8],
        pattern: bool,
        route: Route,
    ) -> Option<Ticket> {
        let _ = (server, channel, pattern, route);
        None
    }
    /// Ends a subscription.
    fn redis_unsubscribe(&mut self, subscription: Ticket) -> bool {
        let _ = subscription;
        false
    }
    /// A sender other threads can use to hand values to `route`'s
    /// `on_reply`.
    fn inbox(&mut self, route: Route) -> Option<crate::reactor::Inbox> {
        let _ = route;
        None
    }
    /// The server's counters in the Prometheus text format.
    fn metrics_text(&self) -> String {
        String::new()
    }
    /// With the Redis bus: whether its subscription is up.
    fn bus_up(&self) -> Option<bool> {
        None
    }
    /// Whether `topic` is durable (kept in a Redis stream).
    fn is_durable(&self, topic: &str) -> bool {
        let _ = topic;
        false
    }
    /// Reads a durable topic's stream after `after` for `route`.
    fn bus_history(&mut self, topic: &str, after: Option<&str>, route: Route) -> Option<Ticket> {
        let _ = (topic, after, route);
        None
    }
    /// The session attached to `conn`.
    fn session(&self, conn: ConnId) -> Option<Arc<Session>> {
        let _ = conn;
        None
    }
    /// Attaches a session to `conn` (or detaches it); false if `conn` is
    /// gone.
    fn set_session(&mut self, conn: ConnId, session: Option<Arc<Session>>) -> bool {
        let _ = (conn, session);
        false
    }
    /// The user `conn` belongs to.
    fn user(&self, conn: ConnId) -> Option<Arc<str>> {
        let _ = conn;
        None
    }
    /// Sets (or clears) the user `conn` belongs to; false if `conn` is gone.
    fn set_user(&mut self, conn: ConnId, user: Option<Arc<str>>) -> bool {
        let _ = (conn, user);
        false
    }
    /// Counts an `outcome` of `family` in `/metrics`.
    fn count(&mut self, family: &'static str, outcome: &'static str) {
        let _ = (family, outcome);
    }
    /// What an app attached to `conn` for others (connect authorisation's
    /// `data`).
    fn data(&self, conn: ConnId) -> Option<Arc<serde_json::Value>> {
        let _ = conn;
        None
    }
    /// Attaches (or clears) `data` on `conn`; false if `conn` is gone.
    fn set_data(&mut self, conn: ConnId, data: Option<Arc<serde_json::Value>>) -> bool {
        let _ = (conn, data);
        false
    }
    /// Sends every message of ZeroMQ listener `source` to `route`.
    fn zmq_pull(&mut self, source: ZmqId, route: Route) -> Option<Ticket> {
        let _ = (source, route);
        None
    }
    /// Subscribes `route` to a bus topic.
    fn bus_subscribe(&mut self, topic: &str, route: Route) -> Option<Ticket> {
        let _ = (topic, route);
        None
    }
    /// Ends a bus subscription.
    fn bus_unsubscribe(&mut self, subscription: Ticket) -> bool {
        let _ = subscription;
        false
    }
    /// Publishes on the bus (to other processes too, with the Redis bus,
    /// unless `scope` is local), to every subscription but `skip`; with
    /// `receipt`, the returned ticket's reply says how many connections of
    /// this process the event reached.
    fn bus_publish(
        &mut self,
        event: crate::bus::Event,
        route: Route,
        receipt: bool,
        scope: crate::bus::Scope,
        skip: Option<Ticket>,
    ) -> Option<Ticket> {
        let _ = (event, route, receipt, scope, skip);
        None
    }
}

/// Passed to every [`Application`](super::Application) callback. Actions are
/// queued and carried out after the callback returns; output is written
/// once per connection per loop turn. The context knows which app of a
/// tree of composites is running (its [`Route`]), so that timers and
/// requests started here come back to that app.
pub struct Context<'a> {
    sink: &'a mut dyn Sink,
    route: Route,
}

impl<'a> Context<'a> {
    /// Wraps a sink, for the root app of the first listener.
    pub fn new(sink: &'a mut dyn Sink) -> Self {
        Context::at(sink, Route::ROOT)
    }

    /// Wraps a sink, for the app at `route`.
    pub fn at(sink: &'a mut dyn Sink, route: Route) -> Self {
        Context { sink, route }
    }

    /// The app this context runs.
    pub fn route(&self) -> Route {
        self.route
    }

    /// How deep in a tree of composites the running app is: a composite
    /// reads its child's index at this depth of a ticket's route.
    pub fn depth(&self) -> usize {
        self.route.depth()
    }

    /// Runs `f` as child `index` of the running (composite) app.
    pub fn child<R>(&mut self, index: usize, f: impl FnOnce(&mut Context<'a>) -> R) -> R {
        let pushed = self.route.push(index);
        if !pushed {
            log::error!(
                "apps nested deeper than {} composites: completions will not reach child {index}",
                super::route::MAX_DEPTH
            );
        }
        let result = f(self);
        if pushed {
            self.route.pop();
        }
        result
    }

    /// Sends a message; false if `conn` is no longer open.
    pub fn send(&mut self, conn: ConnId, msg: Message<'_>) -> bool {
        self.sink.send(conn, msg)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> bool {
        self.sink.send(conn, Message::Text(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, conn: ConnId, data: &[u8]) -> bool {
        self.sink.send(conn, Message::Binary(data))
    }

    /// Sends one message to many connections, framing it once. Returns how
    /// many connections were open and got it.
    pub fn broadcast<I: IntoIterator<Item = ConnId>>(
        &mut self,
        conns: I,
        msg: Message<'_>,
    ) -> usize {
        self.sink.send_many(&mut conns.into_iter(), msg)
    }

    /// Starts the close handshake. `code` must be one a peer may receive
    /// (1000–1003, 1007–1014, 3000–4999); anything else is sent as 1000.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        self.sink.close(conn, code, reason)
    }

    /// Whether `conn` is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.sink.is_open(conn)
    }

    /// Calls `on_timer` once after `delay` (ReactPHP's `addTimer`).
    pub fn add_timer(&mut self, delay: Duration) -> TimerId {
        self.sink.add_timer(delay, None, self.route)
    }

    /// Calls `on_timer` every `interval` until cancelled (`addPeriodicTimer`).
    pub fn add_periodic_timer(&mut self, interval: Duration) -> TimerId {
        self.sink.add_timer(interval, Some(interval), self.route)
    }

    /// Cancels a timer (`cancelTimer`); false if it was not pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.sink.cancel_timer(timer)
    }

    /// The reactor's current time.
    pub fn now(&self) -> Instant {
        self.sink.now()
    }

    /// When anything last arrived on the open WebSocket `conn`: a message,
    /// or a ping or pong frame, which the reactor answers itself and apps
    /// never see. For an app's own idle check (the Pusher server's
    /// `activity_timeout`) that counts control frames as activity. `None`
    /// if `conn` is not open (or the sink does not know).
    pub fn last_input(&self, conn: ConnId) -> Option<Instant> {
        self.sink.last_input(conn)
    }

    /// Whether `conn`'s handshake (or plain HTTP request) still waits for
    /// the decision deferred with [`super::Accept::Later`] (or
    /// [`super::Http::Later`]); false once decided, timed out or closed.
    pub fn is_deciding(&self, conn: ConnId) -> bool {
        self.sink.is_deciding(conn)
    }

    /// Opens a connection whose [`super::Accept::Later`] handshake the app
    /// has now decided on; `protocol` `None` takes the one given with
    /// `Later`. False if the connection is gone (timed out, closed).
    pub fn accept(&mut self, conn: ConnId, protocol: Option<String>) -> bool {
        self.sink.accept(conn, protocol)
    }

    /// Refuses a deferred handshake with an HTTP status and reason.
    pub fn reject(&mut self, conn: ConnId, reject: Reject) -> bool {
        self.sink.reject(conn, reject)
    }

    /// Applies a decision on a deferred handshake, as [`super::Application::accept`]
    /// would have returned it: open now, still later (nothing to do), or
    /// refuse. False if the connection no longer waits for it.
    pub fn decide(&mut self, conn: ConnId, decision: Result<super::Accept, Reject>) -> bool {
        match decision {
            Ok(super::Accept::Now(protocol)) => self.accept(conn, protocol),
            Ok(super::Accept::Later(_)) => self.is_deciding(conn),
            Err(reject) => self.reject(conn, reject),
        }
    }

    /// Answers a plain HTTP request the app answered [`super::Http::Later`].
    pub fn respond(&mut self, conn: ConnId, page: Page) -> bool {
        self.sink.respond(conn, page)
    }

    /// Sends `request` to `url`'s origin over the reactor's keep-alive
    /// pool; the response (or the error) comes to this app's `on_reply`
    /// with the returned ticket. `None` if the server cannot send it.
    pub fn http_request(&mut self, url: &http::Url, request: http::Request) -> Option<Ticket> {
        self.sink.http_request(url, request, self.route)
    }

    /// Sends a Redis command (pipelined on the server's connection to
    /// `server`); the reply comes to this app's `on_reply`. `None` if no
    /// such Redis server is configured.
    pub fn redis(&mut self, server: RedisId, args: &[&[u8]]) -> Option<Ticket> {
        self.sink.redis(server, args, self.route)
    }

    /// Subscribes this app to a Redis channel (`pattern`: PSUBSCRIBE);
    /// messages come to `on_reply` with the returned ticket. Subscriptions
    /// survive Redis outages (re-subscribed on reconnect).
    pub fn redis_subscribe(
        &mut self,
        server: RedisId,
        channel: &[u8],
        pattern: bool,
    ) -> Option<Ticket> {
        self.sink
            .redis_subscribe(server, channel, pattern, self.route)
    }

    /// Ends a subscription; false if it was not active.
    pub fn redis_unsubscribe(&mut self, subscription: Ticket) -> bool {
        self.sink.redis_unsubscribe(subscription)
    }

    /// A sender through which other threads hand values to this app's
    /// `on_reply` ([`super::Reply::Inbox`]), waking the reactor.
    pub fn inbox(&mut self) -> Option<crate::reactor::Inbox> {
        self.sink.inbox(self.route)
    }

    /// The server's counters in the Prometheus text format (what
    /// [`super::Admin`] serves at `/metrics`).
    pub fn metrics_text(&self) -> String {
        self.sink.metrics_text()
    }

    /// With the Redis bus ([`crate::Server::use_redis_bus`]): whether its
    /// subscription to Redis is up, so that other processes' events
    /// arrive. `None` without it.
    pub fn bus_up(&self) -> Option<bool> {
        self.sink.bus_up()
    }

    /// Whether `topic` is durable (`--durable-topics`): its events are
    /// kept in a Redis stream and delivered in the stream's order, in this
    /// process too, once Redis has them (so a publish is not delivered
    /// here at once).
    pub fn is_durable(&self, topic: &str) -> bool {
        self.sink.is_durable(topic)
    }

    /// Reads what a durable topic's stream holds after `after` (a
    /// [`crate::bus::Event::position`]; `None`: from the start), up to
    /// 1,000 events: the answer comes to `on_reply` as
    /// [`super::Reply::History`] with the returned ticket. `None` if the
    /// topic is not durable or the position is malformed.
    pub fn bus_history(&mut self, topic: &str, after: Option<&str>) -> Option<Ticket> {
        self.sink.bus_history(topic, after, self.route)
    }

    /// The PHP session attached to `conn` (by a
    /// [`super::SessionProvider`], or by an app that read one), as last
    /// read or written.
    pub fn session(&self, conn: ConnId) -> Option<Arc<Session>> {
        self.sink.session(conn)
    }

    /// Attaches `session` to `conn` (`None` detaches it), for every app
    /// to see; false if the connection is gone. It stays until the
    /// connection ends.
    pub fn set_session(&mut self, conn: ConnId, session: Option<Arc<Session>>) -> bool {
        self.sink.set_session(conn, session)
    }

    /// The user `conn` belongs to: from its session's user key, or set by
    /// an app (connect authorisation).
    pub fn user(&self, conn: ConnId) -> Option<Arc<str>> {
        self.sink.user(conn)
    }

    /// Sets the user `conn` belongs to; false if the connection is gone.
    pub fn set_user(&mut self, conn: ConnId, user: Option<Arc<str>>) -> bool {
        self.sink.set_user(conn, user)
    }

    /// Counts one `outcome` of `family`, shown in `/metrics` as
    /// `sprocket_<family>_total{outcome="…"}`.
    pub fn count(&mut self, family: &'static str, outcome: &'static str) {
        self.sink.count(family, outcome)
    }

    /// Subscribes this app to `topic` on the bus: every event published
    /// on it (by any app, any ingress) comes to `on_reply` as
    /// [`super::Reply::Bus`] with the returned ticket, until
    /// [`Context::bus_unsubscribe`].
    pub fn bus_subscribe(&mut self, topic: &str) -> Option<Ticket> {
        self.sink.bus_subscribe(topic, self.route)
    }

    /// Ends a bus subscription; false if it was not active.
    pub fn bus_unsubscribe(&mut self, subscription: Ticket) -> bool {
        self.sink.bus_unsubscribe(subscription)
    }

    /// Publishes `event` to the bus subscribers of its topic (delivered
    /// here after this callback returns, and, with the Redis bus, to the
    /// subscribers of every other process).
    pub fn publish(&mut self, event: crate::bus::Event) {
        self.sink
            .bus_publish(event, self.route, false, crate::bus::Scope::Cluster, None);
    }

    /// [`Context::publish`] to every subscription but `own`, one of the
    /// caller's own that it delivered to itself already (so that its
    /// subscribers get the event in order with the caller's other output).
    pub fn publish_beside(&mut self, event: crate::bus::Event, own: Option<Ticket>) {
        self.sink
            .bus_publish(event, self.route, false, crate::bus::Scope::Cluster, own);
    }

    /// Publishes `event` to the bus subscribers of this process only: for
    /// what every process receives by itself (a Redis push channel each
    /// one subscribes to), which the Redis bus would otherwise repeat.
    pub fn publish_local(&mut self, event: crate::bus::Event) {
        self.sink
            .bus_publish(event, self.route, false, crate::bus::Scope::Local, None);
    }

    /// [`Context::publish`], and a [`super::Reply::Published`] to this
    /// app with the returned ticket once every subscriber of this process
    /// handled it, saying how many connections it reached here.
    pub fn publish_with_receipt(&mut self, event: crate::bus::Event) -> Option<Ticket> {
        self.sink
            .bus_publish(event, self.route, true, crate::bus::Scope::Cluster, None)
    }

    /// What connect authorisation attached to `conn` (the backend's
    /// `data`), sent along with its later backend calls.
    pub fn data(&self, conn: ConnId) -> Option<Arc<serde_json::Value>> {
        self.sink.data(conn)
    }

    /// Attaches `data` to `conn` (`None` clears it); false if it is gone.
    pub fn set_data(&mut self, conn: ConnId, data: Option<Arc<serde_json::Value>>) -> bool {
        self.sink.set_data(conn, data)
    }

    /// Takes the messages of a ZeroMQ PULL socket bound with
    /// [`crate::Server::listen_zmq`]: each comes to this app's `on_reply`
    /// as [`super::Reply::Message`] (`channel` is `tcp://ADDR`, `payload`
    /// the message's last part), with the returned ticket. `None` if there
    /// is no such listener.
    pub fn zmq_pull(&mut self, source: ZmqId) -> Option<Ticket> {
        self.sink.zmq_pull(source, self.route)
    }
}
