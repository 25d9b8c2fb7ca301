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

pub mod durable;

use super::{DEFAULT_CAP, Envelope, EnvelopeError, Event, Origin, Seen, SeqTracker, Sequencer};
use durable::{Entry, MAX_HELD, Position, REPAIR_BATCH, StreamId};
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
    /// Topics starting with one of these are durable: kept in a stream,
    /// from which a process repairs what it missed.
    pub durable: Vec<String>,
    /// About how many entries each durable topic's stream keeps.
    pub durable_maxlen: usize,
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
            durable: Vec::new(),
            durable_maxlen: 10_000,
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
    /// `EVAL` [`durable::PUBLISH_SCRIPT`] for a durable topic: append to
    /// `stream` (about `maxlen` entries kept; `epoch` names the stream if
    /// it is new) and publish on `channel`.
    PublishDurable {
        /// The topic's stream.
        stream: Vec<u8>,
        /// The topic's channel.
        channel: Vec<u8>,
        /// `MAXLEN ~`.
        maxlen: usize,
        /// The epoch of a new stream.
        epoch: String,
        /// The encoded [`Envelope`].
        payload: Vec<u8>,
    },
    /// `XRANGE stream (after + COUNT count` (from the start without
    /// `after`); its reply goes to [`RemoteBus::repaired`] with `topic`.
    Repair {
        /// The durable topic.
        topic: String,
        /// Its stream.
        stream: Vec<u8>,
        /// The last entry taken.
        after: Option<StreamId>,
        /// Most entries.
        count: usize,
    },
    /// `XREVRANGE stream + - COUNT 1`: where a durable topic's stream
    /// stands as this process begins to hear it; the reply goes to
    /// [`RemoteBus::located`].
    Locate {
        /// The durable topic.
        topic: String,
        /// Its stream.
        stream: Vec<u8>,
    },
    /// `EVAL` [`durable::HISTORY_SCRIPT`] for an app: the stream after
    /// `after`; the reply goes to the app's ticket `ticket`.
    History {
        /// The durable topic.
        topic: String,
        /// Its stream.
        stream: Vec<u8>,
        /// The position to read after.
        after: Option<(String, StreamId)>,
        /// The app's ticket id.
        ticket: u64,
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
    /// On a durable topic's channel, but not `"{epoch} {id} {envelope}"`.
    NotDurable,
    /// Of a durable topic's stream that is gone (its loss was announced
    /// when the position moved to the new one).
    Gone,
}

impl Dropped {
    /// The outcome label it is counted under.
    pub fn outcome(self) -> &'static str {
        match self {
            Dropped::Own => "own",
            Dropped::Gone => "gone",
            Dropped::Duplicate => "duplicate",
            Dropped::NotWanted => "not_wanted",
            Dropped::Malformed(_) | Dropped::WrongChannel | Dropped::NotDurable => "malformed",
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
    /// A message of a durable topic, taken: what it comes to (perhaps
    /// several deliveries, perhaps none yet while a repair is out) is in
    /// [`RemoteBus::poll_output`].
    Durable,
}

/// What a durable topic's message or a repair comes to, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// As [`Received::Deliver`].
    Deliver {
        /// The event.
        event: Event,
        /// Who published it.
        origin: Origin,
        /// Lost just before it, for good (gone from the stream too).
        missed: u64,
    },
    /// Events of `topic` may be lost for good: its stream was lost (a new
    /// epoch) or could not be read.
    Lost {
        /// The topic.
        topic: String,
    },
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
    /// Where this process stands in each wanted durable topic's stream.
    positions: HashMap<String, Position>,
    outputs: VecDeque<Output>,
    /// Publishes on durable topics, to name new streams' epochs uniquely.
    durable_publishes: u64,
    /// Commands to send again, before any other, and how often they were
    /// sent.
    retries: VecDeque<(Command, u8)>,
    /// This process's origins before the sequencer rotated.
    past_origins: Vec<Origin>,
}

