//! The Redis bus's state machine (`sprocket::bus::remote::RemoteBus`),
//! driven through its whole API by the input and checked against a model
//! written from the module's docs.
//!
//! Input: three bytes of settings (prefix, receiver's payload limit,
//! linger, probe interval and timeout, all in 5 ms steps, 0 included),
//! then operations, one byte each (low nibble: which, high nibble: its
//! argument) plus the bytes some of them take: time passes (the clock
//! never goes back); interest on or off in one of 4 topics; publish (topic,
//! session, user, exclude, eligible and its text from the input, an
//! oversized topic or session sometimes); receive an envelope made from
//! the input (own origin or one of 3 others, seq next, repeated, late,
//! after a gap or absolute, optional fields, a payload over a small limit)
//! or raw bytes, on a topic channel of the bus, its probe channel, another
//! process's probe channel, another name, or a topic never wanted; receive
//! back the last PUBLISH polled (the echo of one's own); subscriber up or
//! down, commands up, probe published, an INFO reply (made or raw);
//! `handle_timeout`; `take_interest`; `poll_command` (some or all); a
//! whole reactor turn. Everything is drained at the end.
//!
//! Checked: nothing panics; every answer is the model's:
//! - `receive`: the probe channel gives `Probe`, a name outside the
//!   prefix's topic channels `Foreign`, what does not decode (at the
//!   bus's limit) that error; a `Deliver` comes exactly when no drop
//!   reason applies (wrong channel, topic not wanted or lingering, own
//!   origin, seq not above the last delivered of that origin on that
//!   topic since its interest began), carries the envelope's event and
//!   origin, never the same (origin, topic, seq) twice while the topic's
//!   interest lasts, with `missed` the numbers skipped since the last
//!   delivered seq of that pair (0 for the first), and a drop gives one
//!   of the reasons that apply;
//! - `take_interest`: no channel in both lists, none subscribed twice,
//!   none unsubscribed that was not subscribed; exactly what the interest
//!   implies (the probe channel, and wanted or lingering topics' channels)
//!   that is not subscribed yet, and what is subscribed that it no longer
//!   implies (so after each drain, the subscribed set is what it implies);
//! - commands come in the model's order: each PUBLISH of an event on its
//!   topic's channel, decoding to this origin, seq 1, 2, 3 … per topic,
//!   epoch 0 and the event itself; a refused publish queues nothing and
//!   returns the envelope's own error and uses no seq; a probe on the probe channel once
//!   the subscriber connection was up and quiet for the probe interval;
//!   `Reconnect` only once the probe timeout passed after a probe with
//!   nothing received since, `commands: true` only if that probe's PUBLISH
//!   was not answered; `Info` per commands connection;
//! - `info`: `First`, `Same`, `Changed` and `Missing` as the run ids say;
//! - after every operation: `poll_timeout` is the earliest linger end or
//!   probe deadline, `has_work` says whether commands or channel changes
//!   wait, `channel_count` counts wanted and lingering topics; after
//!   `handle_timeout(now)`, `poll_timeout` is `None` or after `now`, or
//!   there is work queued (no reactor spins on it); nothing is evicted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::bus::remote::{Command, Dropped, Purpose, Received, RemoteBus, RunId, Settings};
use sprocket::bus::{Envelope, Event, MAX_NAME_LEN, MAX_PAYLOAD, MAX_TOPIC_LEN, Origin};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

