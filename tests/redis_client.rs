//! `clients::redis::RedisConn` against a real redis-server.
//!
//! Each test starts its own `redis-server` on a free port (no persistence,
//! killed on drop). The test is the I/O: a small blocking driver moves bytes
//! between a `std::net::TcpStream` and the sans-IO `RedisConn`, the way the
//! reactor will, redialling with `Backoff` when the connection goes.
//!
//! These tests need `redis-server` on the PATH and fail (never skip) without
//! it: `apt-get install redis-server`.

use sprocket::clients::redis::{
    Backoff, Event, Mode, RedisConn, RedisUrl, ReplyError, SubKind, UnusableReason,
};
use sprocket::clients::resp::Reply;
mod common;
use common::services::{DEADLINE, RedisServer};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The test's reactor: one socket, one `RedisConn`, a back-off.
struct Driver {
    conn: RedisConn,
    addr: String,
    sock: Option<TcpStream>,
    events: Vec<Event>,
    backoff: Backoff,
    next_attempt: Instant,
    random: u64,
    /// What `connected` returned, per connection.
    outages: Vec<Option<Duration>>,
}

impl Driver {
    fn new(url: &str, mode: Mode) -> Self {
        let url = RedisUrl::parse(url).expect("test URL");
        let mut d = Driver {
            conn: RedisConn::new(&url, mode),
            addr: url.addr(),
            sock: None,
            events: Vec::new(),
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(100)),
            next_attempt: Instant::now(),
            random: 0x9e37_79b9_7f4a_7c15,
            outages: Vec::new(),
        };
        d.dial();
        assert!(d.sock.is_some(), "could not connect to {}", d.addr);
        d
    }

    fn dial(&mut self) {
        let now = Instant::now();
        match TcpStream::connect(&self.addr) {
            Ok(sock) => {
                sock.set_read_timeout(Some(Duration::from_millis(10)))
                    .unwrap();
                sock.set_nodelay(true).unwrap();
                self.sock = Some(sock);
                self.outages.push(self.conn.connected(now));
            }
            Err(_) => self.lost(),
        }
    }

    /// The connection (or an attempt) ended: tell the conn, schedule a redial.
    fn lost(&mut self) {
        let now = Instant::now();
        self.sock = None;
        self.conn.disconnected(now);
        // xorshift64: the test's own randomness for the jitter.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.next_attempt = now + self.backoff.next_delay(self.random);
    }

    /// One loop turn: write what is pending, read once, collect events.
    fn turn(&mut self) {
        let Some(sock) = self.sock.as_mut() else {
            let wait = self.next_attempt.saturating_duration_since(Instant::now());
            std::thread::sleep(wait.min(Duration::from_millis(10)));
            if Instant::now() >= self.next_attempt {
                self.dial();
            }
            return;
        };
        let mut broken = false;
        while !self.conn.transmit().is_empty() && !broken {
            match sock.write(self.conn.transmit()) {
                Ok(n) => self.conn.advance(n),
                Err(_) => broken = true,
            }
        }
        let mut buf = [0u8; 16 * 1024];
        match sock.read(&mut buf) {
            Ok(0) => broken = true,
            Ok(n) => {
                self.conn.handle_input(&buf[..n]);
                // Proved usable (AUTH passed, replies flow): back to base.
                if self.conn.is_up() {
                    self.backoff.reset();
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => broken = true,
        }
        self.events
            .extend(std::iter::from_fn(|| self.conn.poll_event()));
        // An unusable connection is closed, like a broken one.
        if broken || self.conn.is_unusable() {
            self.lost();
            self.events
                .extend(std::iter::from_fn(|| self.conn.poll_event()));
        }
    }

    /// Turns until `done` holds, or fails after DEADLINE.
    fn until(&mut self, what: &str, done: impl Fn(&Driver) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {DEADLINE:?}; events so far: {:?}",
                self.events
            );
            self.turn();
        }
    }

    /// Sends a command and waits for its reply.
    fn call(&mut self, args: &[&[u8]], tag: u64) -> Result<Reply, ReplyError> {
        self.conn.command(args, tag);
        self.until("reply", |d| d.reply(tag).is_some());
        self.reply(tag).unwrap()
    }

    fn reply(&self, tag: u64) -> Option<Result<Reply, ReplyError>> {
        self.events.iter().find_map(|e| match e {
            Event::Reply { tag: t, reply } if *t == tag => Some(reply.clone()),
            _ => None,
        })
    }

    fn has(&self, event: &Event) -> bool {
        self.events.contains(event)
    }
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Some(b.to_vec()))
}

