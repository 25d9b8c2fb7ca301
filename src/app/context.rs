//! The handle applications act through.

use super::{ConnId, Message, TimerId};
use std::time::{Duration, Instant};

/// What a [`Context`] forwards to. The reactor implements it; implement it
/// yourself to unit-test an application without sockets.
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
    /// Schedules a timer after `delay`, repeating every `period` if given.
    fn add_timer(&mut self, delay: Duration, period: Option<Duration>) -> TimerId;
    /// Cancels a timer; false if it was not pending.
    fn cancel_timer(&mut self, timer: TimerId) -> bool;
    /// The reactor's current time (read once per loop turn).
    fn now(&self) -> Instant;
}

/// Passed to every [`Application`](super::Application) callback. Actions are
/// queued and carried out after the callback returns; output is written
/// once per connection per loop turn.
pub struct Context<'a> {
    sink: &'a mut dyn Sink,
}

impl<'a> Context<'a> {
    /// Wraps a sink.
    pub fn new(sink: &'a mut dyn Sink) -> Self {
        Context { sink }
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
        self.sink.add_timer(delay, None)
    }

    /// Calls `on_timer` every `interval` until cancelled (`addPeriodicTimer`).
    pub fn add_periodic_timer(&mut self, interval: Duration) -> TimerId {
        self.sink.add_timer(interval, Some(interval))
    }

    /// Cancels a timer (`cancelTimer`); false if it was not pending.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.sink.cancel_timer(timer)
    }

    /// The reactor's current time.
    pub fn now(&self) -> Instant {
        self.sink.now()
    }
}
