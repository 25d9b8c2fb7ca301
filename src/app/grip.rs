//! WebSocket apps written as plain HTTP handlers, the way Pushpin runs
//! them: [`GripRoute`] turns each connection's life into
//! WebSocket-over-HTTP requests to a backend URL and applies the answers
//! (`docs/grip.md`); [`GripPublish`] takes Pushpin's publish requests
//! (`POST /publish/`) and puts their messages on the bus, where every
//! GRIP connection subscribed to the channel gets them (through the Redis
//! bus, in every process).
//!
//! A connection has at most one request out at a time. What happens
//! while it is out (client messages, the close) is encoded at once into
//! the next request's body, in order, and sent when the answer is in. A
//! backend that fails, answers badly or not within `--backend-timeout`
//! ends that connection (close 1011, logged and counted) and nobody
//! else's: requests go through the reactor's HTTP client, never blocking.

use super::{
    Accept, Application, ConnId, ConnMap, ConnSet, Context, Http, Message, Page, Reject, Reply,
    Request, Ticket, TimerId, first_line,
};
use crate::bus::Event;
use crate::clients::http::{Request as HttpRequest, Response, Url};
use crate::grip::control::{self, Control, FrameKind, KeepAlive, KeepAliveMode};
use crate::grip::events::{self, Event as WsEvent, Kind};
use crate::grip::publish::{self, WsMessage};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The shortest `Keep-Alive-Interval` honoured, in seconds (shorter ones
/// are raised to it, as Pushpin does).
pub const MIN_KEEP_ALIVE_INTERVAL: u64 = 20;

/// Limits of a GRIP route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GripLimits {
    /// Most bytes of events waiting for the next request of one
    /// connection; past it the connection is closed with 1013.
    pub max_pending: usize,
    /// Most channels one connection may be subscribed to.
    pub max_channels: usize,
    /// Most `Meta-*` values kept per connection, and their total size.
    pub max_meta: usize,
    /// Total bytes of `Meta-*` names and values kept per connection.
    pub max_meta_bytes: usize,
}

impl Default for GripLimits {
    fn default() -> Self {
        GripLimits {
            max_pending: 1 << 20,
            max_channels: 256,
            max_meta: 32,
            max_meta_bytes: 8 * 1024,
        }
    }
}

/// Client headers never forwarded: hop-by-hop and handshake fields, and
/// those the request sets itself.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "content-type",
    "accept",
    "connection-id",
    "sec-websocket-extensions",
];

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The OPEN request is out; the handshake waits for its answer.
    Opening,
    /// Open: events go to the backend.
    Open,
    /// The backend detached: no more requests; publishes still arrive.
    Detached,
    /// The client connection is gone; the last request (CLOSE or
    /// DISCONNECT) may still be out.
    Gone,
}

/// What the backend's answer to OPEN asked for once the connection is
/// open.
enum Early {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
}

struct Conn {
    /// The `Connection-Id` header of every request.
    cid: String,
    /// The request target at the backend (its path, the client's query).
    target: String,
    /// The client's handshake headers that go along.
    headers: Vec<(String, String)>,
    /// `Meta-*` values the backend set with `Set-Meta-*`.
    meta: Vec<(String, String)>,
    phase: Phase,
    in_flight: Option<Ticket>,
    /// Encoded events for the next request.
    pending: Vec<u8>,
    /// With the `grip` extension accepted: the prefix of messages meant
    /// for the client.
    grip: Option<String>,
    /// `Keep-Alive-Interval`: an empty request after this long idle.
    keep_alive_interval: Option<Duration>,
    keep_alive_timer: Option<TimerId>,
    /// A keep-alive to the client (GRIP `keep-alive` control).
    client_keep_alive: Option<(KeepAlive, TimerId)>,
    /// When a message last went to the client.
    last_sent: Instant,
    /// Channels subscribed.
    channels: Vec<String>,
    /// Messages from the OPEN answer, sent once the connection is open.
    early: Vec<Early>,
    /// A CLOSE event went to the backend.
    close_sent: bool,
}

