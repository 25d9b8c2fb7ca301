//! The Redis bus between the reactor and Redis: the bus's channel changes
//! and commands go to its Redis links once per turn, and what comes back
//! (replies, messages of other processes) is counted, logged and
//! delivered to this process's subscribers. The decisions are
//! [`RemoteBus`]'s; this file only moves them.

use super::Server;
use super::bus::{Pending, Remote};
use super::outbound::{Done, DoneReply, Link};
use crate::app::Route;
use crate::bus::Origin;
use crate::bus::remote::durable::{self, Entry, HISTORY_SCRIPT, MAX_HISTORY, PUBLISH_SCRIPT};
use crate::bus::remote::{Command, Dropped, Output, Purpose, Received, RemoteBus, RunId, Settings};
use crate::clients::redis::RedisUrl;
use crate::clients::redis::ReplyError;
use crate::clients::resp::Reply;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

/// Times a publish is sent again after its connection failed.
const MAX_TRIES: u8 = 3;

impl Server {
    /// Makes topics span processes: every bus publish (WAMP publishes,
    /// pushes from every ingress) also goes to the Redis server at `url`,
    /// and this process hears the topics its subscribers want from every
    /// other process using the same Redis and prefix. See
    /// `docs/scaling.md` for the guarantees. Without it, the bus is this
    /// process alone.
    pub fn use_redis_bus(&mut self, url: &str, settings: Settings) -> io::Result<()> {
        if self.core.bus.remote.is_some() {
            return Err(io::Error::other("the Redis bus is set already"));
        }
        let url = RedisUrl::parse(url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
        let origin = Origin(id);
        log::info!(
            "bus: topics span processes through {url}, channels {}topic:*, origin {origin}",
            settings.prefix
        );
        let service = self.add_redis_url(url)?.0 as usize;
        let catch_all = self.core.outbound.ticket(Route::BUS);
        let redis = &mut self.core.outbound.redis[service];
        redis.catch_all = Some(catch_all);
        redis.wake(self.core.now);
        self.core.bus.remote = Some(Remote {
            bus: RemoteBus::new(settings, origin),
            service,
            pending: HashMap::new(),
            publish_failures: 0,
            malformed: 0,
            apps: HashMap::new(),
        });
        Ok(())
    }

    /// Runs the bus's timers and hands its channel changes and commands to
    /// its Redis links (written by the same turn's flush).
    pub(super) fn drive_bus(&mut self) {
        let now = self.core.now;
        let Some(remote) = &mut self.core.bus.remote else {
            return;
        };
        remote.bus.handle_timeout(now);
        let i = remote.service;
        let (on, off) = remote.bus.take_interest();
        if !on.is_empty() || !off.is_empty() {
            let sub = &mut self.core.outbound.redis[i].sub;
            // The pub/sub link: WrongMode cannot happen.
            let _ = sub.conn.want_channels(on.iter().map(Vec::as_slice), true);
            let _ = sub.conn.want_channels(off.iter().map(Vec::as_slice), false);
            sub.wake(now);
        }
        let mut reconnect = None;
        while let Some((command, tries)) = remote.bus.poll_command_tried() {
            let ticket = self.core.outbound.ticket(Route::BUS);
            let redis = &mut self.core.outbound.redis[i];
            let pending = match &command {
                Command::Publish {
                    channel,
                    payload,
                    purpose,
                } => {
                    redis.command(&[b"PUBLISH", channel, payload], ticket, now);
                    Pending::Publish {
                        purpose: *purpose,
                        command,
                        tries,
                    }
                }
                Command::PublishDurable {
                    stream,
                    channel,
                    maxlen,
                    epoch,
                    payload,
                } => {
                    let maxlen = maxlen.to_string();
                    let args: [&[u8]; 8] = [
                        b"EVAL",
                        PUBLISH_SCRIPT.as_bytes(),
                        b"2",
                        stream,
                        channel,
                        maxlen.as_bytes(),
                        payload,
                        epoch.as_bytes(),
                    ];
                    redis.command(&args, ticket, now);
                    Pending::Publish {
                        purpose: Purpose::Event,
                        command,
                        tries,
                    }
                }
                Command::Repair {
                    topic,
                    stream,
                    after,
                    count,
                } => {
                    let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
                    let count = count.to_string();
                    let args: [&[u8]; 6] = [
                        b"XRANGE",
                        stream,
                        start.as_bytes(),
                        b"+",
                        b"COUNT",
                        count.as_bytes(),
                    ];
                    redis.command(&args, ticket, now);
                    Pending::Repair(topic.clone())
                }
                Command::Locate { topic, stream } => {
                    let args: [&[u8]; 6] = [b"XREVRANGE", stream, b"+", b"-", b"COUNT", b"1"];
                    redis.command(&args, ticket, now);
                    Pending::Locate(topic.clone())
                }
                Command::History {
                    topic,
                    stream,
                    after,
                    ticket: app,
                } => {
                    let Some(app) = remote.apps.remove(app) else {
                        continue;
                    };
                    let start = after
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |(_, id)| format!("({id}"));
                    let max = MAX_HISTORY.to_string();
                    let args: [&[u8]; 6] = [
                        b"EVAL",
                        HISTORY_SCRIPT.as_bytes(),
                        b"1",
                        stream,
                        start.as_bytes(),
                        max.as_bytes(),
                    ];
                    redis.command(&args, ticket, now);
                    Pending::History(app, topic.clone(), after.clone())
                }
                Command::Info => {
                    redis.command(&[b"INFO", b"server"], ticket, now);
                    Pending::Info
                }
                Command::Reconnect { commands } => {
                    reconnect = Some(*commands);
                    continue;
                }
            };
            remote.pending.insert(ticket.id(), pending);
        }
        if let Some(commands) = reconnect {
            self.core.metrics.count("bus_probes", "timeout");
            let timeout = remote.bus.settings().probe_timeout;
            let which = if commands {
                "both connections (not even the probe's PUBLISH was answered)"
            } else {
                "the pub/sub connection"
            };
            log::warn!(
                "bus: nothing came from Redis for {timeout:?} after a probe; replacing {which}"
            );
            self.redis_failed(Link::RedisPubSub(i), "liveness probe unanswered");
            if commands {
                self.redis_failed(Link::RedisCommands(i), "liveness probe unanswered");
            }
        }
    }

