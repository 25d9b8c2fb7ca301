//! The topic bus: which apps subscribed to which topics, and the receipts
//! of publishes whose publisher wants to know how many connections they
//! reached. Publishing queues completions for the local subscribers,
//! delivered in the reactor's settle loop. With the Redis bus
//! ([`crate::Server::use_redis_bus`]) it also drives a
//! [`RemoteBus`]: the first local
//! subscriber of a topic subscribes to its channel, every publish goes to
//! Redis, and what other processes publish arrives here (`bus_link.rs`
//! moves it between Redis and the subscribers).

use crate::app::Ticket;
use crate::bus::remote::{Command, Purpose, RemoteBus};
use std::collections::HashMap;
use std::time::Instant;

#[derive(Default)]
pub(crate) struct Bus {
    /// Subscriptions of each topic, in subscription order.
    topics: HashMap<String, Vec<Ticket>>,
    /// The topic of each subscription.
    tickets: HashMap<Ticket, String>,
    /// Connections reached so far by each publish awaiting its receipt.
    delivered: HashMap<Ticket, usize>,
    /// The Redis side, if topics span processes.
    pub remote: Option<Remote>,
}

/// The Redis bus of this process.
pub(crate) struct Remote {
    pub bus: RemoteBus,
    /// Its Redis server (an index into `Outbound::redis`).
    pub service: usize,
    /// What each command in flight was for, by ticket id.
    pub pending: HashMap<u64, Pending>,
    /// Publishes Redis did not take, for rate-limited logs.
    pub publish_failures: u64,
    /// Messages dropped as malformed, for rate-limited logs.
    pub malformed: u64,
    /// Apps' tickets waiting for a history read, by id.
    pub apps: HashMap<u64, Ticket>,
}

/// A command of the bus waiting for its reply.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A publish, kept to be sent again if its connection fails.
    Publish {
        purpose: Purpose,
        command: Command,
        /// Times it was sent before.
        tries: u8,
    },
    /// A durable topic's repair.
    Repair(String),
    /// Where a durable topic's stream stands.
    Locate(String),
    /// A history read for an app: its ticket, the topic, the position.
    History(
        Ticket,
        String,
        Option<(String, crate::bus::remote::durable::StreamId)>,
    ),
    Info,
}

impl Bus {
    pub fn subscribe(&mut self, topic: &str, ticket: Ticket, now: Instant) {
        let subs = self.topics.entry(topic.to_owned()).or_default();
        if subs.is_empty()
            && let Some(r) = &mut self.remote
        {
            r.bus.interest(topic, true, now);
        }
        subs.push(ticket);
        self.tickets.insert(ticket, topic.to_owned());
    }

    pub fn unsubscribe(&mut self, ticket: Ticket, now: Instant) -> bool {
        let Some(topic) = self.tickets.remove(&ticket) else {
            return false;
        };
        if let Some(subs) = self.topics.get_mut(&topic) {
            subs.retain(|t| *t != ticket);
            if subs.is_empty() {
                self.topics.remove(&topic);
                if let Some(r) = &mut self.remote {
                    r.bus.interest(&topic, false, now);
                }
            }
        }
        true
    }

    /// The subscriptions of `topic`.
    pub fn subscribers(&self, topic: &str) -> &[Ticket] {
        self.topics.get(topic).map_or(&[], Vec::as_slice)
    }

    /// Whether `ticket` is still subscribed (it may have unsubscribed
    /// after an event for it was queued).
    pub fn is_subscribed(&self, ticket: Ticket) -> bool {
        self.tickets.contains_key(&ticket)
    }

    pub fn expect_receipt(&mut self, receipt: Ticket) {
        self.delivered.insert(receipt, 0);
    }

    pub fn add_delivered(&mut self, receipt: Ticket, n: usize) {
        if let Some(count) = self.delivered.get_mut(&receipt) {
            *count += n;
        }
    }

    pub fn take_receipt(&mut self, receipt: Ticket) -> usize {
        self.delivered.remove(&receipt).unwrap_or(0)
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Route;
    use crate::bus::Origin;
    use crate::bus::remote::Settings;

    #[test]
    fn subscriptions_and_receipts() {
        let now = Instant::now();
        let mut bus = Bus::default();
        let (a, b) = (Ticket::new(1, Route::ROOT), Ticket::new(2, Route::ROOT));
        bus.subscribe("t", a, now);
        bus.subscribe("t", b, now);
        assert_eq!(bus.subscribers("t"), &[a, b]);
        assert!(bus.unsubscribe(a, now));
        assert!(!bus.unsubscribe(a, now));
        assert!(!bus.is_subscribed(a));
        assert_eq!(bus.subscribers("t"), &[b]);
        assert!(bus.unsubscribe(b, now));
        assert_eq!(bus.topic_count(), 0);
        let r = Ticket::new(3, Route::ROOT);
        bus.expect_receipt(r);
        bus.add_delivered(r, 2);
        bus.add_delivered(r, 3);
        assert_eq!(bus.take_receipt(r), 5);
        assert_eq!(bus.take_receipt(r), 0);
    }

    #[test]
    fn the_first_and_last_local_subscribers_move_the_channel() {
        let now = Instant::now();
        let mut bus = Bus {
            remote: Some(Remote {
                bus: RemoteBus::new(Settings::default(), Origin([1; 16])),
                service: 0,
                pending: HashMap::new(),
                publish_failures: 0,
                malformed: 0,
                apps: HashMap::new(),
            }),
            ..Bus::default()
        };
        let remote = |bus: &mut Bus| bus.remote.as_mut().unwrap().bus.take_interest();
        remote(&mut bus); // the probe channel
        let (a, b) = (Ticket::new(1, Route::ROOT), Ticket::new(2, Route::ROOT));
        bus.subscribe("t", a, now);
        bus.subscribe("t", b, now);
        assert_eq!(
            remote(&mut bus),
            (vec![b"sprocket:topic:t".to_vec()], vec![])
        );
        bus.unsubscribe(a, now);
        bus.unsubscribe(b, now);
        let r = bus.remote.as_mut().unwrap();
        r.bus
            .handle_timeout(now + std::time::Duration::from_secs(1));
        assert_eq!(
            remote(&mut bus),
            (vec![], vec![b"sprocket:topic:t".to_vec()])
        );
    }
}
