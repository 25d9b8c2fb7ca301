//! One Redis connection's protocol state, sans I/O (quinn-proto style).
//!
//! A [`RedisConn`] outlives its TCP connections: the reactor dials, and
//! reports each connection's life with [`RedisConn::connected`] and
//! [`RedisConn::disconnected`]; in between it feeds what it reads to
//! [`RedisConn::handle_input`], writes [`RedisConn::transmit`] and reports
//! what was written with [`RedisConn::advance`], and drains
//! [`RedisConn::poll_event`]. Nothing here touches a socket or a clock.
//!
//! - **Commands mode** pipelines commands; replies come back in order
//!   ("Redis pipelining"), each matched to the caller's tag. Commands issued
//!   while no connection is up are held, up to [`Settings::max_held`]
//!   commands and [`Settings::max_held_bytes`] bytes, and sent first thing
//!   after the next `connected`; past either bound a command fails at once
//!   with [`ReplyError::QueueFull`].
//! - **Pub/sub mode** keeps the wanted channels and patterns; each
//!   connection re-subscribes to all of them. `subscribe` & co. append their
//!   command at once (there is no flush step: the reactor's one write per
//!   turn carries every command queued in the turn).
//!
//! Every connection starts with `AUTH` (if the URL has a password) and, in
//! commands mode, `SELECT db` (if db is not 0), pipelined ahead of everything
//! else; their replies are consumed here, and an error reply makes the
//! connection [`Event::Unusable`] with the server's text.
//!
//! Nothing is lost silently: every tag gets exactly one [`Event::Reply`],
//! whether a reply, a disconnection, an unusable connection or a refusal.

mod backoff;
mod event;
#[cfg(test)]
mod tests;
mod url;

pub use backoff::Backoff;
pub use event::{Event, ReplyError, SubKind, UnusableReason, WrongMode};
pub use url::{RedisUrl, UrlError};

use super::resp::{self, Limits, Reply};
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// What a connection is for (a Redis connection in the subscribed state can
/// run no other commands in RESP2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pipelined commands with tagged replies.
    Commands,
    /// SUBSCRIBE/PSUBSCRIBE and the messages they bring.
    PubSub,
}

/// Bounds on one connection's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Limits on each reply.
    pub limits: Limits,
    /// Most commands held while no connection is up.
    pub max_held: usize,
    /// Most encoded bytes of commands held while no connection is up.
    pub max_held_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            max_held: 10_000,
            max_held_bytes: 16 << 20,
        }
    }
}

/// The connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No TCP connection; `since` is when the last one (or attempt) ended.
    Down { since: Option<Instant> },
    /// Connected: bytes flow.
    Up,
    /// Connected but broken: no bytes flow until `disconnected`.
    Unusable,
}

/// What the next reply answers, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Auth,
    Select,
    Tag(u64),
}

/// Input buffers shrink back to this once a big reply is gone.
const KEEP: usize = 16 << 10;
/// Names per re-subscribing command.
const NAMES_PER_COMMAND: usize = 1024;

/// One Redis connection's protocol state, across reconnects.
pub struct RedisConn {
    mode: Mode,
    settings: Settings,
    /// `AUTH [user] password`, encoded once.
    auth: Option<Vec<u8>>,
    db: u32,
    state: State,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    input: Vec<u8>,
    decoder: resp::Decoder,
    pending: VecDeque<Expect>,
    /// Commands issued while down, encoded, and their tags.
    held: Vec<u8>,
    held_tags: Vec<u64>,
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
    events: VecDeque<Event>,
}

impl RedisConn {
    /// A connection to `url`, down until [`RedisConn::connected`].
    pub fn new(url: &RedisUrl, mode: Mode) -> Self {
        RedisConn::with_settings(url, mode, Settings::default())
    }

    /// As [`RedisConn::new`], with explicit bounds.
    pub fn with_settings(url: &RedisUrl, mode: Mode, settings: Settings) -> Self {
        let auth = url.password.as_ref().map(|password| {
            let mut cmd = Vec::new();
            match &url.user {
                Some(user) => resp::encode_command(&mut cmd, &[b"AUTH", user.as_bytes(), password]),
                None => resp::encode_command(&mut cmd, &[b"AUTH", password]),
            }
            cmd
        });
        RedisConn {
            mode,
            settings,
            auth,
            db: url.db,
            state: State::Down { since: None },
            out: Vec::new(),
            written: 0,
            input: Vec::new(),
            decoder: resp::Decoder::new(),
            pending: VecDeque::new(),
            held: Vec::new(),
            held_tags: Vec::new(),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            events: VecDeque::new(),
        }
    }

