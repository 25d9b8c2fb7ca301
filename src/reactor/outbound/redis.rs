//! One Redis server as the reactor sees it: a connection for pipelined
//! commands and one for pub/sub (each a `clients::redis::RedisConn`,
//! dialled when first needed and redialled with capped, jittered back-off),
//! the tickets waiting for replies, and which apps subscribe to what.

use super::{Done, DoneReply, Link, LinkState};
use crate::app::Ticket;
use crate::clients::redis::{Backoff, Event, Mode, RedisConn, RedisUrl};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Back-off before redialling: from 100 ms, doubling, capped at 5 s.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// One of the two connections to a Redis server.
pub(crate) struct RedisLink {
    pub conn: RedisConn,
    pub state: LinkState,
    backoff: Backoff,
    /// Failed attempts since it was last up.
    failures: u32,
}

impl RedisLink {
    fn new(url: &RedisUrl, mode: Mode) -> Self {
        RedisLink {
            conn: RedisConn::new(url, mode),
            state: LinkState::Idle,
            backoff: Backoff::new(BACKOFF_BASE, BACKOFF_CAP),
            failures: 0,
        }
    }

    /// Wants a connection: dial now if none was ever made.
    pub fn wake(&mut self, now: Instant) {
        if self.state == LinkState::Idle {
            self.state = LinkState::Down { retry_at: now };
        }
    }
}

/// Subscribers of one channel or pattern.
struct Subscribers {
    tickets: Vec<Ticket>,
}

pub(crate) struct RedisService {
    pub url: RedisUrl,
    pub addr: SocketAddr,
    pub cmd: RedisLink,
    pub sub: RedisLink,
    /// The server's sockets for them, while dialled.
    pub cmd_sock: Option<usize>,
    pub sub_sock: Option<usize>,
    /// Tickets waiting for a reply, by tag (the ticket's id).
    waiting: HashMap<u64, Ticket>,
    /// Subscribers by (name, is pattern).
    subs: HashMap<(Vec<u8>, bool), Subscribers>,
    /// What each subscription ticket subscribed to.
    by_ticket: HashMap<u64, (Vec<u8>, bool)>,
    /// Where messages on channels no ticket subscribed to go (the Redis
    /// bus subscribes through the connection directly).
    pub catch_all: Option<Ticket>,
}

impl RedisService {
    pub fn new(url: RedisUrl, addr: SocketAddr) -> Self {
        RedisService {
            cmd: RedisLink::new(&url, Mode::Commands),
            sub: RedisLink::new(&url, Mode::PubSub),
            url,
            addr,
            cmd_sock: None,
            sub_sock: None,
            waiting: HashMap::new(),
            subs: HashMap::new(),
            by_ticket: HashMap::new(),
            catch_all: None,
        }
    }

    /// Dials both connections now if they were never needed yet.
    pub fn wake(&mut self, now: Instant) {
        self.cmd.wake(now);
        self.sub.wake(now);
    }

    pub fn link(&mut self, which: Link) -> &mut RedisLink {
        match which {
            Link::RedisCommands(_) => &mut self.cmd,
            _ => &mut self.sub,
        }
    }

    /// Queues a command; its reply goes to `ticket`.
    pub fn command(&mut self, args: &[&[u8]], ticket: Ticket, now: Instant) {
        self.waiting.insert(ticket.id(), ticket);
        self.cmd.conn.command(args, ticket.id());
        self.cmd.wake(now);
    }

    /// Subscribes `ticket` to a channel or pattern; the first subscriber
    /// sends the SUBSCRIBE, later ones share it.
    pub fn subscribe(&mut self, name: &[u8], pattern: bool, ticket: Ticket, now: Instant) {
        let key = (name.to_vec(), pattern);
        let subs = self.subs.entry(key.clone()).or_insert(Subscribers {
            tickets: Vec::new(),
        });
        let first = subs.tickets.is_empty();
        subs.tickets.push(ticket);
        self.by_ticket.insert(ticket.id(), key);
        if first {
            // PubSub mode: WrongMode cannot happen on this link.
            let _ = if pattern {
                self.sub.conn.psubscribe(name)
            } else {
                self.sub.conn.subscribe(name)
            };
        }
        self.sub.wake(now);
    }

