//! The two apps the binary serves by default.

use super::{Application, ConnId, Context, Message, Request};

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
    members: Vec<ConnId>,
    /// Position of each member in `members`, by [`ConnId::index`].
    slot: Vec<u32>,
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
        if self.slot.len() <= conn.index() {
            self.slot.resize(conn.index() + 1, u32::MAX);
        }
        self.slot[conn.index()] = self.members.len() as u32;
        self.members.push(conn);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        ctx.broadcast(self.members.iter().copied().filter(|m| *m != conn), msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: u16, _: &str) {
        let Some(&pos) = self.slot.get(conn.index()) else {
            return;
        };
        let pos = pos as usize;
        if self.members.get(pos) != Some(&conn) {
            return;
        }
        self.members.swap_remove(pos);
        if let Some(moved) = self.members.get(pos) {
            self.slot[moved.index()] = pos as u32;
        }
        self.slot[conn.index()] = u32::MAX;
    }
}
