//! Sequence numbers on topic channels: the publisher's [`Sequencer`]
//! numbers each origin's publishes per topic, the receiver's
//! [`SeqTracker`] sees from them what was lost or repeated.
//!
//! Why per (origin, topic), not per origin: each topic is its own Redis
//! channel and a process subscribes only to the topics its clients want.
//! With one counter per origin, a process hearing topic `a` would see
//! 1, 5, 9 and could not tell three lost messages from three publishes on
//! topics it does not hear. With a counter per (origin, topic) every
//! number it skips on a channel it hears is a message it should have had.
//!
//! What the numbers guarantee (`docs/scaling.md`, "Sequences"): a loss
//! followed by a later message of the same origin on the same topic is
//! seen, and counted exactly; a repeat or an older message is seen and
//! dropped (at-most-once delivery). A loss at the tail (nothing more from
//! that origin on that topic) is not seen from numbers alone, nor one
//! across a [`SeqTracker::reset`] or an eviction. Publishers must send an
//! origin's messages of a topic in order over one connection: Redis keeps
//! that order per channel, and the tracker drops anything older than what
//! it has seen.
//!
//! No clocks: nothing here needs time.

use super::Origin;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// How many (origin, topic) pairs a [`SeqTracker::default`] tracks, and
/// how many topics a [`Sequencer`] numbers, before making room.
pub const DEFAULT_CAP: usize = 65_536;

/// What one message's sequence number says, against what was seen before
/// from its origin on its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Nothing is known of this pair (never seen, reset, forgotten or
    /// evicted): deliver; what came before is not ours to judge.
    First,
    /// The next one: deliver.
    InOrder,
    /// At or below the highest seen: a repeat or a late one. Drop it.
    Duplicate,
    /// Above the next expected: deliver, and report that `missed`
    /// messages (at least 1) of this origin on this topic never came.
    Gap {
        /// How many numbers were skipped.
        missed: u64,
    },
}

/// The receiver's side: per (origin, topic), the highest sequence number
/// seen. Memory is bounded by `cap` pairs: a new pair beyond it evicts the
/// least recently observed one, which then starts again at
/// [`Seen::First`] (its next gap or duplicate goes unseen; [`evicted`]
/// counts how often). Each pair costs about 100 bytes, plus its topic's
/// bytes once per topic.
///
/// [`evicted`]: SeqTracker::evicted
#[derive(Debug)]
pub struct SeqTracker {
    /// Per topic, per origin: the highest seq seen and its LRU stamp.
    topics: HashMap<Arc<str>, HashMap<Origin, Slot>>,
    /// Every tracked pair by its stamp, oldest first.
    lru: BTreeMap<u64, (Arc<str>, Origin)>,
    /// The next stamp (one per observation: 2^64 of them never run out).
    stamp: u64,
    cap: usize,
    evicted: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    last: u64,
    stamp: u64,
}

impl Default for SeqTracker {
    fn default() -> SeqTracker {
        SeqTracker::new(DEFAULT_CAP)
    }
}

