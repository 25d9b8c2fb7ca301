//! The reactor's state that applications reach through their [`Context`]:
//! the slab of connections, output queueing, timers. It implements
//! [`Sink`](crate::app::Sink). No sockets here: the server keeps them beside the slab, so all
//! of this can be driven by tests and fuzzers without I/O.
//!
//! [`Context`]: crate::app::Context

use super::buf::{InBuf, Pool};
use super::inbox::InboxTx;
use super::outbound::Outbound;
use super::timers::Timers;
use crate::app::{ConnError, ConnId, Page, Reject, Request};
use crate::config::Config;
use crate::http::{HeadLimits, HeadScanner};
use crate::metrics::Metrics;
use crate::session::Session;
use crate::ws::{self, Connection};
use slab::Slab;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where a connection is in its life.
pub(crate) enum Phase {
    /// Reading the HTTP request head.
    Handshake(HeadScanner),
    /// The app answered [`crate::app::Accept::Later`]: the handshake waits
    /// for its decision; input is left unread.
    Deciding(Box<Pending>),
    /// Reading the body of a plain HTTP request (`Pending::need` more
    /// bytes).
    HttpBody(Box<Pending>),
    /// The app answered [`crate::app::Http::Later`]; input is left unread.
    HttpWaiting(Box<Pending>),
    /// A WebSocket; where its close handshake stands is `Conn::ws`'s.
    WebSocket,
    /// Nothing more to say (HTTP answered, WebSocket closed or failed):
    /// flush what is queued, then close at once if the close handshake
    /// completed (`complete`), else shut our side and discard input until
    /// the peer closes or the close timeout passes. The app has been told.
    Done {
        /// Both close frames went: the socket may close once flushed.
        complete: bool,
    },
}

/// What a handshake or an HTTP request keeps while the app decides.
pub(crate) struct Pending {
    pub req: Request,
    /// `Sec-WebSocket-Accept` for the 101.
    pub accept_key: String,
    /// permessage-deflate, as negotiated, and the header that says so.
    pub deflate: Option<crate::ws::deflate::Params>,
    pub extensions: Option<String>,
    /// The protocol to use when the later acceptance names none.
    pub protocol: Option<String>,
    /// Plain HTTP: the connection stays open after the response.
    pub keep_alive: bool,
    /// Plain HTTP: bytes of the body still to come.
    pub need: usize,
}

/// A decision an app made through its context, applied after its callback.
pub(crate) enum Op {
    Accept(ConnId, Option<String>),
    Reject(ConnId, Reject),
    Respond(ConnId, Page),
}

impl Op {
    /// The connection the decision is for.
    pub fn conn(&self) -> ConnId {
        match self {
            Op::Accept(id, _) | Op::Reject(id, _) | Op::Respond(id, _) => *id,
        }
    }

    /// Whether a connection in `phase` waits for this decision: a deferred
    /// handshake for accept and reject, a deferred request for respond.
    pub fn awaited_in(&self, phase: &Phase) -> bool {
        matches!(
            (self, phase),
            (Op::Accept(..) | Op::Reject(..), Phase::Deciding(_))
                | (Op::Respond(..), Phase::HttpWaiting(_))
        )
    }
}

/// What apps attached to one connection.
#[derive(Default)]
pub(crate) struct Attached {
    pub session: Option<Arc<Session>>,
    pub user: Option<Arc<str>>,
    pub data: Option<Arc<serde_json::Value>>,
}

/// One client connection's protocol state (its socket is the server's).
pub(crate) struct Conn {
    /// The client: the socket's peer, or the address a trusted proxy
    /// named (PROXY header, `Forwarded`).
    pub peer: SocketAddr,
    /// `peer`'s address is counted against `max_connections_per_ip`.
    pub counted: bool,
    /// A PROXY protocol header must be read before anything else.
    pub proxy_pending: bool,
    pub id: ConnId,
    pub phase: Phase,
    /// RFC 6455 state; a placeholder until the handshake succeeds.
    pub ws: Connection,
    pub input: InBuf,
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// When the current phase began.
    pub since: Instant,
    /// The app (listener) serving it.
    pub app: u16,
    /// A plain HTTP request was answered on this connection (keep-alive).
    pub served: bool,
    /// `on_open` was called and `on_close` not yet.
    pub app_open: bool,
    /// In the reactor's dirty list.
    pub dirty: bool,
    /// In the list of broadcast targets whose flush may wait.
    pub held: bool,
    /// Registered for WRITABLE.
    pub writable: bool,
    pub write_shut: bool,
}

