//! What apps' contexts reach: the reactor's `Sink` (sends, broadcasts
//! framed and compressed once, closes, timers, decisions made later,
//! outbound requests, inboxes), over the sans-IO `Core`.

use super::core::{Core, Op, ensure_out};
use super::outbound::{Done, DoneReply};
use crate::app::{ConnId, Message, Page, RedisId, Reject, Route, Sink, Ticket, TimerId, ZmqId};
use crate::bus::Event;
use crate::clients::http;
use crate::session::Session;
use crate::ws::{OpCode, close, frame};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Core {
    /// Queues one message to an open connection, compressed when
    /// negotiated and worth it. Whether the peer keeps up is judged after
    /// the turn's write attempt (see the server's flush), not here: a
    /// burst the kernel takes at once is not a slow consumer.
    fn send_one(&mut self, key: usize, msg: &Message<'_>) -> bool {
        let conn = &mut self.conns[key];
        if !conn.ws_open() {
            return false;
        }
        ensure_out(&mut conn.out, &mut self.shared.buffers);
        let sent = conn.ws.send(
            msg.is_text(),
            msg.as_bytes(),
            &mut self.shared,
            &mut conn.out,
        );
        self.mark_dirty(key);
        sent
    }

    /// Appends a frame encoded for many to an open connection; its flush
    /// may wait (`held`) under the fan-out flush delay.
    fn send_encoded(&mut self, key: usize, frame: &[u8], compressed: bool, held: bool) -> bool {
        let conn = &mut self.conns[key];
        if !conn.ws_open() {
            return false;
        }
        ensure_out(&mut conn.out, &mut self.shared.buffers);
        let sent = conn.ws.send_encoded(frame, compressed, &mut conn.out);
        if held {
            self.mark_held(key);
        } else {
            self.mark_dirty(key);
        }
        sent
    }

    /// Lets a huge message's compression space go.
    fn trim_deflate_buf(&mut self) {
        if self.deflate_buf.len() > 1 << 20 {
            self.deflate_buf = Vec::new();
        }
    }

    /// The frame of a broadcast for connections without server context
    /// takeover and a `bits` window: compressed once, then reused.
    fn packed_frame(&mut self, bits: u8, msg: &Message<'_>) -> usize {
        if let Some(i) = self.packed.iter().position(|(b, _)| *b == bits) {
            return i;
        }
        let Some(n) = self
            .shared
            .deflate
            .compress(bits, msg.as_bytes(), &mut self.deflate_buf)
        else {
            self.packed.push((bits, None));
            return self.packed.len() - 1;
        };
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let h = frame::encode_header(&mut hdr, true, opcode(msg), n);
        hdr[0] |= frame::RSV1;
        let mut encoded = Vec::with_capacity(h + n);
        encoded.extend_from_slice(&hdr[..h]);
        encoded.extend_from_slice(&self.deflate_buf[..n]);
        self.packed.push((bits, Some(encoded)));
        self.packed.len() - 1
    }
}

/// Recipients from which a broadcast's flush may wait.
const FANOUT_MIN: usize = 32;

fn opcode(msg: &Message<'_>) -> OpCode {
    if msg.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    }
}

impl Sink for Core {
    fn send(&mut self, conn: ConnId, msg: Message<'_>) -> bool {
        let Some(key) = self.key_of(conn) else {
            return false;
        };
        let sent = self.send_one(key, &msg);
        if sent {
            self.metrics.messages_out += 1;
            self.metrics.message_bytes_out += msg.as_bytes().len() as u64;
        }
        sent
    }