const TOPICS: [&str; 4] = ["t", "u", "", "topic:t"];
const PREFIXES: [&str; 4] = ["sprocket:", "", "app:", "sprocket:"];
const NAMES: [&str; 4] = ["s1", "s2", "", "é"];
const RUN_IDS: [&str; 4] = ["aaa", "bbb", "", " aaa "];
const OWN: Origin = Origin([1; 16]);
const STEP: Duration = Duration::from_millis(5);

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(h0), Some(h1), Some(h2)) = (input.byte(), input.byte(), input.byte()) else {
        return;
    };
    let settings = Settings {
        prefix: PREFIXES[usize::from(h0 & 3)].to_owned(),
        linger: STEP * u32::from(h1 & 15),
        probe_interval: STEP * u32::from(h1 >> 4),
        probe_timeout: STEP * u32::from(h2 & 15),
        max_payload: match h0 >> 2 {
            k if k < 16 => usize::from(k) * 4,
            _ => MAX_PAYLOAD,
        },
        // Durable topics have their own model: fuzz_targets/bus_durable.rs.
        ..Settings::default()
    };
    let mut now = Instant::now();
    let mut bus = RemoteBus::new(settings.clone(), OWN);
    let mut m = Model::new(settings);
    assert_eq!(bus.probe_channel(), m.probe_channel.as_slice());
    for t in TOPICS {
        assert_eq!(bus.channel(t), m.channel(t));
    }
    m.check(&bus);
    while let Some(op) = input.byte() {
        let arg = op >> 4;
        match op & 15 {
            0 => now += STEP * u32::from(arg),
            1 => m.interest(&mut bus, TOPICS[usize::from(arg & 3)], arg & 4 != 0, now),
            2 => {
                let (Some(f), Some(n)) = (input.byte(), input.byte()) else {
                    break;
                };
                let text = input.take(usize::from(n & 15));
                let topic = match arg & 8 {
                    0 => TOPICS[usize::from(arg & 3)].to_owned(),
                    _ => "x".repeat(MAX_TOPIC_LEN + 1),
                };
                m.publish(&mut bus, publish_event(topic, f, text));
            }
            3 => {
                let (Some(c), Some(s), Some(f)) = (input.byte(), input.byte(), input.byte()) else {
                    break;
                };
                let (channel, payload) = m.made_envelope(c, s, f);
                m.receive(&mut bus, &channel, &payload, now);
            }
            4 => {
                let (Some(c), Some(n)) = (input.byte(), input.byte()) else {
                    break;
                };
                let (channel, _) = m.pick_channel(c);
                let payload = input.take(usize::from(n));
                m.receive(&mut bus, &channel, payload, now);
            }
            5 => m.subscriber_up(&mut bus, now),
            6 => m.subscriber_down(&mut bus),
            7 => m.commands_up(&mut bus),
            8 => m.probe_published(&mut bus),
            9 => match arg & 8 {
                0 => m.info_made(&mut bus, RUN_IDS[usize::from(arg & 3)], arg & 4 != 0),
                _ => {
                    let Some(n) = input.byte() else { break };
                    let text = input.take(usize::from(n));
                    m.info_raw(&mut bus, text);
                }
            },
            10 => m.handle_timeout(&mut bus, now),
            11 => m.take_interest(&mut bus),
            12 => m.poll(&mut bus, if arg == 0 { usize::MAX } else { arg.into() }),
            13 => {
                // What the reactor does each turn (`drive_bus`).
                m.handle_timeout(&mut bus, now);
                m.take_interest(&mut bus);
                m.poll(&mut bus, usize::MAX);
            }
            14 => {
                let Some(n) = input.byte() else { break };
                now += STEP * u32::from(n);
            }
            _ => {
                if let Some((channel, payload)) = m.echo.clone() {
                    m.receive(&mut bus, &channel, &payload, now);
                }
            }
        }
        m.check(&bus);
    }
    m.take_interest(&mut bus);
    m.poll(&mut bus, usize::MAX);
    m.check(&bus);
});

/// The rest of the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// Up to `n` bytes (fewer at the end).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// An event to publish. `f`: bit 0 a session, bit 1 a user, bit 2 an
/// `eligible` list, bits 3-4 how many `exclude` ids, bits 5-6 which names,
/// bit 7 with bit 0 a session too long to send.
fn publish_event(topic: String, f: u8, text: &[u8]) -> Event {
    let name = |i: u8| NAMES[usize::from((f >> 5) + i) & 3].to_owned();
    Event {
        topic,
        data: String::from_utf8_lossy(text).into_owned(),
        user: (f & 2 != 0).then(|| name(1)),
        exclude: (0..(f >> 3) & 3).map(name).collect(),
        eligible: (f & 4 != 0).then(|| vec![name(2)]),
        publisher: match f & 0x81 {
            0x81 => Some("n".repeat(MAX_NAME_LEN + 1)),
            1 => Some(name(0)),
            _ => None,
        },
        position: None,
    }
}

