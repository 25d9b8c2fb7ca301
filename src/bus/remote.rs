//! The Redis bus, sans I/O: what one process tells Redis and what it makes
//! of what Redis brings, so that topics span processes (`docs/scaling.md`).
//!
//! - **Channels by interest.** Each topic is its own Redis channel,
//!   `{prefix}topic:{topic}`. The process subscribes to a topic's channel
//!   when its first local subscriber comes ([`RemoteBus::interest`]) and
//!   unsubscribes a [`Settings::linger`] after the last one left (a
//!   subscriber that comes back meanwhile costs nothing). The changes of
//!   one loop turn leave as one SUBSCRIBE and one UNSUBSCRIBE
//!   ([`RemoteBus::take_interest`]).
//! - **Publishing.** [`RemoteBus::publish`] numbers the event for its
//!   topic ([`Sequencer`]) and queues one PUBLISH of its [`Envelope`]. The
//!   reactor delivers to local subscribers itself, at once, and whatever
//!   comes back from Redis with this process's origin is dropped.
//! - **Receiving.** [`RemoteBus::receive`] decodes, drops what is not for
//!   a topic still wanted, its own and repeats, and reports each gap in an
//!   origin's numbers on a topic ([`SeqTracker`]) with the event after it.
//! - **Liveness.** When the subscriber connection has been quiet for
//!   [`Settings::probe_interval`], a probe is published on the process's
//!   own channel, `{prefix}probe:{origin}`; if nothing at all arrives
//!   within [`Settings::probe_timeout`], [`Command::Reconnect`] asks for a
//!   new subscriber connection (a connection that looks up but hears
//!   nothing is the failure to catch), and for a new commands connection
//!   too if not even the probe's PUBLISH was answered. Every connection of the commands
//!   link starts with `INFO server`, whose `run_id` tells
//!   ([`RemoteBus::info`]) whether Redis restarted meanwhile.
//!
//! Nothing here reads a clock or a random source: the caller passes `now`
//! and fresh origins.

use super::{DEFAULT_CAP, Envelope, EnvelopeError, Event, Origin, Seen, SeqTracker, Sequencer};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How the bus uses Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Put before every channel name (`sprocket:`), so that several
    /// applications can share one Redis.
    pub prefix: String,
    /// How long a topic's channel stays subscribed after its last local
    /// subscriber left.
    pub linger: Duration,
    /// Quiet time on the subscriber connection before a probe is sent.
    pub probe_interval: Duration,
    /// Time after a probe within which something must arrive, else the
    /// subscriber connection is replaced.
    pub probe_timeout: Duration,
    /// The largest payload taken from another process.
    pub max_payload: usize,
}

/// The default channel prefix.
pub const DEFAULT_PREFIX: &str = "sprocket:";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prefix: DEFAULT_PREFIX.to_owned(),
            linger: Duration::from_secs(1),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(5),
            max_payload: super::MAX_PAYLOAD,
        }
    }
}

/// What a PUBLISH was for, so that its reply is counted right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A topic event.
    Event,
    /// A liveness probe.
    Probe,
}

/// What to do on the commands link (in this order), or to the subscriber
/// link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `PUBLISH channel payload`.
    Publish {
        /// The channel.
        channel: Vec<u8>,
        /// An encoded [`Envelope`], or a probe.
        payload: Vec<u8>,
        /// Why.
        purpose: Purpose,
    },
    /// `INFO server` (its reply goes to [`RemoteBus::info`]).
    Info,
    /// Drop the subscriber connection and dial a new one (it subscribes to
    /// every wanted channel again): the probe went unanswered. With
    /// `commands`, the commands connection too: not even the probe's
    /// PUBLISH was answered.
    Reconnect {
        /// Replace the commands connection too.
        commands: bool,
    },
}