enum TimerFor {
    /// `Keep-Alive-Interval` expired.
    Backend(ConnId),
    /// A client keep-alive is due.
    Client(ConnId),
}

struct Channel {
    subscription: Option<Ticket>,
    members: ConnSet,
}

/// A WebSocket route whose connections are driven by an HTTP backend
/// speaking WebSocket-over-HTTP, with GRIP (see the module docs and
/// `docs/grip.md`).
pub struct GripRoute {
    backend: Url,
    limits: GripLimits,
    conns: ConnMap<Conn>,
    requests: HashMap<Ticket, ConnId>,
    timers: HashMap<TimerId, TimerFor>,
    channels: HashMap<String, Channel>,
    by_subscription: HashMap<Ticket, String>,
    /// Connection ids are `{prefix}-{n}`: the prefix is random per route
    /// and process, so ids are unique across restarts and processes.
    id_prefix: String,
    next_id: u64,
}

/// Cancels `timer` and forgets what it was for.
fn cancel(timers: &mut HashMap<TimerId, TimerFor>, ctx: &mut Context<'_>, timer: TimerId) {
    ctx.cancel_timer(timer);
    timers.remove(&timer);
}

impl GripRoute {
    /// Connections of this route go to `backend`.
    pub fn new(backend: Url) -> Self {
        Self::with_limits(backend, GripLimits::default())
    }