fn ok() -> Result<Reply, ReplyError> {
    Ok(Reply::Simple("OK".into()))
}

fn subscribed(kind: SubKind, name: &[u8], count: i64) -> Event {
    Event::Subscribed {
        kind,
        name: name.to_vec(),
        count,
    }
}

#[test]
fn requirepass_auth_and_select_3() {
    // A password that needs percent-encoding in the URL.
    let srv = RedisServer::start(Some("s3cr:et@%"));
    let mut db3 = Driver::new(&srv.url(":s3cr%3Aet%40%25@", 3), Mode::Commands);
    assert_eq!(db3.call(&[b"SET", b"where", b"db3"], 1), ok());
    assert_eq!(db3.call(&[b"GET", b"where"], 2), Ok(bulk(b"db3")));
    // The ACL form (AUTH default <password>) reaches database 0, where the
    // key is not: SELECT really took effect on the first connection.
    let mut db0 = Driver::new(&srv.url("default:s3cr%3Aet%40%25@", 0), Mode::Commands);
    assert_eq!(db0.call(&[b"GET", b"where"], 1), Ok(Reply::Bulk(None)));
    assert_eq!(db0.call(&[b"SELECT", b"3"], 2), Err(ReplyError::Refused));
    assert_eq!(
        db0.call(
            &[
                b"EVAL",
                b"return redis.call('SELECT', 3) and redis.call('GET', 'where')",
                b"0"
            ],
            3
        ),
        Ok(bulk(b"db3"))
    );
}

#[test]
fn wrong_password_is_unusable_with_redis_text() {
    let srv = RedisServer::start(Some("right"));
    let mut d = Driver::new(&srv.url(":wrong@", 0), Mode::Commands);
    d.conn.command(&[b"GET", b"k"], 1);
    d.until("unusable", |d| {
        d.events.iter().any(|e| matches!(e, Event::Unusable(_)))
    });
    assert_eq!(d.reply(1), Some(Err(ReplyError::Unusable)));
    let text = d.events.iter().find_map(|e| match e {
        Event::Unusable(UnusableReason::AuthFailed(text)) => Some(text.clone()),
        _ => None,
    });
    assert_eq!(
        text.as_deref(),
        Some("WRONGPASS invalid username-password pair or user is disabled.")
    );
    // No password at all: every command gets redis's NOAUTH as its reply.
    let mut anon = Driver::new(&srv.url("", 0), Mode::Commands);
    assert_eq!(
        anon.call(&[b"GET", b"k"], 1),
        Ok(Reply::Error("NOAUTH Authentication required.".into()))
    );
}

#[test]
fn a_thousand_pipelined_incrs_match_in_order() {
    let srv = RedisServer::start(None);
    let mut d = Driver::new(&srv.url("", 0), Mode::Commands);
    // All queued before a single byte is written: one pipeline.
    for tag in 0..1000 {
        d.conn.command(&[b"INCR", b"counter"], tag);
    }
    d.until("1000 replies", |d| d.events.len() == 1000);
    for (i, e) in d.events.iter().enumerate() {
        let want = Event::Reply {
            tag: i as u64,
            reply: Ok(Reply::Integer(i as i64 + 1)),
        };
        assert_eq!(*e, want);
    }
    // A binary 1 MiB value comes back whole, through many reads.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(d.call(&[b"SET", b"big", &big], 2000), ok());
    assert_eq!(d.call(&[b"GET", b"big"], 2001), Ok(Reply::Bulk(Some(big))));
    assert_eq!(
        d.call(&[b"LPUSH", b"big", b"x"], 2002),
        Ok(Reply::Error(
            "WRONGTYPE Operation against a key holding the wrong kind of value".into()
        ))
    );
}