/// Why a message from Redis was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// This process published it (and delivered it locally already).
    Own,
    /// Seen before, or older than what was seen: at most once.
    Duplicate,
    /// For a topic no local subscriber wants (any more).
    NotWanted,
    /// Not an envelope.
    Malformed(EnvelopeError),
    /// An envelope for another topic than its channel's.
    WrongChannel,
    /// On a channel outside the bus's names.
    Foreign,
}

impl Dropped {
    /// The outcome label it is counted under.
    pub fn outcome(self) -> &'static str {
        match self {
            Dropped::Own => "own",
            Dropped::Duplicate => "duplicate",
            Dropped::NotWanted => "not_wanted",
            Dropped::Malformed(_) | Dropped::WrongChannel => "malformed",
            Dropped::Foreign => "foreign",
        }
    }
}

/// What a message from Redis comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Deliver `event` to the local subscribers of its topic. `missed`
    /// messages of `origin` on that topic were lost just before it (0: none).
    Deliver {
        /// The event.
        event: Event,
        /// Who published it.
        origin: Origin,
        /// The size of the gap before it.
        missed: u64,
    },
    /// This process's probe came back.
    Probe,
    /// Not delivered.
    Dropped(Dropped),
}

/// What an `INFO server` reply says about the Redis server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunId {
    /// The first server seen.
    First(String),
    /// The same server as before.
    Same,
    /// Redis restarted (or another server answers at the address):
    /// everything it held, subscriptions and messages in flight, is gone.
    Changed {
        /// The id before.
        old: String,
        /// The id now.
        new: String,
    },
    /// No `run_id` in the reply.
    Missing,
}

/// A topic's channel, as far as local interest goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interest {
    Wanted,
    /// No local subscriber since; unsubscribe at this time.
    Lingering(Instant),
}

/// The liveness probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// The subscriber connection is not up.
    Down,
    /// Up; `heard` is when anything last arrived on it (or it came up).
    Quiet { heard: Instant },
    /// Probe `n` was sent at `sent`, nothing heard since; `acked` once
    /// Redis answered its PUBLISH.
    Waiting { n: u64, sent: Instant, acked: bool },
}

/// One process's side of the Redis bus.
pub struct RemoteBus {
    settings: Settings,
    sequencer: Sequencer,
    tracker: SeqTracker,
    topics: HashMap<String, Interest>,
    /// Channels to subscribe to and unsubscribe from, this turn.
    subscribe: BTreeSet<Vec<u8>>,
    unsubscribe: BTreeSet<Vec<u8>>,
    commands: VecDeque<Command>,
    probe: Probe,
    probes_sent: u64,
    probe_channel: Vec<u8>,
    run_id: Option<String>,
    /// The subscriber connection was up once.
    was_up: bool,
}

