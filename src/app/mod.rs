//! The application layer: the [`Application`] trait apps implement (the
//! shape of Ratchet's `MessageComponentInterface`), the [`Context`] they act
//! through, and the stock components: [`Aggregate`], [`Router`],
//! [`OriginCheck`], [`IpBlocklist`], [`Admin`] (`/health`, `/metrics`), and
//! the [`Echo`] and [`Chat`] apps; and [`ConnMap`] / [`ConnSet`] for
//! per-connection state.
//!
//! Apps never touch sockets. Everything they ask for through the context
//! (sends, closes, timers, decisions, outbound requests) is queued and
//! carried out by the reactor after the callback returns, so no callback
//! can re-enter another. What answers later (timers, HTTP responses, Redis
//! replies and messages, inbox values) comes back to the app that asked,
//! by its [`Ticket`] or [`TimerId`] and their [`Route`].

mod admin;
mod backend;
mod blocklist;
mod builtin;
mod connmap;
mod context;
mod grip;
mod origin;
mod push;
mod pusher;
mod route;
mod router;
mod session;

pub use crate::cidr::BadCidr;
pub use admin::Admin;
pub use backend::{AuthBackend, Backend, Who, first_line};
pub use blocklist::{Cidr, IpBlocklist};
pub use builtin::{Chat, Echo};
pub use connmap::{ConnMap, ConnSet};
pub use context::{Context, RedisId, Sink, ZmqId};
pub use grip::{GripLimits, GripPublish, GripRoute, MIN_KEEP_ALIVE_INTERVAL};
pub use origin::OriginCheck;
pub use push::{PushEndpoint, RedisPush, ZmqPush, event_of as push_event};
pub use pusher::{PusherApp, PusherLimits, PusherServer};
pub use route::{Route, Ticket, TimerId};
pub use router::{Aggregate, Router};
pub use session::{
    Done as SessionDone, SessionClient, SessionOptions, SessionProvider, SessionStore,
};

pub use crate::http::{Page, Reject, Request};
use std::fmt;

/// Identifies a connection for its whole life. The generation makes sure a
/// stale id never reaches a later connection that reuses the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// Builds an id; used by the reactor (and by tests of apps).
    pub const fn new(index: u32, generation: u32) -> Self {
        ConnId { index, generation }
    }

    /// A small dense number, unique among the connections open at one time
    /// (reused after a connection closes): handy as an index into a `Vec`.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The generation of the slot this id was issued for.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// A complete message, borrowed for the duration of a callback. A message
/// that arrived in one frame is a slice of the connection's read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// True for text.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }
}

/// Why a connection is failing, reported to [`Application::on_error`] just
/// before [`Application::on_close`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// The peer broke RFC 6455; the close code sent is the error's.
    Protocol(crate::ws::ProtocolError),
    /// The peer stopped reading and its outbound buffer passed the limit.
    SlowConsumer,
    /// No pong arrived within the ping interval.
    PingTimeout,
    /// The peer did not answer our close frame in time.
    CloseTimeout,
    /// An application callback for this connection panicked (close 1011).
    Panic,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Protocol(e) => write!(f, "protocol error: {e}"),
            ConnError::SlowConsumer => f.write_str("slow consumer: outbound buffer limit exceeded"),
            ConnError::PingTimeout => f.write_str("no pong within the ping interval"),
            ConnError::CloseTimeout => f.write_str("close handshake timed out"),
            ConnError::Panic => f.write_str("application callback panicked"),
        }
    }
}

/// A decision on an opening handshake (see [`Application::accept`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Open now, with this subprotocol (`None`: name none).
    Now(Option<String>),
    /// The app decides later, through [`Context::accept`] or
    /// [`Context::reject`] for this connection; until then the handshake
    /// waits (bounded by the handshake timeout, then 503) and whatever the
    /// client sends after its request is held, not decoded. The protocol is
    /// the one to use if the later acceptance names none.
    Later(Option<String>),
}

/// An answer to a plain HTTP request (see [`Application::http`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Http {
    /// Not a plain HTTP endpoint: the server answers `426 Upgrade
    /// Required`, or the refusal [`Application::accept`] gives.
    Pass,
    /// This response, now.
    Respond(Page),
    /// The response comes later through [`Context::respond`] (bounded by
    /// the handshake timeout, then 503).
    Later,
}

/// The completion of something an app started that answers later,
/// delivered to [`Application::on_reply`] with its [`Ticket`].
#[derive(Debug)]
pub enum Reply<'a> {
    /// The response to [`Context::http_request`], or why there is none.
    Http(Result<crate::clients::http::Response, crate::reactor::HttpError>),
    /// The reply to [`Context::redis`], or why there is none.
    Redis(Result<crate::clients::resp::Reply, crate::clients::redis::ReplyError>),
    /// A message on a channel subscribed with [`Context::redis_subscribe`]
    /// (`pattern` is set for a pattern subscription).
    Message {
        /// The channel it was published on.
        channel: &'a [u8],
        /// The pattern that matched, for a pattern subscription.
        pattern: Option<&'a [u8]>,
        /// The message.
        payload: &'a [u8],
    },
    /// A value another thread sent through an [`crate::reactor::Inbox`].
    Inbox(Box<dyn std::any::Any + Send>),
    /// An event on a topic subscribed with [`Context::bus_subscribe`].
    Bus(&'a crate::bus::Event),
    /// Events of other processes on a topic subscribed with
    /// [`Context::bus_subscribe`] were lost. With `missed`, exactly that
    /// many of one process, just before the next event (the Redis bus saw
    /// a gap in its numbers). Without, the bus's subscription to Redis was
    /// down and is back: events published meanwhile may be lost (the gaps
    /// that later events show are counted again, exactly).
    Gap {
        /// The topic.
        topic: &'a str,
        /// How many events were lost, if known.
        missed: Option<u64>,
    },
    /// The answer to [`Context::bus_history`], or why there is none.
    History(Result<crate::bus::History, String>),
    /// The receipt of [`Context::publish_with_receipt`]: how many
    /// connections the subscribers' deliveries reached.
    Published {
        /// Messages the subscribing apps queued while handling the event.
        delivered: usize,
    },
}