#[test]
fn subscribe_psubscribe_publish_unsubscribe() {
    let srv = RedisServer::start(None);
    let mut sub = Driver::new(&srv.url("", 0), Mode::PubSub);
    let mut publisher = Driver::new(&srv.url("", 0), Mode::Commands);
    sub.conn.subscribe(b"room:1").unwrap();
    sub.conn.psubscribe(b"news.*").unwrap();
    let confirmed = [
        subscribed(SubKind::Channel, b"room:1", 1),
        subscribed(SubKind::Pattern, b"news.*", 2),
    ];
    sub.until("subscribed", |d| confirmed.iter().all(|e| d.has(e)));

    // Binary-safe: every byte value, CRLF and NUL included.
    let payload: Vec<u8> = (0..=255u8).collect();
    let one = Ok(Reply::Integer(1));
    assert_eq!(publisher.call(&[b"PUBLISH", b"room:1", &payload], 1), one);
    assert_eq!(publisher.call(&[b"PUBLISH", b"news.uk", b"\r\n\0"], 2), one);
    let message = Event::Message {
        channel: b"room:1".to_vec(),
        payload,
    };
    let pmessage = Event::PMessage {
        pattern: b"news.*".to_vec(),
        channel: b"news.uk".to_vec(),
        payload: b"\r\n\0".to_vec(),
    };
    sub.until("message and pmessage", |d| {
        d.has(&message) && d.has(&pmessage)
    });

    assert_eq!(sub.conn.unsubscribe(b"room:1"), Ok(true));
    let gone = Event::Unsubscribed {
        kind: SubKind::Channel,
        name: b"room:1".to_vec(),
        count: 1,
    };
    sub.until("unsubscribed", |d| d.has(&gone));
    // Nobody listens on the channel any more; the pattern still works.
    assert_eq!(
        publisher.call(&[b"PUBLISH", b"room:1", b"late"], 3),
        Ok(Reply::Integer(0))
    );
    assert_eq!(publisher.call(&[b"PUBLISH", b"news.fr", b"x"], 4), one);
    let later = Event::PMessage {
        pattern: b"news.*".to_vec(),
        channel: b"news.fr".to_vec(),
        payload: b"x".to_vec(),
    };
    sub.until("later pmessage", |d| d.has(&later));
    let late = |e: &Event| matches!(e, Event::Message { payload, .. } if payload == b"late");
    assert!(!sub.events.iter().any(late), "message after unsubscribe");
}

#[test]
fn redis_killed_mid_stream_then_restarted() {
    let mut srv = RedisServer::start(Some("pw"));
    let port = srv.port;
    let url = srv.url(":pw@", 2);
    let mut cmd = Driver::new(&url, Mode::Commands);
    let mut sub = Driver::new(&url, Mode::PubSub);
    sub.conn.subscribe(b"events").unwrap();
    sub.conn.psubscribe(b"ev*").unwrap();
    sub.until("subscribed", |d| d.events.len() == 2);

    // BLPOP blocks this connection on the server, so the SET behind it in
    // the pipeline stays in flight too.
    cmd.conn.command(&[b"BLPOP", b"nothing", b"0"], 1);
    cmd.conn.command(&[b"SET", b"k", b"v"], 2);
    // Written, AUTH and SELECT answered: exactly these two are in flight.
    cmd.until("both in flight", |d| {
        d.conn.transmit().is_empty() && d.conn.in_flight() == 2
    });
    srv.kill();
    cmd.until("in-flight commands failed", |d| {
        d.reply(1).is_some() && d.reply(2).is_some()
    });
    assert_eq!(cmd.reply(1), Some(Err(ReplyError::Disconnected)));
    assert_eq!(cmd.reply(2), Some(Err(ReplyError::Disconnected)));
    sub.until("subscriber saw the outage", |d| !d.conn.is_up());

    // Issued while Redis is down: held, sent after the reconnect.
    cmd.conn.command(&[b"INCR", b"after"], 3);
    assert!(!cmd.conn.is_up() && cmd.conn.held() == 1);
    let _srv = RedisServer::start_on(port, Some("pw"));
    cmd.until("held command ran", |d| d.reply(3).is_some());
    assert_eq!(cmd.reply(3), Some(Ok(Reply::Integer(1))));
    let outage = cmd.outages.last().copied().flatten();
    assert!(outage.is_some_and(|d| d > Duration::ZERO), "{outage:?}");

    // The subscriber re-subscribed to both on its own; new publishes arrive.
    sub.events.clear();
    sub.until("re-subscribed", |d| {
        d.has(&subscribed(SubKind::Channel, b"events", 1))
            && d.has(&subscribed(SubKind::Pattern, b"ev*", 2))
    });
    assert_eq!(
        cmd.call(&[b"PUBLISH", b"events", b"back"], 4),
        Ok(Reply::Integer(2))
    );
    let back = Event::Message {
        channel: b"events".to_vec(),
        payload: b"back".to_vec(),
    };
    sub.until("message after restart", |d| d.has(&back));
}