/// A topic's interest, in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Wanted,
    Lingering(Instant),
}

/// The probe, in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    Down,
    /// Up; nothing sent since `heard` (the last message, or up).
    Quiet(Instant),
    /// A probe went out at `sent`; `acked` once its PUBLISH was answered.
    Waiting {
        sent: Instant,
        acked: bool,
    },
}

/// A command the model expects from `poll_command`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    Publish { event: Event, seq: u64 },
    Probe,
    Info,
    Reconnect { commands: bool },
}

struct Model {
    settings: Settings,
    own: Origin,
    probe_channel: Vec<u8>,
    topics: HashMap<String, Want>,
    /// The channels the bus has asked for (through `take_interest`).
    subscribed: BTreeSet<Vec<u8>>,
    /// The last seq delivered per (origin, topic) since the topic's
    /// interest began, and every one delivered.
    last: HashMap<(Origin, String), u64>,
    delivered: HashSet<(Origin, String, u64)>,
    /// The next seq of each topic this process publishes on.
    next_seq: HashMap<String, u64>,
    queue: VecDeque<Expected>,
    probe: Probe,
    run_id: Option<String>,
    /// Origins handed out for a rotation.
    fresh: u8,
    /// The last PUBLISH polled, to hear it back.
    echo: Option<(Vec<u8>, Vec<u8>)>,
}

impl Model {
    fn new(settings: Settings) -> Model {
        let probe_channel = format!("{}probe:{OWN}", settings.prefix).into_bytes();
        Model {
            settings,
            own: OWN,
            probe_channel,
            topics: HashMap::new(),
            subscribed: BTreeSet::new(),
            last: HashMap::new(),
            delivered: HashSet::new(),
            next_seq: HashMap::new(),
            queue: VecDeque::new(),
            probe: Probe::Down,
            run_id: None,
            fresh: 0,
            echo: None,
        }
    }

    fn channel(&self, topic: &str) -> Vec<u8> {
        format!("{}topic:{topic}", self.settings.prefix).into_bytes()
    }

    /// The channels the interest calls for.
    fn implied(&self) -> BTreeSet<Vec<u8>> {
        let mut all: BTreeSet<Vec<u8>> = self.topics.keys().map(|t| self.channel(t)).collect();
        all.insert(self.probe_channel.clone());
        all
    }

    fn wanted(&self, topic: &[u8]) -> bool {
        self.topics.keys().any(|t| t.as_bytes() == topic)
    }

    /// When `handle_timeout` next has something to do.
    fn deadline(&self) -> Option<Instant> {
        let probe = match self.probe {
            Probe::Down => None,
            Probe::Quiet(heard) => Some(heard + self.settings.probe_interval),
            Probe::Waiting { sent, .. } => Some(sent + self.settings.probe_timeout),
        };
        let linger = self.topics.values().filter_map(|w| match w {
            Want::Lingering(at) => Some(*at),
            Want::Wanted => None,
        });
        linger.chain(probe).min()
    }

    fn check(&self, bus: &RemoteBus) {
        assert_eq!(bus.origin(), self.own);
        assert_eq!(bus.channel_count(), self.topics.len());
        // A few pairs never fill the tracker.
        assert_eq!(bus.evicted(), 0);
        assert_eq!(bus.poll_timeout(), self.deadline(), "{:?}", self.probe);
        let changes = self.implied() != self.subscribed;
        assert_eq!(
            bus.has_work(),
            !self.queue.is_empty() || changes,
            "queue {:?}, channel changes {changes}",
            self.queue
        );
    }

    fn interest(&mut self, bus: &mut RemoteBus, topic: &str, on: bool, now: Instant) {
        bus.interest(topic, on, now);
        match (self.topics.get_mut(topic), on) {
            (Some(w), true) => *w = Want::Wanted,
            (Some(w), false) => *w = Want::Lingering(now + self.settings.linger),
            (None, true) => {
                assert!(self.last.keys().all(|(_, t)| t != topic));
                self.topics.insert(topic.to_owned(), Want::Wanted);
            }
            (None, false) => {}
        }
    }