impl SeqTracker {
    /// A tracker of at most `cap` pairs (at least 1).
    pub fn new(cap: usize) -> SeqTracker {
        SeqTracker {
            topics: HashMap::new(),
            lru: BTreeMap::new(),
            stamp: 0,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    /// Judges message `seq` of `origin` on `topic`, and remembers it
    /// unless it is a [`Seen::Duplicate`]. Any `seq` is taken (0 too, though
    /// decoded envelopes never carry it); at `u64::MAX` every later one is a
    /// duplicate (a publisher never gets there: see
    /// [`Sequencer::next`]).
    pub fn observe(&mut self, origin: Origin, topic: &str, seq: u64) -> Seen {
        let stamp = self.stamp;
        self.stamp = self.stamp.wrapping_add(1);
        if let Some(slot) = self
            .topics
            .get_mut(topic)
            .and_then(|origins| origins.get_mut(&origin))
        {
            let old = std::mem::replace(&mut slot.stamp, stamp);
            let seen = match seq.checked_sub(slot.last) {
                None | Some(0) => Seen::Duplicate,
                Some(1) => Seen::InOrder,
                Some(n) => Seen::Gap { missed: n - 1 },
            };
            if seen != Seen::Duplicate {
                slot.last = seq;
            }
            // The pair moves to the young end of the LRU order.
            if let Some(entry) = self.lru.remove(&old) {
                self.lru.insert(stamp, entry);
            }
            return seen;
        }
        self.insert(origin, topic, seq, stamp);
        Seen::First
    }

    fn insert(&mut self, origin: Origin, topic: &str, seq: u64, stamp: u64) {
        if self.lru.len() >= self.cap
            && let Some((_, (name, old))) = self.lru.pop_first()
        {
            self.remove_slot(&name, old);
            self.evicted += 1;
        }
        let name = match self.topics.get_key_value(topic) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(topic),
        };
        self.lru.insert(stamp, (Arc::clone(&name), origin));
        let slot = Slot { last: seq, stamp };
        self.topics.entry(name).or_default().insert(origin, slot);
    }

    /// Drops one pair's slot (not its LRU entry), and its topic once empty.
    fn remove_slot(&mut self, topic: &str, origin: Origin) -> Option<Slot> {
        let origins = self.topics.get_mut(topic)?;
        let slot = origins.remove(&origin);
        if origins.is_empty() {
            self.topics.remove(topic);
        }
        slot
    }

    /// Forgets `topic` for every origin: call it when the process stops
    /// hearing the topic on purpose (it unsubscribes). The messages
    /// published while it did not listen were not meant for it, so the
    /// first one after it subscribes again is [`Seen::First`], not a gap.
    /// (A Redis reconnect is not such a case: see `docs/scaling.md`.)
    pub fn reset(&mut self, topic: &str) {
        if let Some(origins) = self.topics.remove(topic) {
            for slot in origins.values() {
                self.lru.remove(&slot.stamp);
            }
        }
    }

    /// Forgets every topic of `origin` (a process known to be gone).
    pub fn forget_origin(&mut self, origin: Origin) {
        let mut stamps = Vec::new();
        self.topics.retain(|_, origins| {
            if let Some(slot) = origins.remove(&origin) {
                stamps.push(slot.stamp);
            }
            !origins.is_empty()
        });
        for stamp in stamps {
            self.lru.remove(&stamp);
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.topics.clear();
        self.lru.clear();
    }

    /// The highest sequence number seen from `origin` on `topic`, if the
    /// pair is tracked.
    pub fn last_seen(&self, origin: Origin, topic: &str) -> Option<u64> {
        Some(self.topics.get(topic)?.get(&origin)?.last)
    }

    /// How many pairs are tracked (never more than [`SeqTracker::cap`]).
    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// Whether no pair is tracked.
    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    /// How many topics have at least one tracked pair.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// The most pairs it tracks.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// How many pairs were evicted to make room, ever.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// The publisher's side: the next sequence number of each topic for one
/// origin. Memory is bounded by `cap` topics; a counter can never be
/// dropped and restarted under the same origin (receivers would take the
/// restarted numbers for duplicates), so when a new topic would exceed the
/// cap, [`Sequencer::next`] answers `None` and the caller
/// [`rotates`](Sequencer::rotate) to a fresh random origin, which starts
/// every topic at 1 again.
#[derive(Debug)]
pub struct Sequencer {
    origin: Origin,
    next: HashMap<String, u64>,
    cap: usize,
}

impl Sequencer {
    /// Numbers publishes of `origin`, on at most `cap` topics (at least 1).
    pub fn new(origin: Origin, cap: usize) -> Sequencer {
        Sequencer {
            origin,
            next: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The origin whose numbers it hands out.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The sequence number of the next publish on `topic` (1, 2, 3 …), or
    /// `None` if `topic` is new and the cap is reached, or its counter is
    /// at `u64::MAX`: then [`Sequencer::rotate`].
    pub fn next(&mut self, topic: &str) -> Option<u64> {
        if let Some(next) = self.next.get_mut(topic) {
            let seq = *next;
            *next = next.checked_add(1)?;
            return Some(seq);
        }
        if self.next.len() >= self.cap {
            return None;
        }
        self.next.insert(topic.to_owned(), 2);
        Some(1)
    }

    /// Continues as `origin` (a fresh random id, never a past one), with
    /// every topic starting at 1.
    pub fn rotate(&mut self, origin: Origin) {
        self.origin = origin;
        self.next.clear();
    }

    /// How many topics it numbers.
    pub fn len(&self) -> usize {
        self.next.len()
    }

    /// Whether it has numbered nothing since it started or rotated.
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }
}

#[cfg(test)]
mod tests;
