//! Drives the reactor's protocol machinery — handshake, frame decoding,
//! application dispatch, output queueing — without sockets or a poll loop,
//! for fuzzing and deterministic tests. Input is handed over exactly as the
//! server's read path would (shared buffer first, then the connection's own
//! buffer once a frame is incomplete). Not a stable API.

use super::buf::READ_BUFFER;
use super::core::{Conn, Core, Phase};
use super::dispatch::{self, call, ingest_own, ingest_shared};
use crate::app::{Application, ConnId};
use crate::config::Config;

/// One application and its connections, minus the sockets.
pub struct Harness<A> {
    core: Core,
    app: A,
    rbuf: Vec<u8>,
    next_generation: u32,
}

impl<A: Application> Harness<A> {
    /// A harness serving `app` with `config`'s limits.
    pub fn new(config: Config, app: A) -> Self {
        Harness {
            core: Core::new(config),
            app,
            rbuf: vec![0; READ_BUFFER],
            next_generation: 0,
        }
    }

    /// A new client connection (before its handshake); returns its slot.
    pub fn connect(&mut self) -> usize {
        self.next_generation += 1;
        let entry = self.core.conns.vacant_entry();
        let key = entry.key();
        let id = ConnId::new(key as u32, self.next_generation);
        entry.insert(Conn::new(
            "127.0.0.1:40000".parse().expect("literal address"),
            id,
            0,
            self.core.now,
        ));
        key
    }

    /// Bytes arriving from the client, in one read per `READ_BUFFER` (or
    /// per free space of the connection's own buffer), as the server reads.
    pub fn feed(&mut self, key: usize, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(conn) = self.core.conns.get_mut(key) else {
                return;
            };
            let n = if conn.input.is_empty() {
                let n = bytes.len().min(READ_BUFFER);
                self.rbuf[..n].copy_from_slice(&bytes[..n]);
                ingest_shared(&mut self.core, &mut self.app, key, &mut self.rbuf[..n]);
                n
            } else {
                let spare = conn.input.spare();
                let n = bytes.len().min(spare.len());
                spare[..n].copy_from_slice(&bytes[..n]);
                ingest_own(&mut self.core, &mut self.app, key, n);
                n
            };
            bytes = &bytes[n..];
        }
        self.end_turn();
    }

    /// Moves the harness's clock forward by `by` and runs what the server
    /// runs when time passes: the deadline sweep (handshake, ping, pong and
    /// close timeouts, the end of a drain) and due application timers.
    pub fn advance(&mut self, by: std::time::Duration) {
        self.core.now += by;
        for key in self.core.sweep() {
            self.core.remove(key);
        }
        while let Some(timer) = self.core.timers.pop_due(self.core.now) {
            call(&mut self.core, &mut self.app, 0, "on_timer", |a, ctx| {
                a.on_timer(ctx, timer)
            });
        }
        self.end_turn();
    }

    /// The connection is still held (not yet removed).
    pub fn is_held(&self, key: usize) -> bool {
        self.core.conns.contains(key)
    }

    /// What a loop turn does after reading: drop doomed connections.
    fn end_turn(&mut self) {
        // What apps decided through their contexts (accept, respond...).
        for _ in 0..64 {
            let ops = std::mem::take(&mut self.core.ops);
            if ops.is_empty() {
                break;
            }
            for op in ops {
                if let Some(key) = super::handshake::apply(&mut self.core, &mut self.app, op)
                    && !self.core.conns[key].input.is_empty()
                {
                    ingest_own(&mut self.core, &mut self.app, key, 0);
                }
            }
        }
        while let Some((key, why)) = self.core.doomed.pop() {
            dispatch::doomed(&mut self.core, &mut self.app, key, why);
            self.core.remove(key);
        }
        self.core.dirty.clear();
        self.core.held.clear();
        self.core.held_until = None;
        for (_, conn) in self.core.conns.iter_mut() {
            conn.dirty = false;
            conn.held = false;
        }
    }

    /// Takes everything queued for the client so far.
    pub fn take_output(&mut self, key: usize) -> Vec<u8> {
        let Some(conn) = self.core.conns.get_mut(key) else {
            return Vec::new();
        };
        let out = conn.out[conn.out_pos..].to_vec();
        conn.out.clear();
        conn.out_pos = 0;
        out
    }

    /// Open as a WebSocket (handshake done, no close started).
    pub fn is_open(&self, key: usize) -> bool {
        self.core.conns.get(key).is_some_and(|c| c.ws_open())
    }

    /// Finished (close handshake done, failed, or answered over HTTP).
    pub fn is_closed(&self, key: usize) -> bool {
        self.core
            .conns
            .get(key)
            .is_none_or(|c| matches!(c.phase, Phase::Done { .. }))
    }

    /// Unprocessed input the connection holds (an incomplete frame or head).
    pub fn buffered(&mut self, key: usize) -> usize {
        self.core
            .conns
            .get_mut(key)
            .map_or(0, |c| c.input.bytes_mut().len())
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }
}