    fn take_interest(&mut self, bus: &mut RemoteBus) {
        let (on, off) = bus.take_interest();
        for c in &on {
            assert!(!off.contains(c), "{c:?} in both lists");
            assert!(!self.subscribed.contains(c), "{c:?} subscribed twice");
        }
        for c in &off {
            assert!(
                self.subscribed.contains(c),
                "{c:?} unsubscribed, never subscribed"
            );
        }
        let implied = self.implied();
        let want_on: Vec<_> = implied.difference(&self.subscribed).cloned().collect();
        let want_off: Vec<_> = self.subscribed.difference(&implied).cloned().collect();
        assert_eq!((&on, &off), (&want_on, &want_off), "{:?}", self.topics);
        self.subscribed.extend(on);
        off.iter().for_each(|c| _ = self.subscribed.remove(c));
        assert_eq!(self.subscribed, implied);
    }

    fn publish(&mut self, bus: &mut RemoteBus, event: Event) {
        let refused = Envelope::from_event(&event, self.own, 1, 0).check().err();
        let mut rotated = None;
        let result = bus.publish(&event, || {
            self.fresh += 1;
            let origin = Origin([0xf0, self.fresh, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            rotated = Some(origin);
            origin
        });
        if let Some(origin) = rotated {
            self.own = origin;
            self.next_seq.clear();
        }
        assert_eq!(result.err(), refused, "{event:?}");
        if refused.is_none() {
            let next = self.next_seq.entry(event.topic.clone()).or_insert(1);
            let seq = *next;
            *next += 1;
            self.queue.push_back(Expected::Publish { event, seq });
        }
    }

    fn poll(&mut self, bus: &mut RemoteBus, max: usize) {
        for _ in 0..max {
            let got = bus.poll_command();
            let want = self.queue.pop_front();
            match (got, want) {
                (None, None) => break,
                (
                    Some(Command::Publish {
                        channel,
                        payload,
                        purpose: Purpose::Event,
                    }),
                    Some(Expected::Publish { event, seq }),
                ) => {
                    assert_eq!(channel, self.channel(&event.topic));
                    let env = Envelope::decode(&payload).expect("a publish decodes");
                    assert_eq!(
                        (env.origin, env.seq, env.epoch, env.topic),
                        (self.own, seq, 0, event.topic.as_str()),
                        "{event:?}"
                    );
                    assert_eq!(env.to_event(), event);
                    self.echo = Some((channel, payload));
                }
                (
                    Some(Command::Publish {
                        channel,
                        payload,
                        purpose: Purpose::Probe,
                    }),
                    Some(Expected::Probe),
                ) => {
                    assert_eq!(channel, self.probe_channel);
                    self.echo = Some((channel, payload));
                }
                (Some(Command::Info), Some(Expected::Info)) => {}
                (
                    Some(Command::Reconnect { commands }),
                    Some(Expected::Reconnect { commands: c }),
                ) => {
                    assert_eq!(commands, c, "Reconnect's commands");
                }
                (got, want) => panic!("command {got:?}, the model expects {want:?}"),
            }
        }
    }

    /// A channel for `c & 7`, and the topic it is for if a topic channel.
    fn pick_channel(&self, c: u8) -> (Vec<u8>, Option<String>) {
        let prefix = &self.settings.prefix;
        match c & 7 {
            i @ 0..4 => {
                let topic = TOPICS[usize::from(i)];
                (self.channel(topic), Some(topic.to_owned()))
            }
            4 => (self.probe_channel.clone(), None),
            5 => (b"elsewhere".to_vec(), None),
            6 => {
                let other = Origin([2; 16]);
                (format!("{prefix}probe:{other}").into_bytes(), None)
            }
            _ => (self.channel("zzz"), Some("zzz".to_owned())),
        }
    }

    /// A channel and an envelope for it. `c`: bits 0-2 the channel, 3-4 the
    /// topic (0: the channel's, else another one), 5-6 the origin (0: own),
    /// 7 a nonzero epoch. `s`: bits 6-7 next, repeat or late, after a gap,
    /// absolute; bits 0-5 by how much. `f`: bit 0 a session, 1 a user, 2 an
    /// `eligible` list, 3-4 which names, 5 an `exclude` id, 7 a payload of
    /// 40 bytes (over the smaller limits).
    fn made_envelope(&self, c: u8, s: u8, f: u8) -> (Vec<u8>, Vec<u8>) {
        let (channel, for_topic) = self.pick_channel(c);
        let k = usize::from((c >> 3) & 3);
        let topic = match (for_topic, k) {
            (Some(t), 0) => t,
            (None, 0) => TOPICS[0].to_owned(),
            (_, k) => TOPICS[(usize::from(c & 3) + k) % 4].to_owned(),
        };
        let origin = match (c >> 5) & 3 {
            0 => self.own,
            o => Origin([o + 1; 16]),
        };
        let last = self
            .last
            .get(&(origin, topic.clone()))
            .copied()
            .unwrap_or(0);
        let by = u64::from(s & 63);
        let seq = match s >> 6 {
            0 => last.saturating_add(1),
            1 => last.saturating_sub(by).max(1),
            2 => last.saturating_add(2 + by),
            _ => match by {
                0 => u64::MAX,
                63 => u64::MAX - 1,
                n => n,
            },
        };
        let name = |i: u8| NAMES[usize::from((f >> 3) + i) & 3];
        let text = match f & 0x80 {
            0 => seq.to_string(),
            _ => "x".repeat(40),
        };
        let envelope = Envelope {
            origin,
            seq,
            epoch: u64::from(c >> 7) * 7,
            topic: &topic,
            session: (f & 1 != 0).then(|| name(0)),
            user: (f & 2 != 0).then(|| name(1)),
            exclude: (f & 0x20 != 0).then(|| name(2)).into_iter().collect(),
            eligible: (f & 4 != 0).then(|| vec![name(3)]),
            payload: &text,
        };
        let mut payload = Vec::new();
        envelope.encode(&mut payload).expect("a valid envelope");
        (channel, payload)
    }

    fn receive(&mut self, bus: &mut RemoteBus, channel: &[u8], payload: &[u8], now: Instant) {
        let got = bus.receive(channel, payload, now);
        // Anything at all that arrives counts as the connection's life.
        if self.probe != Probe::Down {
            self.probe = Probe::Quiet(now);
        }
        if channel == self.probe_channel.as_slice() {
            assert_eq!(got, Received::Probe);
            return;
        }
        let topic_prefix = format!("{}topic:", self.settings.prefix);
        let Some(for_topic) = channel.strip_prefix(topic_prefix.as_bytes()) else {
            assert_eq!(got, Received::Dropped(Dropped::Foreign));
            return;
        };
        let env = match Envelope::decode_with_limit(payload, self.settings.max_payload) {
            Ok(env) => env,
            Err(e) => {
                assert_eq!(got, Received::Dropped(Dropped::Malformed(e)));
                return;
            }
        };
        let key = (env.origin, env.topic.to_owned());
        let last = self.last.get(&key).copied();
        let mut reasons = Vec::new();
        if env.topic.as_bytes() != for_topic {
            reasons.push(Dropped::WrongChannel);
        }
        if !self.wanted(env.topic.as_bytes()) || !self.wanted(for_topic) {
            reasons.push(Dropped::NotWanted);
        }
        if env.origin == self.own {
            reasons.push(Dropped::Own);
        }
        if last.is_some_and(|l| env.seq <= l) {
            reasons.push(Dropped::Duplicate);
        }
        match got {
            Received::Durable => panic!("no topic is durable here"),
            Received::Dropped(why) => {
                assert!(
                    reasons.contains(&why),
                    "{why:?}, not one of {reasons:?}: {env:?}"
                );
            }
            Received::Deliver {
                event,
                origin,
                missed,
            } => {
                assert!(reasons.is_empty(), "delivered, but {reasons:?}: {env:?}");
                assert!(last.is_none_or(|l| env.seq > l), "not after {last:?}");
                assert!(self.topics.contains_key(&event.topic), "not wanted");
                assert_ne!(origin, self.own, "own delivered");
                assert_eq!(origin, env.origin);
                assert_eq!(event, env.to_event());
                let expected = last.map_or(0, |l| env.seq - l - 1);
                assert_eq!(missed, expected, "missed after {last:?}: {env:?}");
                let first = self.delivered.insert((origin, key.1.clone(), env.seq));
                assert!(first, "delivered twice: {env:?}");
                self.last.insert(key, env.seq);
            }
            Received::Probe => panic!("a probe on {channel:?}"),
        }
    }

    fn subscriber_up(&mut self, bus: &mut RemoteBus, now: Instant) {
        bus.subscriber_up(now);
        self.probe = Probe::Quiet(now);
    }

    fn subscriber_down(&mut self, bus: &mut RemoteBus) {
        bus.subscriber_down();
        self.probe = Probe::Down;
    }

    fn commands_up(&mut self, bus: &mut RemoteBus) {
        bus.commands_up();
        self.queue.push_back(Expected::Info);
    }

    fn probe_published(&mut self, bus: &mut RemoteBus) {
        bus.probe_published();
        if let Probe::Waiting { acked, .. } = &mut self.probe {
            *acked = true;
        }
    }

    fn handle_timeout(&mut self, bus: &mut RemoteBus, now: Instant) {
        bus.handle_timeout(now);
        let ended: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, w)| matches!(w, Want::Lingering(at) if *at <= now))
            .map(|(t, _)| t.clone())
            .collect();
        for topic in ended {
            // The interest is over: what comes after it starts afresh.
            self.topics.remove(&topic);
            self.last.retain(|(_, t), _| *t != topic);
            self.delivered.retain(|(_, t, _)| *t != topic);
        }
        match self.probe {
            Probe::Quiet(heard) if now >= heard + self.settings.probe_interval => {
                self.queue.push_back(Expected::Probe);
                self.probe = Probe::Waiting {
                    sent: now,
                    acked: false,
                };
            }
            Probe::Waiting { sent, acked } if now >= sent + self.settings.probe_timeout => {
                self.queue
                    .push_back(Expected::Reconnect { commands: !acked });
                self.probe = Probe::Down;
            }
            _ => {}
        }
        assert!(
            bus.poll_timeout().is_none_or(|t| t > now) || bus.has_work(),
            "a reactor would spin: poll_timeout {:?} <= now, no work",
            bus.poll_timeout()
        );
    }

