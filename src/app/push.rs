//! Pushes from the PHP backend into topics: [`PushEndpoint`] (`POST
//! /publish` with a bearer secret) and [`RedisPush`] (a Redis channel or
//! pattern). Both read the format of [`crate::wamp::push`] and publish on
//! the bus, where the WAMP server (and whatever else subscribed) delivers
//! the events.

use super::{
    Application, ConnId, Context, Http, Message, Page, RedisId, Reply, Request, Ticket, ZmqId,
};
use crate::bus::Event;
use crate::wamp::push::{self, Format, Push};
use std::collections::HashMap;

/// Turns a checked push into a bus event.
pub fn event_of(push: Push) -> Event {
    Event {
        user: push.user,
        exclude: push.exclude,
        eligible: push.eligible,
        ..Event::raw(push.topic, push.data.to_string())
    }
}

/// Parses a message of a push channel and publishes every push in it, or
/// logs why not (`source` says where it came from); counts either under
/// `family`. A bad push is never fatal to the channel. `scope` is local
/// for what every process receives by itself.
fn publish_pushes(
    ctx: &mut Context<'_>,
    scope: crate::bus::Scope,
    format: &Format,
    family: &'static str,
    payload: &[u8],
    source: impl FnOnce() -> String,
) {
    match push::parse(payload, format) {
        Ok(pushes) => {
            ctx.count(family, "ok");
            for p in pushes {
                match scope {
                    crate::bus::Scope::Cluster => ctx.publish(event_of(p)),
                    crate::bus::Scope::Local => ctx.publish_local(event_of(p)),
                }
            }
        }
        Err(e) => {
            ctx.count(family, "malformed");
            log::warn!("push {} refused: {e}", source());
        }
    }
}

/// Compares without leaking, through timing, how much of `given` matches.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = given.len() ^ secret.len();
    for (i, s) in secret.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ s);
    }
    diff == 0
}

/// `POST /publish`: `Authorization: Bearer SECRET`, a push or a batch as
/// the body; answers `{"delivered": N}` (connections reached in this
/// process) once every subscriber has handled the events. Missing or
/// wrong secret: 401; over the size limit: 413; malformed: 400 with the
/// reason; another method: 405.
pub struct PushEndpoint {
    secret: Vec<u8>,
    max_size: usize,
    format: Format,
    /// Requests waiting for their receipts: (receipts outstanding,
    /// connections reached so far).
    waiting: HashMap<ConnId, (usize, usize)>,
    receipts: HashMap<Ticket, ConnId>,
}

impl PushEndpoint {
    /// An endpoint guarded by `secret` (must not be empty), taking bodies
    /// up to `max_size` bytes in `format`.
    pub fn new(secret: impl Into<Vec<u8>>, max_size: usize, format: Format) -> Self {
        let secret = secret.into();
        assert!(!secret.is_empty(), "a publish endpoint needs a secret");
        PushEndpoint {
            secret,
            max_size,
            format,
            waiting: HashMap::new(),
            receipts: HashMap::new(),
        }
    }

    fn refuse(ctx: &mut Context<'_>, outcome: &'static str, page: Page) -> Http {
        ctx.count("push_http", outcome);
        Http::Respond(page)
    }
}

fn error_page(status: u16, reason: impl std::fmt::Display) -> Page {
    Page::json(
        status,
        serde_json::json!({ "error": reason.to_string() }).to_string(),
    )
}

