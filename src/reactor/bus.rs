//! The in-process topic bus: which apps subscribed to which topics, and
//! the receipts of publishes whose publisher wants to know how many
//! connections they reached. Sans-IO: publishing queues completions for
//! the subscribers, delivered in the reactor's settle loop.

use crate::app::Ticket;
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct Bus {
    /// Subscriptions of each topic, in subscription order.
    topics: HashMap<String, Vec<Ticket>>,
    /// The topic of each subscription.
    tickets: HashMap<Ticket, String>,
    /// Connections reached so far by each publish awaiting its receipt.
    delivered: HashMap<Ticket, usize>,
}

impl Bus {
    pub fn subscribe(&mut self, topic: &str, ticket: Ticket) {
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .push(ticket);
        self.tickets.insert(ticket, topic.to_owned());
    }

    pub fn unsubscribe(&mut self, ticket: Ticket) -> bool {
        let Some(topic) = self.tickets.remove(&ticket) else {
            return false;
        };
        if let Some(subs) = self.topics.get_mut(&topic) {
            subs.retain(|t| *t != ticket);
            if subs.is_empty() {
                self.topics.remove(&topic);
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

    #[test]
    fn subscriptions_and_receipts() {
        let mut bus = Bus::default();
        let (a, b) = (Ticket::new(1, Route::ROOT), Ticket::new(2, Route::ROOT));
        bus.subscribe("t", a);
        bus.subscribe("t", b);
        assert_eq!(bus.subscribers("t"), &[a, b]);
        assert!(bus.unsubscribe(a));
        assert!(!bus.unsubscribe(a));
        assert!(!bus.is_subscribed(a));
        assert_eq!(bus.subscribers("t"), &[b]);
        assert!(bus.unsubscribe(b));
        assert_eq!(bus.topic_count(), 0);
        let r = Ticket::new(3, Route::ROOT);
        bus.expect_receipt(r);
        bus.add_delivered(r, 2);
        bus.add_delivered(r, 3);
        assert_eq!(bus.take_receipt(r), 5);
        assert_eq!(bus.take_receipt(r), 0);
    }
}