/// Past origins of this process remembered (one rotation per 65,536
/// topics: echoes in flight are long gone after a few).
const MAX_PAST_ORIGINS: usize = 4;

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
            positions: HashMap::new(),
            outputs: VecDeque::new(),
            durable_publishes: 0,
            retries: VecDeque::new(),
            past_origins: Vec::new(),
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
                if self.is_durable(topic) {
                    // Where the stream stands first, then the subscription:
                    // what came before is not for this process, what comes
                    // after is live or read back once subscribed.
                    let pos = self.positions.entry(topic.to_owned()).or_default();
                    if !pos.locating {
                        pos.locating = true;
                        self.commands.push_back(Command::Locate {
                            topic: topic.to_owned(),
                            stream: self.stream(topic),
                        });
                    }
                    return;
                }
                self.want_channel(topic);
            }
            (None, false) => {}
        }
    }

    fn want_channel(&mut self, topic: &str) {
        let channel = self.channel(topic);
        if !self.unsubscribe.remove(&channel) {
            self.subscribe.insert(channel);
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
        !self.commands.is_empty()
            || !self.retries.is_empty()
            || !self.subscribe.is_empty()
            || !self.unsubscribe.is_empty()
    }

    /// The next command for Redis: those to send again first.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.poll_command_tried().map(|(c, _)| c)
    }

    /// [`RemoteBus::poll_command`], with how often it was sent before.
    pub fn poll_command_tried(&mut self) -> Option<(Command, u8)> {
        self.retries
            .pop_front()
            .or_else(|| self.commands.pop_front().map(|c| (c, 0)))
    }

    /// Sends a publish again whose connection failed before Redis answered
    /// (it may or may not have run: a repeat is dropped by every receiver,
    /// by its number); `tries` is how often it was sent. Call it when the
    /// failure is reported, before any later publish goes out, so that
    /// order holds.
    pub fn retry(&mut self, mut command: Command, tries: u8) {
        if let Command::PublishDurable { epoch, .. } = &mut command {
            // The first run may have made a stream that Redis then lost:
            // a stream made again must not carry the lost one's name.
            self.durable_publishes += 1;
            *epoch = format!("{}.{}", self.sequencer.origin(), self.durable_publishes);
        }
        self.retries.push_back((command, tries));
    }

    /// The next output of durable topics' messages and repairs.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Queues a read of `topic`'s stream after `after` for the app holding
    /// ticket `ticket`; false if the topic is not durable or `after` is not
    /// a position.
    pub fn history(&mut self, topic: &str, after: Option<&str>, ticket: u64) -> bool {
        if !self.is_durable(topic) {
            return false;
        }
        let after = match after.map(durable::parse_position) {
            Some(None) => return false,
            Some(Some((e, id))) => Some((e.to_owned(), id)),
            None => None,
        };
        let command = Command::History {
            topic: topic.to_owned(),
            stream: self.stream(topic),
            after,
            ticket,
        };
        match self.positions.get_mut(topic) {
            Some(pos) if pos.confirmed => self.commands.push_back(command),
            // Wanted, not subscribed yet: after the confirmation, so that
            // every event is in the read or arrives live.
            _ if self.topics.contains_key(topic) => self
                .positions
                .entry(topic.to_owned())
                .or_default()
                .waiting
                .push(command),
            _ => self.commands.push_back(command),
        }
        true
    }

    /// Whether `topic` is durable.
    pub fn is_durable(&self, topic: &str) -> bool {
        self.settings
            .durable
            .iter()
            .any(|p| topic.starts_with(p.as_str()))
    }

    /// The Redis stream of a durable `topic`.
    pub fn stream(&self, topic: &str) -> Vec<u8> {
        format!("{}stream:{topic}", self.settings.prefix).into_bytes()
    }

    /// Numbers `event` and queues its PUBLISH. `fresh` gives a new random
    /// origin, needed when the sequencer is full (65,536 topics).
    pub fn publish(
        &mut self,
        event: &Event,
        fresh: impl FnOnce() -> Origin,
    ) -> Result<(), EnvelopeError> {
        // Refuse before numbering: a number handed out and never sent
        // would look like a loss to every receiver.
        Envelope::from_event(event, self.sequencer.origin(), 1, 0).check()?;
        let seq = match self.sequencer.next(&event.topic) {
            Some(seq) => seq,
            None => {
                // Echoes of the old origin's publishes may still come.
                self.past_origins.push(self.sequencer.origin());
                if self.past_origins.len() > MAX_PAST_ORIGINS {
                    self.past_origins.remove(0);
                }
                self.sequencer.rotate(fresh());
                self.sequencer.next(&event.topic).unwrap_or(1)
            }
        };
        let envelope = Envelope::from_event(event, self.sequencer.origin(), seq, 0);
        let mut payload = Vec::with_capacity(envelope.encoded_len());
        envelope.encode(&mut payload)?;
        let channel = self.channel(&event.topic);
        let command = if self.is_durable(&event.topic) {
            self.durable_publishes += 1;
            Command::PublishDurable {
                stream: self.stream(&event.topic),
                channel,
                maxlen: self.settings.durable_maxlen,
                epoch: format!("{}.{}", self.sequencer.origin(), self.durable_publishes),
                payload,
            }
        } else {
            Command::Publish {
                channel,
                payload,
                purpose: Purpose::Event,
            }
        };
        self.commands.push_back(command);
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
        if let Ok(topic) = std::str::from_utf8(topic)
            && self.is_durable(topic)
        {
            return self.receive_durable(topic, payload);
        }
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
        if self.is_own(envelope.origin) {
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

    /// A message on a durable topic's channel: taken in stream order, a
    /// gap in a publisher's numbers repaired from the stream first.
    fn receive_durable(&mut self, topic: &str, payload: &[u8]) -> Received {
        let Some((epoch, id, envelope)) = durable::split_message(payload) else {
            return Received::Dropped(Dropped::NotDurable);
        };
        if !self.topics.contains_key(topic) {
            return Received::Dropped(Dropped::NotWanted);
        }
        let pos = self.positions.entry(topic.to_owned()).or_default();
        if let Some(held) = &mut pos.repairing {
            if held.len() >= MAX_HELD {
                // The next gap brings it back from the stream.
                held.remove(0);
            }
            held.push((epoch.to_owned(), id, envelope.to_vec()));
            return Received::Durable;
        }
        self.take(topic, epoch, id, envelope, true);
        Received::Durable
    }

    /// Takes one entry of a durable topic, live (a gap starts a repair) or
    /// from a repair (a gap is for good).
    fn take(&mut self, topic: &str, epoch: &str, id: StreamId, bytes: &[u8], live: bool) {
        let Some(pos) = self.positions.get_mut(topic) else {
            return;
        };
        let can_repair = live && (pos.settled.is_none() || pos.settled != pos.at);
        let after = match &pos.at {
            Some((e, last)) if e == epoch && id <= *last => {
                return self.outputs.push_back(Output::Dropped(Dropped::Duplicate));
            }
            Some((e, last)) if e == epoch => Some(*last),
            Some(_) if pos.left.iter().any(|e| e == epoch) => {
                // A late message of a stream that is gone: never back to
                // it (its loss was announced when the position moved).
                return self.outputs.push_back(Output::Dropped(Dropped::Gone));
            }
            Some(_) if can_repair => {
                // A new epoch: the stream was lost and begun again. Read
                // the new one from its start, then go on.
                pos.repairing = Some(vec![(epoch.to_owned(), id, bytes.to_vec())]);
                return self.ask_repair(topic, None);
            }
            Some((old, _)) => {
                // Moving to the new stream: the rest of the old one is gone.
                let old = old.clone();
                if pos.left.len() >= 8 {
                    pos.left.remove(0);
                }
                pos.left.push(old);
                self.outputs.push_back(Output::Lost {
                    topic: topic.to_owned(),
                });
                None
            }
            None => None,
        };
        let envelope = match Envelope::decode_with_limit(bytes, self.settings.max_payload) {
            Ok(e) if e.topic == topic => e,
            Ok(_) => {
                pos.at = Some((epoch.to_owned(), id));
                return self
                    .outputs
                    .push_back(Output::Dropped(Dropped::WrongChannel));
            }
            Err(e) => {
                pos.at = Some((epoch.to_owned(), id));
                return self
                    .outputs
                    .push_back(Output::Dropped(Dropped::Malformed(e)));
            }
        };
        if can_repair
            && pos.at.is_some()
            && let Some(h) = self.tracker.last_seen(envelope.origin, topic)
            && envelope.seq > h.saturating_add(1)
        {
            // Something of this publisher is missing: from the stream
            // first, this one after it.
            pos.repairing = Some(vec![(epoch.to_owned(), id, bytes.to_vec())]);
            return self.ask_repair(topic, after);
        }
        pos.at = Some((epoch.to_owned(), id));
        // This process's own events too: durable topics are delivered in
        // the stream's order, the same in every process.
        let missed = match self.tracker.observe(envelope.origin, topic, envelope.seq) {
            Seen::First | Seen::InOrder => 0,
            Seen::Gap { missed } => missed,
            Seen::Duplicate => return self.outputs.push_back(Output::Dropped(Dropped::Duplicate)),
        };
        let mut event = envelope.to_event();
        event.position = Some(format!("{epoch}/{id}"));
        self.outputs.push_back(Output::Deliver {
            event,
            origin: envelope.origin,
            missed,
        });
    }

    fn ask_repair(&mut self, topic: &str, after: Option<StreamId>) {
        self.commands.push_back(Command::Repair {
            topic: topic.to_owned(),
            stream: self.stream(topic),
            after,
            count: REPAIR_BATCH,
        });
    }

    /// The reply to [`Command::Repair`]: the stream's entries after the
    /// position (`None`: it could not be read). Delivers what this
    /// process missed, then what waited, in stream order.
    pub fn repaired(&mut self, topic: &str, entries: Option<Vec<Entry>>) {
        let Some(pos) = self.positions.get(topic) else {
            return; // no longer wanted
        };
        if pos.repairing.is_none() {
            return;
        }
        let read = entries.is_some();
        let before = pos.at.clone();
        match entries {
            Some(entries) => {
                let full = entries.len() >= REPAIR_BATCH;
                for e in &entries {
                    self.take(topic, &e.epoch, e.id, &e.envelope, false);
                }
                if let Some(pos) = self.positions.get_mut(topic) {
                    // A read that did not move the position: reading again
                    // would find the same (and again, for ever).
                    pos.settled = (pos.at == before).then(|| pos.at.clone()).flatten();
                    // The read shows the stream's epoch as it stands: held
                    // messages of any other are late ones of a stream that
                    // is gone (a newer one would come after, and be read).
                    if let Some(current) = entries.last().map(|e| e.epoch.as_str())
                        && let Some(held) = &pos.repairing
                    {
                        for (epoch, _, _) in held {
                            if epoch != current && !pos.left.contains(epoch) {
                                if pos.left.len() >= 8 {
                                    pos.left.remove(0);
                                }
                                pos.left.push(epoch.clone());
                            }
                        }
                    }
                }
                if full {
                    let after = self
                        .positions
                        .get(topic)
                        .and_then(|p| p.at.as_ref())
                        .map(|a| a.1);
                    return self.ask_repair(topic, after);
                }
            }
            None => self.outputs.push_back(Output::Lost {
                topic: topic.to_owned(),
            }),
        }
        let held = self
            .positions
            .get_mut(topic)
            .and_then(|p| p.repairing.take())
            .unwrap_or_default();
        // What waited is live: a gap among it is read back too, unless the
        // stream could not be read (then the gaps are for good, or this
        // would ask again and again).
        let mut held = held.into_iter();
        while let Some((epoch, id, bytes)) = held.next() {
            self.take(topic, &epoch, id, &bytes, read);
            if let Some(again) = self
                .positions
                .get_mut(topic)
                .and_then(|p| p.repairing.as_mut())
            {
                again.extend(held);
                return;
            }
        }
        if let Some(pos) = self.positions.get_mut(topic)
            && std::mem::take(&mut pos.repeat)
        {
            let after = pos.at.as_ref().map(|a| a.1);
            pos.repairing = Some(Vec::new());
            self.ask_repair(topic, after);
        }
    }

    /// After the subscription was down, every durable topic reads its
    /// stream back once its new subscription is confirmed.
    fn mark_stale(&mut self) {
        for pos in self.positions.values_mut() {
            pos.stale = true;
        }
    }

    /// Redis confirmed the subscription to `channel`. For a durable topic
    /// heard for the first time, ask where its stream stands: from there
    /// on, nothing can be missed without being repaired.
    pub fn subscribed(&mut self, channel: &[u8]) {
        let Some(topic) = self
            .topic_of(channel)
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return;
        };
        if !self.is_durable(topic) || !self.topics.contains_key(topic) {
            return;
        }
        let topic = topic.to_owned();
        let pos = self.positions.entry(topic.clone()).or_default();
        pos.confirmed = true;
        self.commands.extend(pos.waiting.drain(..));
        if std::mem::take(&mut pos.stale) {
            if pos.repairing.is_some() {
                pos.repeat = true;
                return;
            }
            if pos.at.is_some() || pos.located {
                // From the last entry taken, or from the start of a stream
                // that was empty when this process began to hear it.
                let after = pos.at.as_ref().map(|a| a.1);
                pos.repairing = Some(Vec::new());
                self.ask_repair(&topic, after);
            }
        }
    }

    /// The reply to [`Command::Locate`]: the stream's last entry (none: it
    /// is empty), or `None` if it could not be read (then an outage gets
    /// a notice instead of a repair until a message gives a position).
    pub fn located(&mut self, topic: &str, last: Option<Vec<Entry>>) {
        let Some(pos) = self.positions.get_mut(topic) else {
            return;
        };
        if !pos.locating {
            return;
        }
        pos.locating = false;
        if let Some(last) = last {
            pos.located = true;
            if let Some(e) = last.into_iter().next() {
                // Already in the stream before this process subscribed:
                // not for its subscribers.
                pos.at = Some((e.epoch, e.id));
            }
            // What is published before the subscription starts is read
            // back once Redis confirms it.
            pos.stale = true;
        }
        if self.topics.contains_key(topic) {
            self.want_channel(topic);
        }
    }
    /// Whether `origin` is this process's, now or before a rotation.
    fn is_own(&self, origin: Origin) -> bool {
        origin == self.sequencer.origin() || self.past_origins.contains(&origin)
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
    /// Durable topics are repaired from their streams by themselves.
    pub fn subscriber_up(&mut self, now: Instant) -> bool {
        self.probe = Probe::Quiet { heard: now };
        let again = std::mem::replace(&mut self.was_up, true);
        if again {
            self.mark_stale();
        }
        again
    }

    /// The topics whose channels local subscribers want (lingering ones
    /// have none), but the durable ones that can repair what an outage
    /// loses (their position is known).
    pub fn wanted(&self) -> impl Iterator<Item = &str> {
        self.topics
            .iter()
            .filter(|(t, i)| {
                **i == Interest::Wanted
                    && (!self.is_durable(t)
                        || self
                            .positions
                            .get(*t)
                            .is_none_or(|p| p.at.is_none() && !p.located))
            })
            .map(|(t, _)| t.as_str())
    }

    /// Redis answered the PUBLISH of the probe in flight: the commands
    /// connection works, whatever becomes of the probe.
    pub fn probe_published(&mut self) {
        if let Probe::Waiting { acked, .. } = &mut self.probe {
            *acked = true;
        }
    }

    /// Whether the subscriber connection is up: other processes' events
    /// can arrive.
    pub fn subscriber_is_up(&self) -> bool {
        self.probe != Probe::Down
    }

    /// The subscriber connection is down.
    pub fn subscriber_down(&mut self) {
        for pos in self.positions.values_mut() {
            pos.confirmed = false;
        }
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
            if let Some(pos) = self.positions.remove(&topic) {
                // Reads still waiting are answered all the same.
                self.commands.extend(pos.waiting);
            }
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
