//! The reactor's state that applications reach through their [`Context`]:
//! the slab of connections, output queueing, timers. It implements
//! [`Sink`]. No sockets here: the server keeps them beside the slab, so all
//! of this can be driven by tests and fuzzers without I/O.
//!
//! [`Context`]: crate::app::Context

use super::buf::{InBuf, Pool};
use super::timers::Timers;
use crate::app::{ConnError, ConnId, Message, Sink, TimerId};
use crate::config::Config;
use crate::http::{HeadLimits, HeadScanner};
use crate::metrics::Metrics;
use crate::ws::deflate::{self, Session};
use crate::ws::{Decoder, Limits, OpCode, close, frame};
use slab::Slab;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the HTTP request head.
    Handshake(HeadScanner),
    /// WebSocket open both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Done (close handshake over, connection failed, or HTTP answered):
    /// flush what is queued, shut our side, discard input until the peer
    /// closes or the close timeout passes. The app has been told.
    Closed,
}

/// One client connection's protocol state (its socket is the server's).
pub(crate) struct Conn {
    pub peer: SocketAddr,
    pub id: ConnId,
    pub phase: Phase,
    pub decoder: Decoder,
    pub input: InBuf,
    /// Assembly of a fragmented or compressed message.
    pub message: Vec<u8>,
    /// permessage-deflate state, when negotiated.
    pub deflate: Option<Box<Session>>,
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// When the current phase began.
    pub since: Instant,
    /// When we last read anything from the peer.
    pub last_heard: Instant,
    pub ping_outstanding: bool,
    /// `on_open` was called and `on_close` not yet.
    pub app_open: bool,
    /// In the reactor's dirty list.
    pub dirty: bool,
    /// Registered for WRITABLE.
    pub writable: bool,
    pub write_shut: bool,
    /// Close frames went both ways: once our output is out, the socket can
    /// be closed at once (§7.1.1: the server closes TCP first).
    pub close_complete: bool,
}

impl Conn {
    pub fn new(peer: SocketAddr, id: ConnId, now: Instant) -> Self {
        Conn {
            peer,
            id,
            phase: Phase::Handshake(HeadScanner::default()),
            decoder: Decoder::new(),
            input: InBuf::default(),
            message: Vec::new(),
            deflate: None,
            out: Vec::new(),
            out_pos: 0,
            since: now,
            last_heard: now,
            ping_outstanding: false,
            app_open: false,
            dirty: false,
            writable: false,
            write_shut: false,
            close_complete: false,
        }
    }

    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
    }
}

/// State shared between the event loop and application callbacks.
pub(crate) struct Core {
    pub conns: Slab<Conn>,
    pub timers: Timers,
    /// Connections with output queued since the last flush.
    pub dirty: Vec<usize>,
    /// Connections to drop at the end of the turn, and why.
    pub doomed: Vec<(usize, ConnError)>,
    pub out_pool: Pool,
    pub in_pool: Pool,
    /// One encoded frame shared by every target of a broadcast.
    scratch: Vec<u8>,
    /// Codecs shared by connections without context takeover.
    pub deflate: deflate::Shared,
    /// Where messages are compressed (see `Compressor::compress`).
    deflate_buf: Vec<u8>,
    /// A broadcast's compressed frames, one per server window size (`None`
    /// when compressing did not pay: the plain frame goes instead).
    packed: Vec<(u8, Option<Vec<u8>>)>,
    pub now: Instant,
    pub cfg: Config,
    pub ws_limits: Limits,
    pub head_limits: HeadLimits,
    pub metrics: Metrics,
}