impl Application for PushEndpoint {
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        if req.method != "POST" {
            return Self::refuse(
                ctx,
                "bad_method",
                error_page(405, "POST a push here").header("Allow", "POST"),
            );
        }
        let given = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same_secret(g.as_bytes(), &self.secret)) {
            log::warn!(
                "{conn}: push refused from {}: missing or wrong secret",
                req.peer
            );
            return Self::refuse(
                ctx,
                "unauthorized",
                error_page(401, "missing or wrong bearer secret")
                    .header("WWW-Authenticate", "Bearer"),
            );
        }
        if req.body.len() > self.max_size {
            return Self::refuse(
                ctx,
                "too_large",
                error_page(413, format!("a push is at most {} bytes", self.max_size)),
            );
        }
        let pushes = match push::parse(&req.body, &self.format) {
            Ok(p) => p,
            Err(e) => {
                log::info!("{conn}: push refused: {e}");
                return Self::refuse(ctx, "malformed", error_page(400, e));
            }
        };
        ctx.count("push_http", "ok");
        if pushes.is_empty() {
            return Http::Respond(Page::json(200, r#"{"delivered":0}"#));
        }
        let mut outstanding = 0;
        for p in pushes {
            if let Some(t) = ctx.publish_with_receipt(event_of(p)) {
                self.receipts.insert(t, conn);
                outstanding += 1;
            }
        }
        self.waiting.insert(conn, (outstanding, 0));
        Http::Later
    }

    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        let Reply::Published { delivered } = reply else {
            return;
        };
        let Some(conn) = self.receipts.remove(&ticket) else {
            return;
        };
        let Some((outstanding, total)) = self.waiting.get_mut(&conn) else {
            return;
        };
        *outstanding -= 1;
        *total += delivered;
        if *outstanding == 0 {
            let total = *total;
            self.waiting.remove(&conn);
            ctx.respond(conn, Page::json(200, format!(r#"{{"delivered":{total}}}"#)));
        }
    }
}

/// Every message on a Redis channel (or a pattern with `*`, through
/// PSUBSCRIBE) is a push: what `$redis->publish($channel, $json)` sends
/// from PHP. Malformed pushes are logged and counted, never fatal; the
/// subscription survives Redis outages (the reactor re-subscribes).
pub struct RedisPush {
    server: RedisId,
    channel: String,
    format: Format,
    subscription: Option<Ticket>,
}

impl RedisPush {
    /// Pushes from `channel` on `server`.
    pub fn new(server: RedisId, channel: impl Into<String>, format: Format) -> Self {
        RedisPush {
            server,
            channel: channel.into(),
            format,
            subscription: None,
        }
    }
}

impl Application for RedisPush {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let pattern = self.channel.contains('*');
        self.subscription = ctx.redis_subscribe(self.server, self.channel.as_bytes(), pattern);
        if self.subscription.is_none() {
            log::error!(
                "pushes from Redis channel {}: no such Redis server",
                self.channel
            );
        }
    }

    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if Some(ticket) != self.subscription {
            return;
        }
        let Reply::Message {
            channel, payload, ..
        } = reply
        else {
            return;
        };
        // Every process subscribes to the push channel: each delivers to its
        // own subscribers, and the Redis bus must not repeat it.
        publish_pushes(
            ctx,
            crate::bus::Scope::Local,
            &self.format,
            "push_redis",
            payload,
            || format!("from Redis channel {}", String::from_utf8_lossy(channel)),
        );
    }
}

/// Every message of a ZeroMQ PULL socket (bound with
/// [`crate::Server::listen_zmq`]) is a push: what the seeds' PHP code
/// sends (`ZMQContext`, `ZMQ::SOCKET_PUSH`, `connect`, `send($json)`);
/// a multi-part message uses its last part.
pub struct ZmqPush {
    source: ZmqId,
    format: Format,
    ticket: Option<Ticket>,
}

impl ZmqPush {
    /// Pushes from `source`.
    pub fn new(source: ZmqId, format: Format) -> Self {
        ZmqPush {
            source,
            format,
            ticket: None,
        }
    }
}

impl Application for ZmqPush {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ticket = ctx.zmq_pull(self.source);
        if self.ticket.is_none() {
            log::error!("pushes over ZeroMQ: no such listener");
        }
    }

    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if Some(ticket) != self.ticket {
            return;
        }
        let Reply::Message {
            channel, payload, ..
        } = reply
        else {
            return;
        };
        publish_pushes(
            ctx,
            crate::bus::Scope::Cluster,
            &self.format,
            "push_zmq",
            payload,
            || format!("over ZeroMQ ({})", String::from_utf8_lossy(channel)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cretx", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
    }
}