    /// With other limits.
    pub fn with_limits(backend: Url, limits: GripLimits) -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            // Unique within the process still; only a restart could repeat.
            seed = u64::from(std::process::id()).to_be_bytes();
        }
        GripRoute {
            backend,
            limits,
            conns: ConnMap::new(),
            requests: HashMap::new(),
            timers: HashMap::new(),
            channels: HashMap::new(),
            by_subscription: HashMap::new(),
            id_prefix: seed.iter().map(|b| format!("{b:02x}")).collect(),
            next_id: 0,
        }
    }

    /// The backend URL.
    pub fn backend(&self) -> &Url {
        &self.backend
    }

    /// Sends the next request of `conn` if none is out and there is
    /// something to send (or `force`: an empty keep-alive request).
    fn flush(&mut self, ctx: &mut Context<'_>, conn: ConnId, force: bool) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.in_flight.is_some() || (c.pending.is_empty() && !force) {
            return;
        }
        if let Some(t) = c.keep_alive_timer.take() {
            cancel(&mut self.timers, ctx, t);
        }
        let body = std::mem::take(&mut c.pending);
        let close_in_body = c.close_sent;
        let request = build_request(ctx, conn, c, body);
        let ticket = request.and_then(|r| ctx.http_request(&self.backend, r));
        match ticket {
            Some(t) => {
                c.in_flight = Some(t);
                self.requests.insert(t, conn);
                ctx.count("grip_requests", "sent");
            }
            None => {
                ctx.count("grip_requests", "failed");
                log::warn!("{conn}: cannot send to the GRIP backend {}", self.backend);
                if c.phase == Phase::Gone || close_in_body {
                    self.forget(ctx, conn);
                } else {
                    self.fail(ctx, conn, "the backend is unavailable");
                }
            }
        }
    }

    /// Ends `conn` because its backend failed.
    fn fail(&mut self, ctx: &mut Context<'_>, conn: ConnId, why: &str) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        match c.phase {
            Phase::Opening => {
                ctx.reject(conn, Reject::new(502, format!("GRIP backend: {why}")));
                self.forget(ctx, conn);
            }
            Phase::Open | Phase::Detached => {
                // No more requests for this connection: its close will not
                // be reported to a backend that is failing.
                c.phase = Phase::Gone;
                c.pending.clear();
                ctx.close(conn, 1011, "backend error");
            }
            Phase::Gone => self.forget(ctx, conn),
        }
    }

    /// Drops every trace of `conn`.
    fn forget(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        self.quiet(ctx, conn);
        if let Some(c) = self.conns.remove(conn)
            && let Some(t) = c.in_flight
        {
            self.requests.remove(&t);
        }
    }

    /// Stops everything that would still reach `conn` or its backend
    /// unasked: both keep-alive timers and every channel. A request in
    /// flight stays.
    fn quiet(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let timers = c
            .keep_alive_timer
            .take()
            .into_iter()
            .chain(c.client_keep_alive.take().map(|(_, t)| t));
        for t in timers {
            cancel(&mut self.timers, ctx, t);
        }
        for channel in std::mem::take(&mut c.channels) {
            self.leave(ctx, conn, &channel);
        }
    }

    fn join(&mut self, ctx: &mut Context<'_>, conn: ConnId, channel: String) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.channels.contains(&channel) {
            return;
        }
        if c.channels.len() >= self.limits.max_channels {
            log::warn!(
                "{conn}: GRIP subscribe to {channel:?} refused: already on {} channels",
                self.limits.max_channels
            );
            ctx.count("grip_controls", "refused");
            return;
        }
        c.channels.push(channel.clone());
        let entry = self
            .channels
            .entry(channel.clone())
            .or_insert_with(|| Channel {
                subscription: None,
                members: ConnSet::new(),
            });
        if entry.subscription.is_none() {
            entry.subscription = ctx.bus_subscribe(&channel);
            if let Some(t) = entry.subscription {
                self.by_subscription.insert(t, channel.clone());
            }
        }
        entry.members.insert(conn);
    }

    fn leave(&mut self, ctx: &mut Context<'_>, conn: ConnId, channel: &str) {
        let Some(entry) = self.channels.get_mut(channel) else {
            return;
        };
        entry.members.remove(conn);
        if entry.members.is_empty() {
            if let Some(t) = entry.subscription {
                ctx.bus_unsubscribe(t);
                self.by_subscription.remove(&t);
            }
            self.channels.remove(channel);
        }
    }

    /// Applies the backend's answer to the request of `conn`.
    fn answer(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        result: Result<Response, crate::reactor::HttpError>,
    ) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.in_flight = None;
        if c.phase == Phase::Detached {
            // The answer to the CLOSE that told the backend it detached:
            // nothing in it concerns the connection any more.
            return;
        }
        let gone = c.phase == Phase::Gone;
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                ctx.count("grip_requests", "failed");
                log::warn!("{conn}: GRIP backend {} failed: {e}", self.backend);
                return self.fail(ctx, conn, "no answer");
            }
        };
        if resp.status != 200 {
            ctx.count("grip_requests", "refused");
            if c.phase == Phase::Opening {
                let status = if (400..=599).contains(&resp.status) {
                    resp.status
                } else {
                    502
                };
                let reason = first_line(&resp);
                log::info!("{conn}: GRIP backend refused the connection: {status} {reason}");
                ctx.reject(conn, Reject::new(status, reason));
                return self.forget(ctx, conn);
            }
            log::warn!(
                "{conn}: GRIP backend answered {} {}",
                resp.status,
                first_line(&resp)
            );
            return self.fail(ctx, conn, "refused");
        }
        let content_type = resp.header("content-type").unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(crate::grip::CONTENT_TYPE) {
            ctx.count("grip_requests", "malformed");
            log::warn!(
                "{conn}: GRIP backend answered with Content-Type {content_type:?}, not {}",
                crate::grip::CONTENT_TYPE
            );
            return self.fail(ctx, conn, "not application/websocket-events");
        }
        let decoded = match events::decode(&resp.body) {
            Ok(ev) => ev,
            Err(e) => {
                ctx.count("grip_requests", "malformed");
                log::warn!("{conn}: GRIP backend's events are malformed: {e}");
                return self.fail(ctx, conn, "malformed events");
            }
        };
        ctx.count("grip_requests", "ok");
        if gone {
            // The answer to the last request: the client is gone, and
            // nothing the backend says reaches it.
            if c.pending.is_empty() {
                self.forget(ctx, conn);
            } else {
                self.flush(ctx, conn, false);
            }
            return;
        }
        self.take_headers(conn, &resp);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.phase == Phase::Opening {
            if !ctx.is_deciding(conn) {
                // The handshake timed out or the client left meanwhile.
                return self.forget(ctx, conn);
            }
            let first_is_open = decoded.first().map(|e| e.kind) == Some(Kind::Open);
            if !first_is_open {
                ctx.count("grip_requests", "malformed");
                log::warn!("{conn}: GRIP backend's answer to OPEN does not begin with OPEN");
                return self.fail(ctx, conn, "no OPEN in the answer");
            }
            c.grip = resp
                .header("sec-websocket-extensions")
                .and_then(control::accepted_grip);
            let protocol = resp
                .header("sec-websocket-protocol")
                .map(|p| p.trim().to_owned());
            c.phase = Phase::Open;
            ctx.accept(conn, protocol);
        }
        for event in &decoded {
            self.apply(ctx, conn, event);
        }
        self.after_answer(ctx, conn);
    }

    /// `Set-Meta-*` and `Keep-Alive-Interval` of an answer.
    fn take_headers(&mut self, conn: ConnId, resp: &Response) {
        let limits = self.limits;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if let Some(v) = resp.header("keep-alive-interval") {
            c.keep_alive_interval = match v.trim().parse::<u64>() {
                Ok(s) if s > 0 => Some(Duration::from_secs(s.max(MIN_KEEP_ALIVE_INTERVAL))),
                _ => None,
            };
        }
        for (name, value) in &resp.headers {
            let Some(key) = strip_prefix_ci(name, "set-meta-") else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            c.meta.retain(|(n, _)| !n.eq_ignore_ascii_case(key));
            if value.is_empty() {
                // An empty value removes the meta value.
                continue;
            }
            let used: usize = c.meta.iter().map(|(n, v)| n.len() + v.len()).sum();
            if c.meta.len() >= limits.max_meta
                || used + key.len() + value.len() > limits.max_meta_bytes
            {
                log::warn!("{conn}: Set-Meta-{key} dropped: over the meta limits");
                continue;
            }
            c.meta.push((key.to_owned(), value.clone()));
        }
    }

    /// After an answer was applied: the next request, or the keep-alive
    /// timer.
    fn after_answer(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.phase != Phase::Open && c.phase != Phase::Opening {
            return;
        }
        if !c.pending.is_empty() {
            return self.flush(ctx, conn, false);
        }
        if let Some(interval) = c.keep_alive_interval {
            let t = ctx.add_timer(interval);
            c.keep_alive_timer = Some(t);
            self.timers.insert(t, TimerFor::Backend(conn));
        }
    }

    /// Applies one event of an answer.
    fn apply(&mut self, ctx: &mut Context<'_>, conn: ConnId, event: &WsEvent<'_>) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let open = ctx.is_open(conn);
        match event.kind {
            Kind::Open => {}
            Kind::Text | Kind::Binary => {
                let bytes = event.bytes();
                let payload = if let Some(prefix) = &c.grip {
                    if let Some(json) = bytes.strip_prefix(control::CONTROL_PREFIX.as_bytes()) {
                        return self.control(ctx, conn, json);
                    } else if let Some(m) = bytes.strip_prefix(prefix.as_bytes()) {
                        m
                    } else {
                        ctx.count("grip_messages", "unprefixed");
                        log::debug!("{conn}: GRIP message without m: or c: prefix dropped");
                        return;
                    }
                } else {
                    bytes
                };
                let early = if event.kind == Kind::Text {
                    match std::str::from_utf8(payload) {
                        Ok(t) if open => {
                            ctx.send_text(conn, t);
                            None
                        }
                        Ok(t) => Some(Early::Text(t.to_owned())),
                        Err(_) => {
                            ctx.count("grip_messages", "bad_utf8");
                            log::warn!("{conn}: GRIP backend sent a TEXT that is not UTF-8");
                            return;
                        }
                    }
                } else if open {
                    ctx.send_binary(conn, payload);
                    None
                } else {
                    Some(Early::Binary(payload.to_vec()))
                };
                c.last_sent = ctx.now();
                if let Some(e) = early {
                    c.early.push(e);
                }
            }
            Kind::Close | Kind::Disconnect => {
                let (code, reason) = match event.kind {
                    Kind::Close => event.close_code().unwrap_or((1000, String::new())),
                    _ => (1011, "backend disconnected".to_owned()),
                };
                let code = if crate::ws::close::is_sendable(code) {
                    code
                } else {
                    1000
                };
                if open {
                    ctx.close(conn, code, &reason);
                } else {
                    c.early.push(Early::Close(code, reason));
                }
            }
            // Ping and pong frames are the reactor's own business (it
            // pings for liveness and answers pings itself).
            Kind::Ping | Kind::Pong => {}
            Kind::Other(name) => {
                log::debug!("{conn}: GRIP backend sent an unknown event {name:?}; skipped");
            }
        }
    }

    /// A `c:` control message from the backend.
    fn control(&mut self, ctx: &mut Context<'_>, conn: ConnId, json: &[u8]) {
        let parsed = match control::parse(json) {
            Ok(c) => c,
            Err(e) => {
                ctx.count("grip_controls", "malformed");
                log::warn!("{conn}: GRIP control message skipped: {e}");
                return;
            }
        };
        ctx.count("grip_controls", "ok");
        match parsed {
            Control::Subscribe(channel) => self.join(ctx, conn, channel),
            Control::Unsubscribe(channel) => {
                if let Some(c) = self.conns.get_mut(conn)
                    && let Some(i) = c.channels.iter().position(|ch| *ch == channel)
                {
                    c.channels.swap_remove(i);
                    self.leave(ctx, conn, &channel);
                }
            }
            Control::Detach => {
                if let Some(c) = self.conns.get_mut(conn) {
                    // As Pushpin does, the backend hears a CLOSE without a
                    // code at once: for it, the connection has ended.
                    c.phase = Phase::Detached;
                    c.pending.clear();
                    events::encode(&WsEvent::bare(Kind::Close), &mut c.pending);
                    if let Some(t) = c.keep_alive_timer.take() {
                        cancel(&mut self.timers, ctx, t);
                    }
                    self.flush(ctx, conn, false);
                }
            }
            Control::KeepAlive(ka) => {
                let Some(c) = self.conns.get_mut(conn) else {
                    return;
                };
                if let Some((_, t)) = c.client_keep_alive.take() {
                    cancel(&mut self.timers, ctx, t);
                }
                if let Some(ka) = ka {
                    let t = ctx.add_periodic_timer(ka.timeout);
                    self.timers.insert(t, TimerFor::Client(conn));
                    c.client_keep_alive = Some((ka, t));
                }
            }
        }
    }

    fn client_keep_alive(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some((ka, _)) = &c.client_keep_alive else {
            return;
        };
        if ka.mode == KeepAliveMode::Idle && now.duration_since(c.last_sent) + SLACK < ka.timeout {
            return;
        }
        match ka.kind {
            FrameKind::Text => match std::str::from_utf8(&ka.content) {
                Ok(t) => {
                    ctx.send_text(conn, t);
                }
                Err(_) => {
                    ctx.send_binary(conn, &ka.content);
                }
            },
            FrameKind::Binary => {
                ctx.send_binary(conn, &ka.content);
            }
            // The reactor's own pings keep the connection alive; a ping
            // or pong keep-alive needs nothing more.
            FrameKind::Ping | FrameKind::Pong => {}
        }
        c.last_sent = now;
    }

    /// Queues an event for the backend, and sends it if nothing is out.
    fn push_event(&mut self, ctx: &mut Context<'_>, conn: ConnId, event: &WsEvent<'_>) {
        let max = self.limits.max_pending;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.phase != Phase::Open {
            return;
        }
        events::encode(event, &mut c.pending);
        if c.pending.len() > max {
            ctx.count("grip_messages", "backlog");
            log::warn!(
                "{conn}: more than {max} bytes wait for the GRIP backend; closing the connection"
            );
            c.pending.clear();
            c.phase = Phase::Gone;
            ctx.close(conn, 1013, "backend too slow");
            return;
        }
        self.flush(ctx, conn, false);
    }
}