    /// Whether the bus has work for the next flush.
    pub(super) fn bus_busy(&self) -> bool {
        self.core
            .bus
            .remote
            .as_ref()
            .is_some_and(|r| r.bus.has_work())
    }

    /// When the bus's timers next need a turn.
    pub(super) fn bus_deadline(&self) -> Option<std::time::Instant> {
        self.core.bus.remote.as_ref()?.bus.poll_timeout()
    }

    fn bus_remote(&mut self, link: Link) -> Option<&mut Remote> {
        let (Link::RedisCommands(i) | Link::RedisPubSub(i)) = link else {
            return None;
        };
        self.core.bus.remote.as_mut().filter(|r| r.service == i)
    }

    /// A Redis link came up: the bus's subscriber is live again, or its
    /// commands link asks who the server is.
    pub(super) fn bus_link_up(&mut self, link: Link) {
        let now = self.core.now;
        let Some(remote) = self.bus_remote(link) else {
            return;
        };
        let Link::RedisPubSub(_) = link else {
            return remote.bus.commands_up();
        };
        if !remote.bus.subscriber_up(now) {
            return;
        }
        // Back after an outage: whatever was published meanwhile may be
        // lost, and a loss at the tail shows in no later number.
        let topics: Vec<String> = remote.bus.wanted().map(str::to_owned).collect();
        self.core.metrics.count("bus_outages", "announced");
        for topic in topics {
            self.core.bus_gap_notice(&topic, None);
        }
    }

    /// A Redis link went down.
    pub(super) fn bus_link_down(&mut self, link: Link) {
        if let (Link::RedisPubSub(_), Some(remote)) = (link, self.bus_remote(link)) {
            remote.bus.subscriber_down();
        }
    }