    /// The mode given to `new`.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A TCP connection is up (and usable).
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// The current TCP connection must be dropped: the reactor closes it,
    /// calls [`RedisConn::disconnected`] and redials after a back-off.
    pub fn is_unusable(&self) -> bool {
        self.state == State::Unusable
    }

    /// Commands sent and waiting for their replies (AUTH/SELECT included).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Commands held until the next connection.
    pub fn held(&self) -> usize {
        self.held_tags.len()
    }

    /// The channels this connection wants, subscribed or not yet.
    pub fn channels(&self) -> impl Iterator<Item = &[u8]> {
        self.channels.iter().map(Vec::as_slice)
    }

    /// The patterns this connection wants, subscribed or not yet.
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        self.patterns.iter().map(Vec::as_slice)
    }

    /// A new TCP connection is up. Queues AUTH and SELECT, then (pub/sub)
    /// one SUBSCRIBE and one PSUBSCRIBE per 1,024 wanted names, then
    /// (commands) the held commands. Returns how long no connection was up,
    /// from the end of the previous one (or of the first failed attempt);
    /// `None` the first time.
    pub fn connected(&mut self, now: Instant) -> Option<Duration> {
        if !matches!(self.state, State::Down { .. }) {
            // A new connection replaces one the reactor forgot to report.
            self.disconnected(now);
        }
        let down_for = match self.state {
            State::Down { since } => since.map(|t| now.saturating_duration_since(t)),
            _ => None,
        };
        self.state = State::Up;
        if let Some(auth) = &self.auth {
            self.out.extend_from_slice(auth);
            self.pending.push_back(Expect::Auth);
        }
        match self.mode {
            Mode::Commands => {
                if self.db != 0 {
                    let db = self.db.to_string();
                    resp::encode_command(&mut self.out, &[b"SELECT", db.as_bytes()]);
                    self.pending.push_back(Expect::Select);
                }
                self.out.append(&mut self.held);
                self.pending
                    .extend(self.held_tags.drain(..).map(Expect::Tag));
                self.held.shrink_to(KEEP);
            }
            Mode::PubSub => {
                resubscribe(&mut self.out, b"SUBSCRIBE", &self.channels);
                resubscribe(&mut self.out, b"PSUBSCRIBE", &self.patterns);
            }
        }
        down_for
    }

    /// The TCP connection (or a connection attempt) ended. Every command in
    /// flight fails with [`ReplyError::Disconnected`]; unwritten bytes and
    /// unread input are dropped; subscriptions stay wanted.
    pub fn disconnected(&mut self, now: Instant) {
        let since = match self.state {
            State::Down { since: Some(t) } => t,
            _ => now,
        };
        self.fail_pending(ReplyError::Disconnected);
        self.reset_io();
        self.state = State::Down { since: Some(since) };
    }

    /// Queues a command; its outcome comes as one [`Event::Reply`] with
    /// `tag`. Sent at once if a connection is up, else held (see the module
    /// docs); commands run in the order they were issued.
    pub fn command(&mut self, args: &[&[u8]], tag: u64) {
        if self.mode == Mode::PubSub {
            return self.fail_now(tag, ReplyError::WrongMode);
        }
        if refused(args) {
            return self.fail_now(tag, ReplyError::Refused);
        }
        if self.state == State::Up {
            resp::encode_command(&mut self.out, args);
            self.pending.push_back(Expect::Tag(tag));
            return;
        }
        let size = encoded_len(args);
        let held_bytes = self.held.len().saturating_add(size);
        if self.held_tags.len() >= self.settings.max_held
            || held_bytes > self.settings.max_held_bytes
        {
            return self.fail_now(tag, ReplyError::QueueFull);
        }
        resp::encode_command(&mut self.held, args);
        self.held_tags.push(tag);
    }

    /// Wants `channel`; sends SUBSCRIBE now if up. `Ok(false)` if it was
    /// already wanted (nothing sent).
    pub fn subscribe(&mut self, channel: &[u8]) -> Result<bool, WrongMode> {
        self.want(SubKind::Channel, channel, true)
    }

    /// Wants `pattern`; sends PSUBSCRIBE now if up.
    pub fn psubscribe(&mut self, pattern: &[u8]) -> Result<bool, WrongMode> {
        self.want(SubKind::Pattern, pattern, true)
    }

    /// No longer wants `channel`; sends UNSUBSCRIBE now if up. `Ok(false)`
    /// if it was not wanted (nothing sent). Messages already on their way
    /// may still arrive.
    pub fn unsubscribe(&mut self, channel: &[u8]) -> Result<bool, WrongMode> {
        self.want(SubKind::Channel, channel, false)
    }

    /// No longer wants `pattern`; sends PUNSUBSCRIBE now if up.
    pub fn punsubscribe(&mut self, pattern: &[u8]) -> Result<bool, WrongMode> {
        self.want(SubKind::Pattern, pattern, false)
    }

    /// Wants every channel of `names` (or, with `on` false, no longer
    /// wants them), sending the changes as one SUBSCRIBE (UNSUBSCRIBE) per
    /// 1,024 names if up: a turn's worth of interest changes in one
    /// command. Returns how many names changed.
    pub fn want_channels<'n>(
        &mut self,
        names: impl IntoIterator<Item = &'n [u8]>,
        on: bool,
    ) -> Result<usize, WrongMode> {
        if self.mode != Mode::PubSub {
            return Err(WrongMode);
        }
        let mut changed: Vec<&[u8]> = Vec::new();
        for name in names {
            let new = if on {
                self.channels.insert(name.to_vec())
            } else {
                self.channels.remove(name)
            };
            if new && !changed.contains(&name) {
                changed.push(name);
            }
        }
        if self.state == State::Up {
            let verb: &[u8] = if on { b"SUBSCRIBE" } else { b"UNSUBSCRIBE" };
            for batch in changed.chunks(NAMES_PER_COMMAND) {
                let mut args = Vec::with_capacity(batch.len() + 1);
                args.push(verb);
                args.extend_from_slice(batch);
                resp::encode_command(&mut self.out, &args);
            }
        }
        Ok(changed.len())
    }

    fn want(&mut self, kind: SubKind, name: &[u8], on: bool) -> Result<bool, WrongMode> {
        if self.mode != Mode::PubSub {
            return Err(WrongMode);
        }
        let set = match kind {
            SubKind::Channel => &mut self.channels,
            SubKind::Pattern => &mut self.patterns,
        };
        let changed = if on {
            set.insert(name.to_vec())
        } else {
            set.remove(name)
        };
        if changed && self.state == State::Up {
            let verb: &[u8] = match (kind, on) {
                (SubKind::Channel, true) => b"SUBSCRIBE",
                (SubKind::Pattern, true) => b"PSUBSCRIBE",
                (SubKind::Channel, false) => b"UNSUBSCRIBE",
                (SubKind::Pattern, false) => b"PUNSUBSCRIBE",
            };
            resp::encode_command(&mut self.out, &[verb, name]);
        }
        Ok(changed)
    }

    /// Bytes read from the connection. Decodes every complete reply into
    /// events; keeps only the unfinished tail (copying nothing when `data`
    /// ends on a reply boundary and nothing was left over). Ignored unless
    /// the connection is up.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.state != State::Up {
            return;
        }
        if self.input.is_empty() {
            let used = self.consume(data);
            if self.state == State::Up {
                self.input.extend_from_slice(&data[used..]);
            }
        } else {
            self.input.extend_from_slice(data);
            let mut buf = std::mem::take(&mut self.input);
            let used = self.consume(&buf);
            if self.state == State::Up {
                buf.drain(..used);
                self.input = buf;
            }
        }
        if self.input.capacity() > 4 * KEEP && self.input.len() <= KEEP {
            self.input.shrink_to(KEEP);
        }
    }

    /// The next event, if any. Call until `None` after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes waiting to be written, borrowed from the connection's own
    /// buffer: the reactor writes straight from it, then calls
    /// [`RedisConn::advance`]. Empty unless up.
    pub fn transmit(&self) -> &[u8] {
        &self.out[self.written..]
    }

    /// `n` bytes of [`RedisConn::transmit`] were written.
    pub fn advance(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.out.len());
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > 4 * KEEP {
                self.out.shrink_to(KEEP);
            }
        } else if self.written > KEEP && self.written > self.out.len() / 2 {
            self.out.drain(..self.written);
            self.written = 0;
        }
    }

    /// Decodes complete replies from `buf`; returns the bytes they span.
    fn consume(&mut self, buf: &[u8]) -> usize {
        let mut used = 0;
        while self.state == State::Up {
            match self.decoder.decode(&buf[used..], &self.settings.limits) {
                Ok(None) => break,
                Ok(Some((reply, n))) => {
                    used += n;
                    self.on_reply(reply);
                }
                Err(e) => self.unusable(UnusableReason::Protocol(e)),
            }
        }
        used
    }

    fn on_reply(&mut self, reply: Reply) {
        let expect = match (self.mode, self.pending.front()) {
            // Pub/sub: only AUTH's reply is not a push.
            (Mode::PubSub, Some(Expect::Auth)) | (Mode::Commands, Some(_)) => {
                self.pending.pop_front()
            }
            (Mode::PubSub, _) => return self.on_push(reply),
            (Mode::Commands, None) => None,
        };
        match (expect, reply) {
            (Some(Expect::Tag(tag)), reply) => self.events.push_back(Event::Reply {
                tag,
                reply: Ok(reply),
            }),
            (Some(Expect::Auth), Reply::Error(e)) => self.unusable(UnusableReason::AuthFailed(e)),
            (Some(Expect::Select), Reply::Error(e)) => {
                self.unusable(UnusableReason::SelectFailed(e))
            }
            (Some(Expect::Auth | Expect::Select), _) => {}
            (None, _) => self.unusable(UnusableReason::UnexpectedReply),
        }
    }

    /// A reply on a pub/sub connection that is not AUTH's.
    fn on_push(&mut self, reply: Reply) {
        match event::push(reply) {
            Some(event) => self.events.push_back(event),
            None => self.unusable(UnusableReason::UnexpectedReply),
        }
    }

    /// The connection is broken: fail what is in flight, stop the bytes.
    fn unusable(&mut self, reason: UnusableReason) {
        self.fail_pending(ReplyError::Unusable);
        self.reset_io();
        self.state = State::Unusable;
        self.events.push_back(Event::Unusable(reason));
    }

    fn fail_pending(&mut self, error: ReplyError) {
        for expect in self.pending.drain(..) {
            if let Expect::Tag(tag) = expect {
                self.events.push_back(Event::Reply {
                    tag,
                    reply: Err(error),
                });
            }
        }
    }

    fn fail_now(&mut self, tag: u64, error: ReplyError) {
        self.events.push_back(Event::Reply {
            tag,
            reply: Err(error),
        });
    }

    fn reset_io(&mut self) {
        self.out.clear();
        self.out.shrink_to(KEEP);
        self.written = 0;
        self.input.clear();
        self.input.shrink_to(KEEP);
        self.decoder.reset();
    }
}