impl Conn {
    pub fn new(peer: SocketAddr, id: ConnId, app: usize, now: Instant) -> Self {
        Conn {
            peer,
            counted: false,
            proxy_pending: false,
            id,
            app: u16::try_from(app).unwrap_or(u16::MAX),
            served: false,
            phase: Phase::Handshake(HeadScanner::default()),
            ws: Connection::server(now, None),
            input: InBuf::default(),
            out: Vec::new(),
            out_pos: 0,
            since: now,
            app_open: false,
            dirty: false,
            held: false,
            writable: false,
            write_shut: false,
        }
    }

    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
    }

    /// The app (listener) serving it, as an index.
    pub fn app(&self) -> usize {
        usize::from(self.app)
    }

    /// An open WebSocket: messages may be sent to it.
    pub fn ws_open(&self) -> bool {
        matches!(self.phase, Phase::WebSocket) && self.ws.is_open()
    }

    /// Moves to `Done` once the WebSocket's close handshake is over.
    pub fn sync_phase(&mut self, now: Instant) {
        if matches!(self.phase, Phase::WebSocket)
            && let ws::State::Closed { complete } = self.ws.state()
        {
            self.set_phase(Phase::Done { complete }, now);
        }
    }
}

/// Gives a connection that holds no output buffer one from `pool`.
pub(crate) fn ensure_out(out: &mut Vec<u8>, pool: &mut Pool) {
    if out.capacity() == 0 {
        *out = pool.take();
    }
}

/// State shared between the event loop and application callbacks.
pub(crate) struct Core {
    pub conns: Slab<Conn>,
    pub timers: Timers,
    /// Connections with output queued since the last flush.
    pub dirty: Vec<usize>,
    /// Broadcast targets whose flush waits until `held_until`
    /// (`Config::fanout_flush_delay`).
    pub held: Vec<usize>,
    pub held_until: Option<Instant>,
    /// Connections to drop at the end of the turn, and why.
    pub doomed: Vec<(usize, ConnError)>,
    /// Codecs and spare buffers (output, message assembly) of every
    /// WebSocket.
    pub shared: ws::Shared,
    pub in_pool: Pool,
    /// One encoded frame shared by every target of a broadcast.
    pub scratch: Vec<u8>,
    /// Where a broadcast is compressed.
    pub deflate_buf: Vec<u8>,
    /// A broadcast's compressed frames, one per server window size (`None`
    /// when compressing did not pay: the plain frame goes instead).
    pub packed: Vec<(u8, Option<Vec<u8>>)>,
    pub now: Instant,
    pub cfg: Config,
    pub ws_settings: ws::Settings,
    pub head_limits: HeadLimits,
    pub metrics: Metrics,
    /// Decisions apps made through their context, not yet applied.
    pub ops: Vec<Op>,
    /// Redis servers, HTTP origins and their completions.
    pub outbound: Outbound,
    /// Where inboxes send (set by the server; the harness has none).
    pub inbox: Option<InboxTx>,
    /// What apps attached to connections (sessions, users), beside the
    /// slab so that connections without any cost nothing.
    pub attached: HashMap<ConnId, Attached>,
    /// Which apps subscribed to which topics.
    pub bus: super::bus::Bus,
    /// Which apps take the messages of each ZeroMQ listener.
    pub zmq: super::zmq::ZmqRoutes,
    /// Gauges of the server (listeners) for `/metrics`.
    pub listeners: usize,
    /// Connections per client address, when that is limited.
    pub per_ip: HashMap<std::net::IpAddr, u32>,
    /// For connections whose `peer` a proxy named: the address their
    /// forwarding headers are judged by (the socket's peer, or the PROXY
    /// header's source). Beside the slab: direct clients cost nothing.
    pub hops: HashMap<ConnId, SocketAddr>,
}

