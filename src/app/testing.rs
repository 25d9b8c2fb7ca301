//! A recording [`Sink`] for unit tests of applications.

use super::{ConnId, Context, Message, Route, Sink, TimerId};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Recorder {
    pub open: Vec<ConnId>,
    pub sent: Vec<(ConnId, Vec<u8>, bool)>,
    pub closed: Vec<(ConnId, u16)>,
    pub timers: Vec<(TimerId, Duration, Option<Duration>)>,
    next_timer: u64,
}

impl Sink for Recorder {
    fn send(&mut self, conn: ConnId, msg: Message<'_>) -> bool {
        if !self.open.contains(&conn) {
            return false;
        }
        self.sent
            .push((conn, msg.as_bytes().to_vec(), msg.is_text()));
        true
    }
    fn send_many(&mut self, conns: &mut dyn Iterator<Item = ConnId>, msg: Message<'_>) -> usize {
        conns.filter(|c| self.send(*c, msg)).count()
    }
    fn close(&mut self, conn: ConnId, code: u16, _reason: &str) {
        self.closed.push((conn, code));
    }
    fn is_open(&self, conn: ConnId) -> bool {
        self.open.contains(&conn)
    }
    fn add_timer(&mut self, delay: Duration, period: Option<Duration>, route: Route) -> TimerId {
        self.next_timer += 1;
        let id = TimerId::new(self.next_timer, route);
        self.timers.push((id, delay, period));
        id
    }
    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        let before = self.timers.len();
        self.timers.retain(|t| t.0 != timer);
        before != self.timers.len()
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl Recorder {
    pub fn ctx(&mut self) -> Context<'_> {
        Context::new(self)
    }
}