impl RemoteBus {
    /// The bus of a process whose origin is `origin` (128 random bits). It
    /// wants its probe channel from the start.
    pub fn new(settings: Settings, origin: Origin) -> RemoteBus {
        let probe_channel = probe_channel(&settings.prefix, origin);
        let mut subscribe = BTreeSet::new();
        subscribe.insert(probe_channel.clone());
        RemoteBus {
            settings,
            sequencer: Sequencer::new(origin, DEFAULT_CAP),
            tracker: SeqTracker::new(DEFAULT_CAP),
            topics: HashMap::new(),
            subscribe,
            unsubscribe: BTreeSet::new(),
            commands: VecDeque::new(),
            probe: Probe::Down,
            probes_sent: 0,
            probe_channel,
            run_id: None,
            was_up: false,
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This process's origin (it changes only when the sequencer rotates).
    pub fn origin(&self) -> Origin {
        self.sequencer.origin()
    }

    /// The Redis channel of `topic`.
    pub fn channel(&self, topic: &str) -> Vec<u8> {
        let mut c = Vec::with_capacity(self.settings.prefix.len() + 6 + topic.len());
        c.extend_from_slice(self.settings.prefix.as_bytes());
        c.extend_from_slice(b"topic:");
        c.extend_from_slice(topic.as_bytes());
        c
    }

    /// The process's own channel, where its probes go.
    pub fn probe_channel(&self) -> &[u8] {
        &self.probe_channel
    }

    /// Topic channels subscribed or lingering.
    pub fn channel_count(&self) -> usize {
        self.topics.len()
    }

    /// The first local subscriber of `topic` came (`on`), or the last one
    /// left.
    pub fn interest(&mut self, topic: &str, on: bool, now: Instant) {
        match (self.topics.get_mut(topic), on) {
            (Some(i), true) => *i = Interest::Wanted,
            (Some(i), false) => *i = Interest::Lingering(now + self.settings.linger),
            (None, true) => {
                self.topics.insert(topic.to_owned(), Interest::Wanted);
                let channel = self.channel(topic);
                if !self.unsubscribe.remove(&channel) {
                    self.subscribe.insert(channel);
                }
            }
            (None, false) => {}
        }
    }

    /// The channel changes of this turn: (subscribe, unsubscribe).
    pub fn take_interest(&mut self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let on = std::mem::take(&mut self.subscribe).into_iter().collect();
        let off = std::mem::take(&mut self.unsubscribe).into_iter().collect();
        (on, off)
    }

    /// Whether commands or channel changes are waiting.
    pub fn has_work(&self) -> bool {
        !self.commands.is_empty() || !self.subscribe.is_empty() || !self.unsubscribe.is_empty()
    }

    /// The next command for Redis.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// Numbers `event` and queues its PUBLISH. `fresh` gives a new random
    /// origin, needed when the sequencer is full (65,536 topics).
    pub fn publish(
        &mut self,
        event: &Event,
        fresh: impl FnOnce() -> Origin,
    ) -> Result<(), EnvelopeError> {
        let seq = match self.sequencer.next(&event.topic) {
            Some(seq) => seq,
            None => {
                self.sequencer.rotate(fresh());
                self.sequencer.next(&event.topic).unwrap_or(1)
            }
        };
        let envelope = Envelope::from_event(event, self.sequencer.origin(), seq, 0);
        let mut payload = Vec::with_capacity(envelope.encoded_len());
        envelope.encode(&mut payload)?;
        self.commands.push_back(Command::Publish {
            channel: self.channel(&event.topic),
            payload,
            purpose: Purpose::Event,
        });
        Ok(())
    }

    /// A message on a subscribed channel.
    pub fn receive(&mut self, channel: &[u8], payload: &[u8], now: Instant) -> Received {
        self.heard(now);
        if channel == self.probe_channel.as_slice() {
            return Received::Probe;
        }
        let Some(topic) = self.topic_of(channel) else {
            return Received::Dropped(Dropped::Foreign);
        };
        let envelope = match Envelope::decode_with_limit(payload, self.settings.max_payload) {
            Ok(e) => e,
            Err(e) => return Received::Dropped(Dropped::Malformed(e)),
        };
        if envelope.topic.as_bytes() != topic {
            return Received::Dropped(Dropped::WrongChannel);
        }
        if !self.topics.contains_key(envelope.topic) {
            return Received::Dropped(Dropped::NotWanted);
        }
        if envelope.origin == self.sequencer.origin() {
            return Received::Dropped(Dropped::Own);
        }
        let missed = match self
            .tracker
            .observe(envelope.origin, envelope.topic, envelope.seq)
        {
            Seen::First | Seen::InOrder => 0,
            Seen::Gap { missed } => missed,
            Seen::Duplicate => return Received::Dropped(Dropped::Duplicate),
        };
        Received::Deliver {
            event: envelope.to_event(),
            origin: envelope.origin,
            missed,
        }
    }

    /// The topic part of a topic channel's name.
    fn topic_of<'c>(&self, channel: &'c [u8]) -> Option<&'c [u8]> {
        channel
            .strip_prefix(self.settings.prefix.as_bytes())?
            .strip_prefix(b"topic:")
    }