/// A keep-alive due within this much of its time is sent now: timers fire
/// at loop-turn granularity.
const SLACK: Duration = Duration::from_millis(50);

/// `name` without `prefix`, compared case-insensitively.
fn strip_prefix_ci<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// The request of `conn` with `body`.
fn build_request(ctx: &Context<'_>, conn: ConnId, c: &Conn, body: Vec<u8>) -> Option<HttpRequest> {
    let mut req = HttpRequest::new("POST", &c.target).ok()?;
    for (name, value) in &c.headers {
        // Checked when the connection opened.
        req = req.header(name, value).ok()?;
    }
    req = req
        .header("Accept", crate::grip::CONTENT_TYPE)
        .ok()?
        .header("Content-Type", crate::grip::CONTENT_TYPE)
        .ok()?
        .header("Connection-Id", &c.cid)
        .ok()?;
    // Offered on every request, as Pushpin does; the answer to OPEN
    // decides.
    req = req
        .header("Sec-WebSocket-Extensions", crate::grip::EXTENSION)
        .ok()?;
    let has = |key: &str| c.meta.iter().any(|(n, _)| n.eq_ignore_ascii_case(key));
    // A value the HTTP client would refuse (a control character in a
    // user id) is left out rather than failing the request.
    let sendable = |v: &str| !v.bytes().any(|b| b.is_ascii_control() && b != b'\t');
    if !has("user")
        && let Some(user) = ctx.user(conn)
        && sendable(&user)
    {
        req = req.header("Meta-User", &user).ok()?;
    }
    if !has("session-id")
        && let Some(session) = ctx.session(conn)
        && sendable(&session.id)
    {
        req = req.header("Meta-Session-Id", &session.id).ok()?;
    }
    for (name, value) in &c.meta {
        req = req.header(&format!("Meta-{name}"), value).ok()?;
    }
    Some(req.body(body))
}