    /// A reply or message for the bus itself.
    pub(super) fn bus_reply(&mut self, done: Done) {
        let now = self.core.now;
        let core = &mut self.core;
        let Some(remote) = &mut core.bus.remote else {
            return;
        };
        let metrics = &mut core.metrics;
        match done.reply {
            DoneReply::Redis(reply) => match remote.pending.remove(&done.ticket.id()) {
                Some(Pending::Publish {
                    purpose,
                    command,
                    tries,
                }) => {
                    let failed = match reply {
                        Ok(Reply::Integer(_) | Reply::Bulk(Some(_))) => None,
                        Ok(Reply::Error(e)) => Some(e),
                        Ok(other) => Some(format!("unexpected reply {other:?}")),
                        // Lost with its connection: it may or may not have
                        // run, and a repeat is dropped by its number, so
                        // send it again (now, before any later publish), a
                        // few times: one that always breaks the connection
                        // must not loop.
                        Err(ReplyError::Disconnected | ReplyError::Unusable)
                            if purpose == Purpose::Event && tries < MAX_TRIES =>
                        {
                            metrics.count("bus_publishes", "retried");
                            return remote.bus.retry(command, tries + 1);
                        }
                        Err(e) => Some(e.to_string()),
                    };
                    match (purpose, failed) {
                        (Purpose::Event, None) => metrics.count("bus_publishes", "ok"),
                        (Purpose::Event, Some(why)) => {
                            metrics.count("bus_publishes", "failed");
                            remote.publish_failures += 1;
                            let n = remote.publish_failures;
                            if n.is_power_of_two() {
                                log::warn!(
                                    "bus: a publish did not reach Redis ({why}); \
                                     other processes miss it ({n} so far, delivered here)"
                                );
                            }
                        }
                        (Purpose::Probe, None) => remote.bus.probe_published(),
                        (Purpose::Probe, Some(why)) => {
                            log::debug!("bus: probe not published: {why}");
                        }
                    }
                }
                Some(Pending::Repair(topic)) => {
                    let entries = match reply {
                        Ok(reply) => Entry::from_reply(reply),
                        Err(_) => None,
                    };
                    match &entries {
                        Some(e) => {
                            metrics.count("bus_repairs", "ok");
                            log::debug!("bus: {} entries of {topic:?} read back", e.len());
                        }
                        None => {
                            metrics.count("bus_repairs", "failed");
                            log::warn!("bus: cannot read the stream of {topic:?} to repair it");
                        }
                    }
                    remote.bus.repaired(&topic, entries);
                }
                Some(Pending::Locate(topic)) => {
                    let last = reply.ok().and_then(Entry::from_reply);
                    if last.is_none() {
                        log::warn!("bus: cannot read the stream of {topic:?}");
                    }
                    remote.bus.located(&topic, last);
                }
                Some(Pending::History(app, topic, after)) => {
                    let max = remote.bus.settings().max_payload;
                    let after = after.as_ref().map(|(e, id)| (e.as_str(), *id));
                    let answer = match reply {
                        Ok(reply) => durable::history(&topic, after, reply, max)
                            .ok_or_else(|| "not a stream".to_owned()),
                        Err(e) => Err(e.to_string()),
                    };
                    metrics.count("bus_history", if answer.is_ok() { "ok" } else { "failed" });
                    core.outbound
                        .done
                        .push(Done::new(app, DoneReply::History(answer)));
                }
                Some(Pending::Info) => {
                    let Ok(Reply::Bulk(Some(text))) = reply else {
                        return;
                    };
                    match remote.bus.info(&text) {
                        RunId::First(id) => log::info!("bus: Redis run_id {id}"),
                        RunId::Same => {}
                        RunId::Changed { old, new } => {
                            metrics.count("bus_redis", "restarted");
                            log::warn!(
                                "bus: Redis restarted (run_id {old} -> {new}); what was \
                                 published meanwhile is lost, gaps show where"
                            );
                        }
                        RunId::Missing => log::warn!("bus: no run_id in INFO server"),
                    }
                }
                None => {}
            },
            DoneReply::Subscribed(channel) => remote.bus.subscribed(&channel),
            DoneReply::Message {
                channel, payload, ..
            } => match remote.bus.receive(&channel, &payload, now) {
                Received::Deliver {
                    event,
                    origin,
                    missed,
                } => core.bus_deliver(event, origin, missed),
                Received::Probe => metrics.count("bus_probes", "ok"),
                Received::Durable => {}
                Received::Dropped(why) => core.bus_dropped(why, &channel),
            },
            _ => {}
        }
        core.bus_outputs();
    }
}

impl super::core::Core {
    /// What durable topics' messages and repairs came to.
    fn bus_outputs(&mut self) {
        while let Some(output) = self.bus.remote.as_mut().and_then(|r| r.bus.poll_output()) {
            match output {
                Output::Deliver {
                    event,
                    origin,
                    missed,
                } => self.bus_deliver(event, origin, missed),
                Output::Lost { topic } => {
                    self.metrics.count("bus_lost", "announced");
                    log::warn!("bus: events on durable topic {topic:?} may be lost for good");
                    self.bus_gap_notice(&topic, None);
                }
                Output::Dropped(why) => self.bus_dropped(why, b"(durable)"),
            }
        }
    }

    /// An event of another process, for this process's subscribers; the
    /// `missed` before it are counted, logged and announced.
    fn bus_deliver(&mut self, event: crate::bus::Event, origin: Origin, missed: u64) {
        self.metrics.count("bus_messages", "delivered");
        if missed > 0 {
            self.metrics.bus_gaps += 1;
            self.metrics.bus_missed += missed;
            log::warn!(
                "bus: {missed} events of {origin} on {:?} were lost",
                event.topic
            );
            self.bus_gap_notice(&event.topic, Some(missed));
        }
        self.deliver_local(Arc::new(event), None, None);
    }

    /// Tells the subscribers of `topic` that events were lost.
    fn bus_gap_notice(&mut self, topic: &str, missed: Option<u64>) {
        let name: Arc<str> = topic.into();
        for &sub in self.bus.subscribers(topic) {
            let reply = DoneReply::Gap {
                topic: name.clone(),
                missed,
            };
            self.outbound.done.push(Done::new(sub, reply));
        }
    }

    /// Counts a message the bus dropped, and logs the malformed ones
    /// (the 1st, 2nd, 4th … time).
    fn bus_dropped(&mut self, why: Dropped, channel: &[u8]) {
        self.metrics.count("bus_messages", why.outcome());
        let Some(remote) = &mut self.bus.remote else {
            return;
        };
        if let Dropped::Malformed(_) | Dropped::WrongChannel | Dropped::NotDurable = why {
            remote.malformed += 1;
            if remote.malformed.is_power_of_two() {
                log::warn!(
                    "bus: dropped a message on {}: {why:?} ({} so far)",
                    String::from_utf8_lossy(channel),
                    remote.malformed
                );
            }
        }
    }
}
