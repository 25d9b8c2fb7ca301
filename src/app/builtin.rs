//! The two apps the binary serves by default.

use super::{Application, ConnId, ConnSet, Context, Message, Request};

/// Sends every message back to its sender.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Application for Echo {
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        ctx.send(conn, msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
}

/// Relays every message to all *other* members (the classic Ratchet chat).
#[derive(Debug, Default)]
pub struct Chat {
    members: ConnSet,
}

impl Chat {
    /// Number of connected members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl Application for Chat {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, _: &Request) {
        self.members.insert(conn);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        ctx.broadcast(self.members.iter().filter(|m| *m != conn), msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: u16, _: &str) {
        self.members.remove(conn);
    }
}