/// A WebSocket application: what Ratchet calls a `MessageComponentInterface`.
///
/// Every callback gets a [`Context`] to act through. Callbacks run on the
/// reactor thread and must not block. A panic in a callback is caught: the
/// connection concerned is closed with 1011 and everyone else keeps going.
pub trait Application {
    /// Subprotocols this app speaks, in the server's order of preference.
    fn protocols(&self) -> &[&str] {
        &[]
    }

    /// Decides on an opening handshake before the 101 is sent: accept now
    /// (with a subprotocol or none), decide later, or refuse with an HTTP
    /// status. `conn` is the id the connection will keep once open. The
    /// default accepts now with the client's first offer that
    /// [`Self::protocols`] lists, or no protocol (RFC 6455 §4.2.2).
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        let _ = (ctx, conn);
        Ok(Accept::Now(negotiate(
            self.protocols(),
            &req.offered_protocols,
        )))
    }

    /// A plain HTTP request (no WebSocket upgrade) for this app's path,
    /// with its method and body: answer now, later, or [`Http::Pass`] (the
    /// default) for `426 Upgrade Required`.
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        let _ = (ctx, conn, req);
        Http::Pass
    }

    /// The server starts serving: subscribe, start timers. Called once,
    /// before the first connection; composites call it on every child.
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A connection is open; `req` is its handshake request.
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request);

    /// A complete message arrived.
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>);

    /// The connection closed; called exactly once per opened connection.
    /// `code` is the peer's close code, 1005 if its close frame had none,
    /// 1006 if the connection dropped without a close handshake, or the
    /// code the server sent when it failed the connection.
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str);

    /// The connection is failing for `error`; `on_close` follows.
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        let _ = (ctx, conn, error);
    }

    /// The server is shutting down: right after this, every connection
    /// still open is closed with 1001. An app may first close its own with
    /// its protocol's goodbye (a close code its clients read as "reconnect
    /// now", a farewell message). Called once; composites call it on every
    /// child.
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A timer this app created fired. Composite apps hand it to the child
    /// that created it, and to no other.
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (ctx, timer);
    }

    /// Something this app started answered (an outbound request, a
    /// subscription's message, an inbox value). Composite apps hand it to
    /// the child that holds the ticket, and to no other.
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        let _ = (ctx, ticket, reply);
    }
}

/// RFC 6455 §4.2.2: the first protocol the client offers that we speak.
pub fn negotiate(ours: &[&str], offered: &[String]) -> Option<String> {
    offered.iter().find(|p| ours.contains(&p.as_str())).cloned()
}

impl<A: Application + ?Sized> Application for Box<A> {
    fn protocols(&self) -> &[&str] {
        (**self).protocols()
    }
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        (**self).accept(ctx, conn, req)
    }
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        (**self).http(ctx, conn, req)
    }
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        (**self).on_start(ctx)
    }
    fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
        (**self).on_shutdown(ctx)
    }
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        (**self).on_open(ctx, conn, req)
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        (**self).on_message(ctx, conn, msg)
    }
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        (**self).on_close(ctx, conn, code, reason)
    }
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        (**self).on_error(ctx, conn, error)
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        (**self).on_timer(ctx, timer)
    }
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        (**self).on_reply(ctx, ticket, reply)
    }
}

/// Forwards every event but `accept` and `http` to the field `$inner`; for
/// wrappers that add a check before the inner app.
macro_rules! delegate_events {
    ($inner:ident) => {
        $crate::app::delegate_connection_events!($inner);
        fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
            self.$inner.on_timer(ctx, timer)
        }
        fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
            self.$inner.on_reply(ctx, ticket, reply)
        }
    };
}
pub(crate) use delegate_events;

/// Forwards `protocols`, `on_start`, `on_shutdown` and the connection
/// events (open, message, close, error) to the field `$inner`; for
/// wrappers that also keep timers or replies of their own.
macro_rules! delegate_connection_events {
    ($inner:ident) => {
        fn protocols(&self) -> &[&str] {
            self.$inner.protocols()
        }
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            self.$inner.on_start(ctx)
        }
        fn on_shutdown(&mut self, ctx: &mut Context<'_>) {
            self.$inner.on_shutdown(ctx)
        }
        fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
            self.$inner.on_open(ctx, conn, req)
        }
        fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
            self.$inner.on_message(ctx, conn, msg)
        }
        fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
            self.$inner.on_close(ctx, conn, code, reason)
        }
        fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &ConnError) {
            self.$inner.on_error(ctx, conn, error)
        }
    };
}
pub(crate) use delegate_connection_events;

#[cfg(test)]
pub(crate) mod testing;