impl Core {
    pub fn new(cfg: Config) -> Self {
        Core {
            conns: Slab::new(),
            timers: Timers::default(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            out_pool: Pool::default(),
            in_pool: Pool::default(),
            scratch: Vec::new(),
            deflate: deflate::Shared::new(cfg.deflate),
            deflate_buf: Vec::new(),
            packed: Vec::new(),
            now: Instant::now(),
            ws_limits: cfg.ws_limits(),
            head_limits: cfg.head_limits(),
            metrics: Metrics::default(),
            cfg,
        }
    }

    /// Gauges for `/metrics`.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        crate::metrics::Gauges {
            connections: self.conns.len(),
            websockets: self
                .conns
                .iter()
                .filter(|(_, c)| c.phase == Phase::Open)
                .count(),
            timers: self.timers.len(),
        }
    }

    /// The slot of `id`, if that connection still occupies it.
    pub fn key_of(&self, id: ConnId) -> Option<usize> {
        let conn = self.conns.get(id.index())?;
        (conn.id == id).then_some(id.index())
    }

    /// Appends raw bytes to a connection's output, unchecked: for protocol
    /// replies (101, pong, close) that must go out whatever the app did.
    pub fn push_out(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.out.capacity() == 0 {
            conn.out = self.out_pool.take();
        }
        conn.out.extend_from_slice(bytes);
        self.mark_dirty(key);
    }

    /// Schedules a flush of `key` at the end of the turn, which also carries
    /// out a finished close (removal or shutdown of our side).
    pub fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Queues a control frame.
    pub fn push_frame(&mut self, key: usize, opcode: OpCode, payload: &[u8]) {
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let n = frame::encode_header(&mut hdr, true, opcode, payload.len());
        let mut small = [0u8; frame::MAX_SERVER_HEADER + 125];
        if payload.len() <= 125 {
            small[..n].copy_from_slice(&hdr[..n]);
            small[n..n + payload.len()].copy_from_slice(payload);
            self.push_out(key, &small[..n + payload.len()]);
        } else {
            self.push_out(key, &hdr[..n]);
            self.push_out(key, payload);
        }
    }

    /// Queues a close frame (an empty one when `code` is `None`).
    pub fn push_close(&mut self, key: usize, code: Option<u16>, reason: &str) {
        let mut buf = Vec::with_capacity(2 + 125);
        match code {
            Some(code) => frame::write_close(&mut buf, code, reason),
            None => frame::write_frame(&mut buf, OpCode::Close, &[]),
        }
        self.push_out(key, &buf);
    }

    /// Marks a connection for removal at the end of the turn (slow consumer,
    /// timeouts): unsent output is dropped, the app hears `on_error` and
    /// `on_close(1006)`.
    pub fn doom(&mut self, key: usize, why: ConnError) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.set_phase(Phase::Closed, now);
        conn.out.clear();
        conn.out_pos = 0;
        self.doomed.push((key, why));
        let m = &mut self.metrics;
        match why {
            ConnError::SlowConsumer => m.slow_consumers += 1,
            ConnError::PingTimeout => m.ping_timeouts += 1,
            ConnError::CloseTimeout => m.close_timeouts += 1,
            ConnError::Protocol(_) | ConnError::Panic => {}
        }
    }

    /// Appends an app message frame to an open connection. Whether the
    /// peer keeps up is judged after the turn's write attempt (see the
    /// server's flush), not here: a burst the kernel takes at once is not
    /// a slow consumer.
    fn queue_app(&mut self, key: usize, frame_bytes: &[&[u8]]) -> bool {
        if !self.may_queue(key) {
            return false;
        }
        for part in frame_bytes {
            self.push_out(key, part);
        }
        true
    }

    /// Whether an app message may be queued to `key` now: it is open.
    /// Checked before a message is compressed, so that a compression
    /// context never runs ahead of what the peer receives. (Slow consumers
    /// are judged after the turn's write attempt, in the server's flush.)
    fn may_queue(&self, key: usize) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        conn.phase == Phase::Open
    }

    /// Compresses `msg` for `key` if it negotiated permessage-deflate and
    /// the message is worth it, leaving the payload in `deflate_buf`;
    /// returns its length.
    fn compress_for(&mut self, key: usize, msg: &[u8]) -> Option<usize> {
        let session = self.conns.get_mut(key)?.deflate.as_deref_mut()?;
        session.compress(&mut self.deflate, msg, &mut self.deflate_buf)
    }

    /// Queues a compressed message already in `deflate_buf[..n]`.
    fn queue_compressed(&mut self, key: usize, text: bool, n: usize) {
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let h = frame::encode_header(&mut hdr, true, opcode, n);
        hdr[0] |= frame::RSV1; // RFC 7692 §6: the message is compressed
        let buf = std::mem::take(&mut self.deflate_buf);
        self.push_out(key, &hdr[..h]);
        self.push_out(key, &buf[..n]);
        self.deflate_buf = buf;
        self.trim_deflate_buf();
    }

    /// Lets a huge message's compression space go.
    fn trim_deflate_buf(&mut self) {
        if self.deflate_buf.len() > 1 << 20 {
            self.deflate_buf = Vec::new();
        }
    }

    /// The frame of a broadcast for connections without server context
    /// takeover and a `bits` window: compressed once, then reused.
    fn packed_frame(&mut self, bits: u8, msg: &Message<'_>) -> usize {
        if let Some(i) = self.packed.iter().position(|(b, _)| *b == bits) {
            return i;
        }
        let Some(n) = self
            .deflate
            .compress(bits, msg.as_bytes(), &mut self.deflate_buf)
        else {
            self.packed.push((bits, None));
            return self.packed.len() - 1;
        };
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let opcode = if msg.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let h = frame::encode_header(&mut hdr, true, opcode, n);
        hdr[0] |= frame::RSV1;
        let mut encoded = Vec::with_capacity(h + n);
        encoded.extend_from_slice(&hdr[..h]);
        encoded.extend_from_slice(&self.deflate_buf[..n]);
        self.packed.push((bits, Some(encoded)));
        self.packed.len() - 1
    }
}