impl Application for GripRoute {
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        self.next_id += 1;
        let cid = format!("{}-{}", self.id_prefix, self.next_id);
        let mut target = self.backend.target().to_owned();
        if !req.query.is_empty() {
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str(&req.query);
        }
        let probe = HttpRequest::new("POST", "/").ok();
        let headers = req
            .headers
            .iter()
            .filter(|(n, _)| {
                let lower = n.to_ascii_lowercase();
                !NOT_FORWARDED.contains(&lower.as_str()) && !lower.starts_with("meta-")
            })
            // What the HTTP client would refuse is left out once, here,
            // rather than failing every request of the connection.
            .filter(|(n, v)| {
                let ok = probe.clone().is_some_and(|p| p.header(n, v).is_ok());
                if !ok {
                    log::debug!("{conn}: client header {n:?} not forwarded to the GRIP backend");
                }
                ok
            })
            .cloned()
            .collect();
        let mut pending = Vec::new();
        events::encode(&WsEvent::bare(Kind::Open), &mut pending);
        self.conns.insert(
            conn,
            Conn {
                cid,
                target,
                headers,
                meta: Vec::new(),
                phase: Phase::Opening,
                in_flight: None,
                pending,
                grip: None,
                keep_alive_interval: None,
                keep_alive_timer: None,
                client_keep_alive: None,
                last_sent: ctx.now(),
                channels: Vec::new(),
                early: Vec::new(),
                close_sent: false,
            },
        );
        self.flush(ctx, conn, false);
        if self.conns.contains(conn) {
            Ok(Accept::Later(None))
        } else {
            Err(Reject::new(503, "the GRIP backend is unavailable"))
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _req: &Request) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        for e in std::mem::take(&mut c.early) {
            match e {
                Early::Text(t) => {
                    ctx.send_text(conn, &t);
                }
                Early::Binary(b) => {
                    ctx.send_binary(conn, &b);
                }
                Early::Close(code, reason) => ctx.close(conn, code, &reason),
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        let event = match msg {
            Message::Text(t) => WsEvent::with(Kind::Text, t.as_bytes()),
            Message::Binary(b) => WsEvent::with(Kind::Binary, b),
        };
        self.push_event(ctx, conn, &event);
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, code: u16, reason: &str) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let report = c.phase == Phase::Open;
        c.phase = Phase::Gone;
        if !report {
            if c.in_flight.is_none() {
                self.forget(ctx, conn);
            }
            return;
        }
        match code {
            1006 => events::encode(&WsEvent::bare(Kind::Disconnect), &mut c.pending),
            // The client's close frame had no code.
            1005 => events::encode(&WsEvent::bare(Kind::Close), &mut c.pending),
            _ => {
                let mut content = code.to_be_bytes().to_vec();
                content.extend_from_slice(reason.as_bytes());
                events::encode(&WsEvent::with(Kind::Close, &content), &mut c.pending);
            }
        }
        c.close_sent = true;
        // Publishes stop now; the last request may still be out.
        self.quiet(ctx, conn);
        self.flush(ctx, conn, false);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        match self.timers.remove(&timer) {
            Some(TimerFor::Backend(conn)) => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.keep_alive_timer = None;
                    if c.phase == Phase::Open {
                        self.flush(ctx, conn, true);
                    }
                }
            }
            Some(TimerFor::Client(conn)) => {
                self.timers.insert(timer, TimerFor::Client(conn));
                self.client_keep_alive(ctx, conn);
            }
            None => {}
        }
    }

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if let Some(conn) = self.requests.remove(&ticket) {
            if let Reply::Http(result) = reply {
                self.answer(ctx, conn, result);
            }
            return;
        }
        let Reply::Bus(event) = reply else {
            return;
        };
        let Some(channel) = self.by_subscription.get(&ticket) else {
            return;
        };
        let Some(entry) = self.channels.get(channel) else {
            return;
        };
        let message = WsMessage::from_data(&event.data);
        let now = ctx.now();
        let members: Vec<ConnId> = match &event.user {
            None => entry.members.iter().collect(),
            Some(user) => entry
                .members
                .iter()
                .filter(|&c| ctx.user(c).is_some_and(|u| &*u == user.as_str()))
                .collect(),
        };
        for &m in &members {
            if let Some(c) = self.conns.get_mut(m) {
                c.last_sent = now;
            }
        }
        let sent = match &message {
            WsMessage::Text(t) => ctx.broadcast(members, Message::Text(t)),
            WsMessage::Binary(b) => ctx.broadcast(members, Message::Binary(b)),
            WsMessage::Close { code, reason } => {
                for &m in &members {
                    ctx.close(m, code.unwrap_or(1000), reason);
                }
                members.len()
            }
        };
        log::trace!("GRIP channel {channel:?}: publish reached {sent} connections");
    }
}