    /// Ends one subscription; the last subscriber's end unsubscribes.
    pub fn unsubscribe(&mut self, ticket: Ticket) -> bool {
        let Some(key) = self.by_ticket.remove(&ticket.id()) else {
            return false;
        };
        let Some(subs) = self.subs.get_mut(&key) else {
            return false;
        };
        subs.tickets.retain(|t| *t != ticket);
        if subs.tickets.is_empty() {
            self.subs.remove(&key);
            let _ = if key.1 {
                self.sub.conn.punsubscribe(&key.0)
            } else {
                self.sub.conn.unsubscribe(&key.0)
            };
        }
        true
    }

    /// Turns the connection's events into completions.
    pub fn drain_events(&mut self, which: Link, done: &mut Vec<Done>) -> Option<String> {
        let mut unusable = None;
        while let Some(event) = self.link(which).conn.poll_event() {
            match event {
                Event::Reply { tag, reply } => {
                    if let Some(ticket) = self.waiting.remove(&tag) {
                        if reply.is_ok() {
                            let link = self.link(which);
                            link.backoff.reset();
                        }
                        done.push(Done::new(ticket, DoneReply::Redis(reply)));
                    }
                }
                Event::Message { channel, payload } => {
                    self.fan_out(&channel, None, &payload, done);
                }
                Event::PMessage {
                    pattern,
                    channel,
                    payload,
                } => self.fan_out(&channel, Some(&pattern), &payload, done),
                Event::Subscribed { name, .. } => {
                    self.link(which).backoff.reset();
                    if let Some(ticket) = self.catch_all {
                        done.push(Done::new(ticket, DoneReply::Subscribed(name)));
                    }
                }
                Event::Unsubscribed { .. } => {
                    self.link(which).backoff.reset();
                }
                Event::ServerError(text) => {
                    log::warn!("redis {}: {text}", self.url);
                }
                Event::Unusable(why) => unusable = Some(why.to_string()),
            }
        }
        unusable
    }

    fn fan_out(
        &self,
        channel: &[u8],
        pattern: Option<&[u8]>,
        payload: &[u8],
        done: &mut Vec<Done>,
    ) {
        let key = match pattern {
            Some(p) => (p.to_vec(), true),
            None => (channel.to_vec(), false),
        };
        let catch_all = self.catch_all.filter(|_| pattern.is_none());
        let tickets = match (self.subs.get(&key), &catch_all) {
            (Some(subs), _) => subs.tickets.as_slice(),
            (None, Some(t)) => std::slice::from_ref(t),
            (None, None) => return,
        };
        for &ticket in tickets {
            done.push(Done::new(
                ticket,
                DoneReply::Message {
                    channel: channel.to_vec(),
                    pattern: pattern.map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                },
            ));
        }
    }

    /// The TCP connection of `which` is up.
    pub fn connected(&mut self, which: Link, now: Instant) {
        let url = self.url.to_string();
        let link = self.link(which);
        link.state = LinkState::Up;
        match link.conn.connected(now) {
            Some(down) => log::warn!(
                "redis {url} ({}): connected again after {:.1} s down ({} failed attempts)",
                which.name(),
                down.as_secs_f64(),
                link.failures
            ),
            None => log::info!("redis {url} ({}): connected", which.name()),
        }
        link.failures = 0;
    }

    /// The TCP connection of `which` is gone (or never came): fail what was
    /// in flight and schedule a redial.
    pub fn disconnected(
        &mut self,
        which: Link,
        why: &str,
        now: Instant,
        random: u64,
        done: &mut Vec<Done>,
    ) {
        let url = self.url.to_string();
        let link = self.link(which);
        let was_up = link.state == LinkState::Up;
        link.conn.disconnected(now);
        let delay = link.backoff.next_delay(random);
        link.state = LinkState::Down {
            retry_at: now + delay,
        };
        link.failures += 1;
        if was_up {
            log::warn!(
                "redis {url} ({}): connection lost: {why}; retrying in {delay:?}",
                which.name()
            );
        } else if link.failures == 1 || link.failures.is_power_of_two() {
            log::warn!(
                "redis {url} ({}): cannot connect: {why} ({} attempts); retrying in {delay:?}",
                which.name(),
                link.failures
            );
        }
        self.drain_events(which, done);
    }
}