    fn send_many(&mut self, conns: &mut dyn Iterator<Item = ConnId>, msg: Message<'_>) -> usize {
        let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
        let n = frame::encode_header(&mut hdr, true, opcode(&msg), msg.as_bytes().len());
        let mut encoded = std::mem::take(&mut self.scratch);
        encoded.clear();
        encoded.extend_from_slice(&hdr[..n]);
        encoded.extend_from_slice(msg.as_bytes());
        let mut sent = 0;
        let compress = self.shared.deflate.worth_compressing(msg.as_bytes().len());
        let hold = !self.cfg.fanout_flush_delay.is_zero();
        let held_from = self.held.len();
        for id in conns {
            let Some(key) = self.key_of(id) else { continue };
            let shared_bits = match self.conns[key].ws.deflate() {
                Some(s) if compress => {
                    (!s.owns_compressor()).then_some(s.params.server_max_window_bits)
                }
                _ => {
                    sent += usize::from(self.send_encoded(key, &encoded, false, hold));
                    continue;
                }
            };
            if !self.conns[key].ws_open() {
                continue;
            }
            sent += 1;
            match shared_bits {
                // Without context takeover the output depends only on the
                // window: compress once per window size, not per recipient.
                Some(bits) => {
                    let i = self.packed_frame(bits, &msg);
                    match self.packed[i].1.take() {
                        Some(frame) => {
                            self.send_encoded(key, &frame, true, hold);
                            self.packed[i].1 = Some(frame);
                        }
                        None => {
                            self.send_encoded(key, &encoded, false, hold);
                        }
                    }
                }
                // Context takeover: the recipient's own compressor.
                None => {
                    self.send_one(key, &msg);
                }
            }
        }
        // A broadcast to a few is written this turn, like a send.
        if hold && sent < FANOUT_MIN {
            self.release_held(held_from);
        }
        self.packed.clear();
        self.trim_deflate_buf();
        if encoded.capacity() <= 64 * 1024 {
            self.scratch = encoded;
        }
        self.metrics.messages_out += sent as u64;
        self.metrics.message_bytes_out += (sent * msg.as_bytes().len()) as u64;
        sent
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        let Some(key) = self.key_of(conn) else { return };
        let code = if close::is_sendable(code) {
            code
        } else {
            log::warn!(
                "{conn}: application asked to close with unsendable code {code}; sending 1000"
            );
            close::NORMAL
        };
        let now = self.now;
        let c = &mut self.conns[key];
        if c.ws_open() {
            ensure_out(&mut c.out, &mut self.shared.buffers);
            c.ws.close(code, reason, now, &mut c.out);
            self.mark_dirty(key);
        }
    }

    fn is_open(&self, conn: ConnId) -> bool {
        self.key_of(conn).is_some_and(|k| self.conns[k].ws_open())
    }

    fn add_timer(&mut self, delay: Duration, period: Option<Duration>, route: Route) -> TimerId {
        self.timers.add(self.now, delay, period, route)
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer)
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn last_input(&self, conn: ConnId) -> Option<Instant> {
        let c = &self.conns[self.key_of(conn)?];
        if c.ws_open() { c.ws.last_input() } else { None }
    }

    fn is_deciding(&self, conn: ConnId) -> bool {
        self.key_of(conn).is_some_and(|k| {
            matches!(
                self.conns[k].phase,
                super::core::Phase::Deciding(_) | super::core::Phase::HttpWaiting(_)
            )
        })
    }

    fn accept(&mut self, conn: ConnId, protocol: Option<String>) -> bool {
        self.decide(Op::Accept(conn, protocol))
    }

    fn reject(&mut self, conn: ConnId, reject: Reject) -> bool {
        self.decide(Op::Reject(conn, reject))
    }

    fn respond(&mut self, conn: ConnId, page: Page) -> bool {
        self.decide(Op::Respond(conn, page))
    }

    fn http_request(
        &mut self,
        url: &http::Url,
        request: http::Request,
        route: Route,
    ) -> Option<Ticket> {
        let ticket = self.outbound.ticket(route);
        let out = &mut self.outbound;
        out.http
            .request(url.origin(), request, ticket, self.now, &mut out.done);
        self.metrics.http_requests_out += 1;
        Some(ticket)
    }

    fn redis(&mut self, server: RedisId, args: &[&[u8]], route: Route) -> Option<Ticket> {
        let ticket = self.outbound.ticket(route);
        let service = self.outbound.redis.get_mut(server.0 as usize)?;
        service.command(args, ticket, self.now);
        self.metrics.redis_commands += 1;
        Some(ticket)
    }

    fn redis_subscribe(
        &mut self,
        server: RedisId,
        channel: &[u8],
        pattern: bool,
        route: Route,
    ) -> Option<Ticket> {
        let ticket = self.outbound.ticket(route);
        let service = self.outbound.redis.get_mut(server.0 as usize)?;
        service.subscribe(channel, pattern, ticket, self.now);
        Some(ticket)
    }

    fn redis_unsubscribe(&mut self, subscription: Ticket) -> bool {
        self.outbound
            .redis
            .iter_mut()
            .any(|s| s.unsubscribe(subscription))
    }

    fn inbox(&mut self, route: Route) -> Option<super::Inbox> {
        let ticket = self.outbound.ticket(route);
        self.inbox.as_ref().map(|tx| tx.sender(ticket))
    }

    fn metrics_text(&self) -> String {
        self.metrics.render(self.gauges())
    }