    fn heard(&mut self, now: Instant) {
        if self.probe != Probe::Down {
            self.probe = Probe::Quiet { heard: now };
        }
    }

    /// The subscriber connection is up (it subscribes to every wanted
    /// channel again by itself). True if it was up before: events
    /// published while it was down may be lost.
    pub fn subscriber_up(&mut self, now: Instant) -> bool {
        self.probe = Probe::Quiet { heard: now };
        std::mem::replace(&mut self.was_up, true)
    }

    /// The topics whose channels local subscribers want (lingering ones
    /// have none).
    pub fn wanted(&self) -> impl Iterator<Item = &str> {
        self.topics
            .iter()
            .filter(|(_, i)| **i == Interest::Wanted)
            .map(|(t, _)| t.as_str())
    }

    /// Redis answered the PUBLISH of the probe in flight: the commands
    /// connection works, whatever becomes of the probe.
    pub fn probe_published(&mut self) {
        if let Probe::Waiting { acked, .. } = &mut self.probe {
            *acked = true;
        }
    }

    /// The subscriber connection is down.
    pub fn subscriber_down(&mut self) {
        self.probe = Probe::Down;
    }

    /// A commands connection is up: ask who the server is.
    pub fn commands_up(&mut self) {
        self.commands.push_back(Command::Info);
    }

    /// The reply to `INFO server`.
    pub fn info(&mut self, text: &[u8]) -> RunId {
        let Some(id) = run_id(text) else {
            return RunId::Missing;
        };
        match self.run_id.replace(id.clone()) {
            None => RunId::First(id),
            Some(old) if old == id => RunId::Same,
            Some(old) => RunId::Changed { old, new: id },
        }
    }

    /// Runs the timers: lingering channels end, probes go out or time out.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut ended = Vec::new();
        self.topics.retain(|topic, interest| match interest {
            Interest::Lingering(at) if *at <= now => {
                ended.push(topic.clone());
                false
            }
            _ => true,
        });
        for topic in ended {
            // The messages it misses from now on were not meant for it: a
            // later subscription starts afresh rather than seeing a gap.
            self.tracker.reset(&topic);
            let channel = self.channel(&topic);
            if !self.subscribe.remove(&channel) {
                self.unsubscribe.insert(channel);
            }
        }
        match self.probe {
            Probe::Quiet { heard } if now >= heard + self.settings.probe_interval => {
                self.probes_sent += 1;
                self.probe = Probe::Waiting {
                    n: self.probes_sent,
                    sent: now,
                    acked: false,
                };
                self.commands.push_back(Command::Publish {
                    channel: self.probe_channel.clone(),
                    payload: format!("probe {}", self.probes_sent).into_bytes(),
                    purpose: Purpose::Probe,
                });
            }
            Probe::Waiting { sent, acked, .. } if now >= sent + self.settings.probe_timeout => {
                self.probe = Probe::Down;
                self.commands
                    .push_back(Command::Reconnect { commands: !acked });
            }
            _ => {}
        }
    }

    /// When [`RemoteBus::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let probe = match self.probe {
            Probe::Down => None,
            Probe::Quiet { heard } => Some(heard + self.settings.probe_interval),
            Probe::Waiting { sent, .. } => Some(sent + self.settings.probe_timeout),
        };
        let linger = self.topics.values().filter_map(|i| match i {
            Interest::Lingering(at) => Some(*at),
            Interest::Wanted => None,
        });
        linger.chain(probe).min()
    }

    /// Pairs the tracker forgot to make room (their next gap goes unseen).
    pub fn evicted(&self) -> u64 {
        self.tracker.evicted()
    }
}

/// `{prefix}probe:{origin}`.
fn probe_channel(prefix: &str, origin: Origin) -> Vec<u8> {
    format!("{prefix}probe:{origin}").into_bytes()
}

/// The `run_id:` line of an INFO reply.
fn run_id(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests;