    fn info_made(&mut self, bus: &mut RemoteBus, id: &str, present: bool) {
        let line = match present {
            true => format!("run_id:{id}\r\n"),
            false => String::new(),
        };
        let text = format!("# Server\r\nredis_version:7.2.4\r\n{line}tcp_port:6379\r\n");
        let got = bus.info(text.as_bytes());
        let id = id.trim();
        let expected = match present && !id.is_empty() {
            false => RunId::Missing,
            true => match self.run_id.replace(id.to_owned()) {
                None => RunId::First(id.to_owned()),
                Some(old) if old == id => RunId::Same,
                Some(old) => RunId::Changed {
                    old,
                    new: id.to_owned(),
                },
            },
        };
        assert_eq!(got, expected, "{text:?}");
    }

    fn info_raw(&mut self, bus: &mut RemoteBus, text: &[u8]) {
        let fair = |id: &str| !id.is_empty() && id.trim() == id;
        match bus.info(text) {
            RunId::Missing => {}
            RunId::First(id) => {
                assert!(self.run_id.is_none() && fair(&id), "{id:?}");
                self.run_id = Some(id);
            }
            RunId::Same => assert!(self.run_id.is_some()),
            RunId::Changed { old, new } => {
                assert_eq!(Some(&old), self.run_id.as_ref());
                assert!(old != new && fair(&new), "{new:?}");
                self.run_id = Some(new);
            }
        }
    }
}