/// Appends one `verb` command per [`NAMES_PER_COMMAND`] names.
fn resubscribe(out: &mut Vec<u8>, verb: &[u8], names: &BTreeSet<Vec<u8>>) {
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    for batch in names.chunks(NAMES_PER_COMMAND) {
        let mut args = Vec::with_capacity(batch.len() + 1);
        args.push(verb);
        args.extend_from_slice(batch);
        resp::encode_command(out, &args);
    }
}

/// Commands that would break reply matching or be lost on reconnect.
fn refused(args: &[&[u8]]) -> bool {
    let Some(name) = args.first() else {
        // redis-server answers an empty command with nothing at all.
        return true;
    };
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    const STATEFUL: [&str; 11] = [
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "MONITOR",
        "HELLO",
        "RESET",
        "AUTH",
        "SELECT",
    ];
    let client_reply = is("CLIENT")
        && args
            .get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"REPLY"));
    STATEFUL.iter().any(|s| is(s)) || client_reply
}

/// Bytes `resp::encode_command` appends for `args` (an upper bound is
/// enough for the held-bytes bound; this is exact).
fn encoded_len(args: &[&[u8]]) -> usize {
    let digits = |n: usize| n.checked_ilog10().unwrap_or(0) as usize + 1;
    let head = 3 + digits(args.len());
    args.iter().fold(head, |acc, a| {
        acc.saturating_add(5 + digits(a.len()) + a.len())
    })
}
