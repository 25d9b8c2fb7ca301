//! The handle applications act through.

use super::{ConnId, Message, Page, Reject, Route, Ticket, TimerId};
use crate::clients::http;
use std::time::{Duration, Instant};

/// A Redis server the reactor talks to, as registered with
/// [`crate::Server::add_redis`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RedisId(pub u32);

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
}