impl Core {
    pub fn new(cfg: Config) -> Self {
        Core {
            conns: Slab::new(),
            timers: Timers::default(),
            dirty: Vec::new(),
            held: Vec::new(),
            held_until: None,
            doomed: Vec::new(),
            shared: ws::Shared::new(cfg.deflate),
            in_pool: Pool::default(),
            scratch: Vec::new(),
            deflate_buf: Vec::new(),
            packed: Vec::new(),
            now: Instant::now(),
            ws_settings: cfg.ws_settings(),
            head_limits: cfg.head_limits(),
            metrics: Metrics::default(),
            ops: Vec::new(),
            outbound: Outbound::new(&cfg),
            inbox: None,
            attached: HashMap::new(),
            bus: super::bus::Bus::default(),
            zmq: super::zmq::ZmqRoutes::default(),
            listeners: 0,
            per_ip: HashMap::new(),
            hops: HashMap::new(),
            cfg,
        }
    }

    /// Queues a decision an app made, if its connection waits for it.
    pub fn decide(&mut self, op: Op) -> bool {
        let waiting = self
            .key_of(op.conn())
            .is_some_and(|k| op.awaited_in(&self.conns[k].phase));
        if waiting {
            self.ops.push(op);
        }
        waiting
    }

    /// Gauges for `/metrics`.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        crate::metrics::Gauges {
            connections: self.conns.len(),
            websockets: self.conns.iter().filter(|(_, c)| c.ws_open()).count(),
            timers: self.timers.len(),
            bus_topics: self.bus.topic_count(),
            bus_channels: self
                .bus
                .remote
                .as_ref()
                .map_or(0, |r| r.bus.channel_count()),
            bus_up: self.bus.remote.as_ref().map(|r| r.bus.subscriber_is_up()),
            bus_evicted: self.bus.remote.as_ref().map_or(0, |r| r.bus.evicted()),
        }
    }

    /// Takes connection `key` out of the slab, with what was attached to it.
    pub fn remove(&mut self, key: usize) -> Conn {
        let conn = self.conns.remove(key);
        self.attached.remove(&conn.id);
        self.hops.remove(&conn.id);
        conn
    }

    /// The attachments of `id`, made if it is open and has none yet.
    pub fn attached_mut(&mut self, id: ConnId) -> Option<&mut Attached> {
        self.key_of(id)?;
        Some(self.attached.entry(id).or_default())
    }

    /// The slot of `id`, if that connection still occupies it.
    pub fn key_of(&self, id: ConnId) -> Option<usize> {
        let conn = self.conns.get(id.index())?;
        (conn.id == id).then_some(id.index())
    }

    /// Appends raw bytes to a connection's output, unchecked: for protocol
    /// replies (101, HTTP answers) that must go out whatever the app did.
    pub fn push_out(&mut self, key: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        ensure_out(&mut conn.out, &mut self.shared.buffers);
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

    /// Schedules a flush of broadcast output to `key` within the fan-out
    /// flush delay (at once if it is flushed this turn anyway).
    pub fn mark_held(&mut self, key: usize) {
        let now = self.now;
        let delay = self.cfg.fanout_flush_delay;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dirty || conn.held {
            return;
        }
        conn.held = true;
        self.held.push(key);
        self.held_until.get_or_insert(now + delay);
    }

    /// Turns the held flushes from `start` on into ordinary ones.
    pub fn release_held(&mut self, start: usize) {
        while self.held.len() > start {
            let Some(key) = self.held.pop() else { break };
            if let Some(conn) = self.conns.get_mut(key) {
                conn.held = false;
            }
            self.mark_dirty(key);
        }
        if self.held.is_empty() {
            self.held_until = None;
        }
    }

    /// Marks a connection for removal at the end of the turn (slow consumer,
    /// timeouts): unsent output is dropped, the app hears `on_error` and
    /// `on_close(1006)`.
    pub fn doom(&mut self, key: usize, why: ConnError) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.ws.drop_now();
        conn.set_phase(Phase::Done { complete: false }, now);
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

    /// Starts the close handshake with every open WebSocket (shutdown).
    pub fn close_all(&mut self, code: u16, reason: &str) {
        let now = self.now;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &mut self.conns[key];
            if conn.ws_open() {
                ensure_out(&mut conn.out, &mut self.shared.buffers);
                conn.ws.close(code, reason, now, &mut conn.out);
                self.mark_dirty(key);
            }
        }
    }

    /// The periodic check of every connection's deadlines: handshake
    /// timeout (408), the WebSocket's own timers (pings, ping and close
    /// timeouts), the end of a drain. Returns the connections to remove.
    pub fn sweep(&mut self) -> Vec<usize> {
        let now = self.now;
        let (handshake, close_t) = (self.cfg.handshake_timeout, self.cfg.close_timeout);
        let mut remove = Vec::new();
        let mut late = Vec::new();
        let mut undecided = Vec::new();
        let mut doomed = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            let in_phase = now.saturating_duration_since(conn.since);
            match &conn.phase {
                // An idle keep-alive connection just goes; a request begun
                // and not finished gets 408.
                Phase::Handshake(_)
                    if in_phase >= handshake && conn.served && conn.input.is_empty() =>
                {
                    conn.set_phase(Phase::Done { complete: true }, now);
                    if !conn.dirty {
                        conn.dirty = true;
                        self.dirty.push(key);
                    }
                }
                Phase::Handshake(_) | Phase::HttpBody(_) if in_phase >= handshake => late.push(key),
                Phase::Deciding(_) | Phase::HttpWaiting(_) if in_phase >= handshake => {
                    undecided.push(key)
                }
                Phase::WebSocket => {
                    if conn
                        .ws
                        .poll_timeout(&self.ws_settings)
                        .is_none_or(|t| t > now)
                    {
                        continue;
                    }
                    let before = conn.out.len();
                    ensure_out(&mut conn.out, &mut self.shared.buffers);
                    let timeout = conn
                        .ws
                        .handle_timeout(now, &self.ws_settings, &mut conn.out);
                    if conn.out.is_empty() && !conn.dirty {
                        // Nothing to send after all: no buffer while idle.
                        self.shared.buffers.give(std::mem::take(&mut conn.out));
                    }
                    match timeout {
                        Some(ws::Timeout::Ping) => doomed.push((key, ConnError::PingTimeout)),
                        Some(ws::Timeout::Close) => doomed.push((key, ConnError::CloseTimeout)),
                        // A ping went into the output: flush it this turn.
                        None if conn.out.len() != before && !conn.dirty => {
                            conn.dirty = true;
                            self.dirty.push(key);
                        }
                        None => {}
                    }
                }
                Phase::Done { .. } if in_phase >= close_t => remove.push(key),
                _ => {}
            }
        }
        for key in late {
            log::info!("{}: handshake timeout", self.conns[key].peer);
            self.metrics.handshake_timeouts += 1;
            Metrics::bump(&mut self.metrics.http_responses, 408);
            let mut out = Vec::new();
            crate::http::response::write_plain(&mut out, 408, &[], "handshake timeout\n");
            self.push_out(key, &out);
            self.conns[key].set_phase(Phase::Done { complete: false }, now);
        }
        for key in undecided {
            super::handshake::too_late(self, key);
        }
        for (key, why) in doomed {
            self.doom(key, why);
        }
        remove
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Message, Sink};
    use crate::http::extensions;
    use crate::ws::deflate::{DeflateConfig, negotiate};
    use crate::ws::frame;

    /// Opens a connection in `core` (no socket needed: the core is
    /// sans-IO), with permessage-deflate if `offer`.
    fn open(core: &mut Core, offer: Option<&str>) -> ConnId {
        let entry = core.conns.vacant_entry();
        let id = ConnId::new(entry.key() as u32, 1);
        let peer = "127.0.0.1:9".parse().unwrap();
        let mut conn = Conn::new(peer, id, 0, core.now);
        conn.phase = Phase::WebSocket;
        let params = offer.map(|offer| {
            let elements = extensions::parse([offer]);
            negotiate(&core.cfg.deflate, &elements).0.unwrap()
        });
        conn.ws = Connection::server(core.now, params);
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
        assert_eq!(core.shared.deflate.compressions(), 1 + 1 + 2);
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
        assert_eq!(core.shared.deflate.compressions(), 4 + 2);
        let again = out(&core, own[0]);
        assert_ne!(&again[first.len()..], &first[..], "refers back");
        assert_eq!(out(&core, own[1]), again);
    }
}
#[cfg(test)]
mod size {
    /// What every idle connection costs the slab (its socket and the
    /// app's state aside): 256 bytes; was 232 before the reactor grew
    /// sources and decisions later, 248 before the two proxy flags
    /// (`counted`, `proxy_pending`; the proxy's own address lives in
    /// `Core::hops`, paid only by proxied connections). A guard, so growth
    /// is a decision.
    #[test]
    fn a_connection_fits_its_budget() {
        assert!(std::mem::size_of::<super::Conn>() <= 256);
        assert!(std::mem::size_of::<crate::ws::Connection>() <= 88);
    }
}