fn message_header(msg: &Message<'_>, hdr: &mut [u8; frame::MAX_SERVER_HEADER]) -> usize {
    let opcode = if msg.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    frame::encode_header(hdr, true, opcode, msg.as_bytes().len())
}

impl Core {
    /// Queues one message to `key`, compressed when negotiated and worth it.
    fn send_one(&mut self, key: usize, msg: &Message<'_>) -> bool {
        if self.conns[key].deflate.is_some() {
            if !self.may_queue(key) {
                return false;
            }
            if let Some(n) = self.compress_for(key, msg.as_bytes()) {
                self.queue_compressed(key, msg.is_text(), n);
                return true;
            }
        }
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let n = message_header(msg, &mut hdr);
        self.queue_app(key, &[&hdr[..n], msg.as_bytes()])
    }
}

impl Sink for Core {
    fn send(&mut self, conn: ConnId, msg: Message<'_>) -> bool {
        let Some(key) = self.key_of(conn) else {
            return false;
        };
        let sent = self.send_one(key, &msg);
        if sent {
            self.metrics.messages_out += 1;
            self.metrics.message_bytes_out += msg.as_bytes().len() as u64;
        }
        sent
    }

    fn send_many(&mut self, conns: &mut dyn Iterator<Item = ConnId>, msg: Message<'_>) -> usize {
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let n = message_header(&msg, &mut hdr);
        let mut encoded = std::mem::take(&mut self.scratch);
        encoded.clear();
        encoded.extend_from_slice(&hdr[..n]);
        encoded.extend_from_slice(msg.as_bytes());
        let mut sent = 0;
        let compress = self.deflate.worth_compressing(msg.as_bytes().len());
        for id in conns {
            let Some(key) = self.key_of(id) else { continue };
            let shared_bits = match &self.conns[key].deflate {
                Some(s) if compress => {
                    (!s.owns_compressor()).then_some(s.params.server_max_window_bits)
                }
                _ => {
                    sent += usize::from(self.queue_app(key, &[&encoded]));
                    continue;
                }
            };
            if !self.may_queue(key) {
                continue;
            }
            sent += 1;
            match shared_bits {
                // Without context takeover the output depends only on the
                // window: compress once per window size, not per recipient.
                Some(bits) => {
                    let i = self.packed_frame(bits, &msg);
                    let Some(frame) = self.packed[i].1.take() else {
                        self.push_out(key, &encoded);
                        continue;
                    };
                    self.push_out(key, &frame);
                    self.packed[i].1 = Some(frame);
                    if let Some(s) = self.conns[key].deflate.as_deref_mut() {
                        s.stats.messages_out += 1;
                    }
                }
                // Context takeover: the recipient's own compressor.
                None => {
                    if let Some(n) = self.compress_for(key, msg.as_bytes()) {
                        self.queue_compressed(key, msg.is_text(), n);
                    }
                }
            }
        }
        self.packed.clear();
        self.trim_deflate_buf();
        if encoded.capacity() <= 64 * 1024 {
            self.scratch = encoded;
        }
        self.metrics.messages_out += sent as u64;
        self.metrics.message_bytes_out += (sent * msg.as_bytes().len()) as u64;
        sent
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        let Some(key) = self.key_of(conn) else { return };
        if self.conns[key].phase != Phase::Open {
            return;
        }
        let code = if close::is_sendable(code) {
            code
        } else {
            log::warn!(
                "{conn}: application asked to close with unsendable code {code}; sending 1000"
            );
            close::NORMAL
        };
        self.push_close(key, Some(code), reason);
        let now = self.now;
        self.conns[key].set_phase(Phase::CloseSent, now);
    }