    fn is_durable(&self, topic: &str) -> bool {
        self.bus
            .remote
            .as_ref()
            .is_some_and(|r| r.bus.is_durable(topic))
    }

    fn bus_history(&mut self, topic: &str, after: Option<&str>, route: Route) -> Option<Ticket> {
        let ticket = self.outbound.ticket(route);
        let remote = self.bus.remote.as_mut()?;
        remote.bus.history(topic, after, ticket.id()).then(|| {
            remote.apps.insert(ticket.id(), ticket);
            ticket
        })
    }

    fn bus_up(&self) -> Option<bool> {
        self.bus.remote.as_ref().map(|r| r.bus.subscriber_is_up())
    }

    fn session(&self, conn: ConnId) -> Option<Arc<Session>> {
        self.attached.get(&conn)?.session.clone()
    }

    fn set_session(&mut self, conn: ConnId, session: Option<Arc<Session>>) -> bool {
        self.attached_mut(conn)
            .map(|a| a.session = session)
            .is_some()
    }

    fn user(&self, conn: ConnId) -> Option<Arc<str>> {
        self.attached.get(&conn)?.user.clone()
    }

    fn set_user(&mut self, conn: ConnId, user: Option<Arc<str>>) -> bool {
        self.attached_mut(conn).map(|a| a.user = user).is_some()
    }

    fn count(&mut self, family: &'static str, outcome: &'static str) {
        self.metrics.count(family, outcome);
    }

    fn data(&self, conn: ConnId) -> Option<Arc<serde_json::Value>> {
        self.attached.get(&conn)?.data.clone()
    }

    fn set_data(&mut self, conn: ConnId, data: Option<Arc<serde_json::Value>>) -> bool {
        self.attached_mut(conn).map(|a| a.data = data).is_some()
    }

    fn zmq_pull(&mut self, source: ZmqId, route: Route) -> Option<Ticket> {
        let ticket = self.outbound.ticket(route);
        self.zmq
            .subscribers
            .get_mut(source.0 as usize)?
            .push(ticket);
        Some(ticket)
    }

    fn bus_subscribe(&mut self, topic: &str, route: Route) -> Option<Ticket> {
        let ticket = self.outbound.ticket(route);
        self.bus.subscribe(topic, ticket, self.now);
        Some(ticket)
    }

    fn bus_unsubscribe(&mut self, subscription: Ticket) -> bool {
        self.bus.unsubscribe(subscription, self.now)
    }

    fn bus_publish(
        &mut self,
        event: Event,
        route: Route,
        receipt: bool,
        scope: crate::bus::Scope,
        skip: Option<Ticket>,
    ) -> Option<Ticket> {
        let receipt = receipt.then(|| self.outbound.ticket(route));
        if let Some(r) = receipt {
            self.bus.expect_receipt(r);
        }
        let durable = scope == crate::bus::Scope::Cluster && self.is_durable(&event.topic);
        if scope == crate::bus::Scope::Cluster {
            self.publish_remote(&event);
        }
        if !durable {
            // A durable topic's events are delivered in the stream's
            // order, here as everywhere: when Redis has them.
            self.deliver_local(Arc::new(event), receipt, skip);
        }
        if let Some(r) = receipt {
            self.outbound
                .done
                .push(Done::new(r, DoneReply::Published(0)));
        }
        receipt
    }
}

impl Core {
    /// Queues `event` for this process's bus subscribers of its topic
    /// (but `skip`).
    pub(super) fn deliver_local(
        &mut self,
        event: Arc<Event>,
        receipt: Option<Ticket>,
        skip: Option<Ticket>,
    ) {
        for &sub in self.bus.subscribers(&event.topic) {
            if Some(sub) == skip {
                continue;
            }
            let reply = DoneReply::Bus {
                event: event.clone(),
                receipt,
            };
            self.outbound.done.push(Done::new(sub, reply));
        }
        self.metrics.bus_events += 1;
    }

    /// Hands `event` to the Redis bus, if there is one.
    fn publish_remote(&mut self, event: &Event) {
        let Some(remote) = &mut self.bus.remote else {
            return;
        };
        let fresh = || {
            let mut id = [0u8; 16];
            let _ = getrandom::fill(&mut id);
            crate::bus::Origin(id)
        };
        if let Err(e) = remote.bus.publish(event, fresh) {
            self.metrics.count("bus_publishes", "too_large");
            log::warn!(
                "bus: an event on {:?} stays in this process: {e}",
                truncated(&event.topic)
            );
        }
    }
}

/// At most 100 bytes of a name, for logs.
fn truncated(s: &str) -> &str {
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