/// `POST /publish/`: Pushpin's publish endpoint. Each item's `ws-message`
/// goes on the bus as an event on its channel (a text message as a JSON
/// string, a binary one as `{"content-bin": BASE64}`), so that GRIP
/// connections of every process subscribed to it get the message, and
/// WAMP subscribers of the topic get the event. Answers `200 Published`,
/// or 400 with the reason, 405, 413.
///
/// Items with an `id` seen on their channel in the last minute are
/// dropped as repeats; an item whose `prev-id` is not the channel's last
/// id waits up to 5 s for that one ([`crate::grip::publish::Sequencer`]).
pub struct GripPublish {
    max_size: usize,
    sequencer: publish::Sequencer,
    /// The sequencer's timer and when it fires.
    timer: Option<(TimerId, Instant)>,
}

impl GripPublish {
    /// An endpoint taking bodies up to `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        GripPublish {
            max_size,
            sequencer: publish::Sequencer::new(),
            timer: None,
        }
    }

    fn deliver(ctx: &mut Context<'_>, items: Vec<publish::Item>) {
        for item in items {
            let Some(message) = item.message else {
                continue;
            };
            ctx.publish(Event::raw(item.channel, message.to_data()));
        }
    }

    /// Keeps a timer set for the sequencer's next deadline (moved
    /// earlier when a held item's comes before it).
    fn arm(&mut self, ctx: &mut Context<'_>) {
        let Some(deadline) = self.sequencer.next_deadline() else {
            return;
        };
        if let Some((timer, at)) = self.timer {
            if at <= deadline {
                return;
            }
            ctx.cancel_timer(timer);
        }
        let delay = deadline.saturating_duration_since(ctx.now());
        self.timer = Some((ctx.add_timer(delay), deadline));
    }
}