    fn is_open(&self, conn: ConnId) -> bool {
        self.key_of(conn)
            .is_some_and(|k| self.conns[k].phase == Phase::Open)
    }

    fn add_timer(&mut self, delay: Duration, period: Option<Duration>) -> TimerId {
        self.timers.add(self.now, delay, period)
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer)
    }

    fn now(&self) -> Instant {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extensions;
    use crate::ws::deflate::{DeflateConfig, negotiate};

    /// Opens a connection in `core` (no socket needed: the core is
    /// sans-IO), with permessage-deflate if `offer`.
    fn open(core: &mut Core, offer: Option<&str>) -> ConnId {
        let entry = core.conns.vacant_entry();
        let id = ConnId::new(entry.key() as u32, 1);
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut conn = Conn::new(peer, id, core.now);
        conn.phase = Phase::Open;
        if let Some(offer) = offer {
            let elements = extensions::parse([offer]);
            let params = negotiate(&core.cfg.deflate, &elements).0.unwrap();
            conn.deflate = Some(Box::new(Session::new(params)));
        }
        entry.insert(conn);
        id
    }

    #[test]
    fn broadcast_compresses_once_per_window_without_context_takeover() {
        let cfg = Config {
            deflate: DeflateConfig {
                server_context_takeover: true,
                ..DeflateConfig::default()
            },
            ..Config::default()
        };
        let mut core = Core::new(cfg);
        let plain = open(&mut core, None);
        let no_takeover = "permessage-deflate; server_no_context_takeover";
        let shared: Vec<ConnId> = (0..5).map(|_| open(&mut core, Some(no_takeover))).collect();
        let small_window = open(
            &mut core,
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
        );
        let own: Vec<ConnId> = (0..2)
            .map(|_| open(&mut core, Some("permessage-deflate")))
            .collect();
        let mut all = vec![plain, small_window];
        all.extend(&shared);
        all.extend(&own);
        let msg = "{\"topic\":\"prices\",\"value\":42} ".repeat(100);
        let sent = core.send_many(&mut all.iter().copied(), Message::Text(&msg));
        assert_eq!(sent, all.len());
        // Once for the five shared ones, once for the 10-bit window, once
        // for each connection with its own context.
        assert_eq!(core.deflate.compressions(), 1 + 1 + 2);
        let out = |core: &Core, id: ConnId| core.conns[id.index()].out.clone();
        assert_eq!(out(&core, plain)[0], 0x81, "uncompressed text frame");
        let first = out(&core, shared[0]);
        assert_eq!(first[0], 0x81 | frame::RSV1);
        assert!(first.len() < msg.len() / 4);
        for id in &shared {
            assert_eq!(out(&core, *id), first);
        }
        assert_ne!(out(&core, small_window), first);
        // Context takeover: each recipient's compressor starts alike, so
        // the first message matches byte for byte, the next one does not.
        assert_eq!(out(&core, own[0]), first);
        core.send_many(&mut own.iter().copied(), Message::Text(&msg));
        assert_eq!(core.deflate.compressions(), 4 + 2);
        let again = out(&core, own[0]);
        assert_ne!(&again[first.len()..], &first[..], "refers back");
        assert_eq!(out(&core, own[1]), again);
    }
}
