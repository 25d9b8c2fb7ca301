//! The application layer: the [`Application`] trait apps implement (the
//! shape of Ratchet's `MessageComponentInterface`), the [`Context`] they act
//! through, and the stock components: [`Aggregate`], [`Router`],
//! [`OriginCheck`], [`IpBlocklist`], and the [`Echo`] and [`Chat`] apps;
//! and [`ConnMap`] / [`ConnSet`] for per-connection state.
//!
//! Apps never touch sockets. Everything they ask for through the context
//! (sends, closes, timers) is queued and carried out by the reactor after
//! the callback returns, so no callback can re-enter another.

mod blocklist;
mod builtin;
mod connmap;
mod context;
mod origin;
mod router;

pub use blocklist::{Cidr, IpBlocklist};
pub use builtin::{Chat, Echo};
pub use connmap::{ConnMap, ConnSet};
pub use context::{Context, Sink};
pub use origin::OriginCheck;
pub use router::{Aggregate, Router};

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

/// Identifies a timer created through [`Context::add_timer`] or
/// [`Context::add_periodic_timer`]. Unique for the life of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

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

    /// Decides on an opening handshake before the 101 is sent: `Ok` with the
    /// chosen subprotocol (if any), or a refusal with an HTTP status. The
    /// default picks the client's first offer that [`Self::protocols`] lists;
    /// if there is none, no protocol is named (RFC 6455 §4.2.2).
    fn accept(&mut self, req: &Request) -> Result<Option<String>, Reject> {
        Ok(negotiate(self.protocols(), &req.offered_protocols))
    }

    /// A plain HTTP GET (no WebSocket upgrade) for this app's path: return a
    /// page to serve it, or `None` (the default) for `426 Upgrade Required`.
    fn http(&mut self, req: &Request) -> Option<Page> {
        let _ = req;
        None
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

    /// A timer this app created fired. Composite apps pass timers to all
    /// their children; each ignores ids it did not create.
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (ctx, timer);
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
    fn accept(&mut self, req: &Request) -> Result<Option<String>, Reject> {
        (**self).accept(req)
    }
    fn http(&mut self, req: &Request) -> Option<Page> {
        (**self).http(req)
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
}

/// Forwards every event but `accept` to the field `$inner`; for wrappers
/// that only add a handshake check.
macro_rules! delegate_events {
    ($inner:ident) => {
        fn protocols(&self) -> &[&str] {
            self.$inner.protocols()
        }
        fn http(&mut self, req: &Request) -> Option<Page> {
            self.$inner.http(req)
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
        fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
            self.$inner.on_timer(ctx, timer)
        }
    };
}
pub(crate) use delegate_events;

#[cfg(test)]
pub(crate) mod testing;