impl Application for GripPublish {
    fn http(&mut self, ctx: &mut Context<'_>, _conn: ConnId, req: &Request) -> Http {
        if req.method != "POST" {
            ctx.count("grip_publish", "bad_method");
            return Http::Respond(
                Page::text(405, "POST a publish request here\n").header("Allow", "POST"),
            );
        }
        if req.body.len() > self.max_size {
            ctx.count("grip_publish", "too_large");
            return Http::Respond(Page::text(
                413,
                format!("a publish request is at most {} bytes\n", self.max_size),
            ));
        }
        let items = match publish::parse(&req.body) {
            Ok(items) => items,
            Err(e) => {
                ctx.count("grip_publish", "malformed");
                log::warn!("GRIP publish from {} refused: {e}", req.peer);
                return Http::Respond(Page::text(400, format!("{e}\n")));
            }
        };
        ctx.count("grip_publish", "ok");
        let now = ctx.now();
        for item in items {
            match self.sequencer.offer(item, now) {
                publish::Offered::Deliver(items) => Self::deliver(ctx, items),
                publish::Offered::Held => ctx.count("grip_publish_items", "held"),
                publish::Offered::Repeat => ctx.count("grip_publish_items", "repeat"),
            }
        }
        self.arm(ctx);
        Http::Respond(Page::text(200, "Published\n"))
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if self.timer.map(|(t, _)| t) != Some(timer) {
            return;
        }
        self.timer = None;
        let late = self.sequencer.expire(ctx.now());
        if !late.is_empty() {
            log::warn!(
                "GRIP publish: {} items waited {:?} for the item their prev-id names; sent anyway",
                late.len(),
                publish::HOLD
            );
            for _ in &late {
                ctx.count("grip_publish_items", "unordered");
            }
            Self::deliver(ctx, late);
        }
        self.arm(ctx);
    }

    fn on_open(&mut self, _ctx: &mut Context<'_>, _conn: ConnId, _req: &Request) {}
    fn on_message(&mut self, _ctx: &mut Context<'_>, _conn: ConnId, _msg: Message<'_>) {}
    fn on_close(&mut self, _ctx: &mut Context<'_>, _conn: ConnId, _code: u16, _reason: &str) {}
}
