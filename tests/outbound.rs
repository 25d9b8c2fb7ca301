//! The reactor's own clients against real servers: Redis (commands,
//! pub/sub, a server killed and restarted mid-stream) and an HTTP backend
//! (keep-alive, a backend that never answers), plus the inbox. Apps reach
//! them through their context; every answer comes back to the app that
//! asked, and the echo route stays fast whatever the backends do.

mod common;
use common::services::{Backend, RedisServer};
use common::*;
use sprocket::app::{
    Application, ConnId, ConnSet, Context, Echo, Message, RedisId, Reply, Request, Router, Ticket,
};
use sprocket::clients::http::{Request as HttpRequest, Url};
use sprocket::clients::resp;
use sprocket::{Config, Server};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `/redis`: each text message is a command (words); the reply is sent
/// back as text.
struct RedisCommands {
    redis: RedisId,
    asked: HashMap<Ticket, ConnId>,
}

fn show(reply: &resp::Reply) -> String {
    match reply {
        resp::Reply::Simple(s) => s.clone(),
        resp::Reply::Error(e) => format!("ERR {e}"),
        resp::Reply::Integer(n) => n.to_string(),
        resp::Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        resp::Reply::Bulk(None) | resp::Reply::Array(None) => "nil".into(),
        resp::Reply::Array(Some(items)) => items.iter().map(show).collect::<Vec<_>>().join(" "),
    }
}

impl Application for RedisCommands {
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let args: Vec<&[u8]> = text.split(' ').map(str::as_bytes).collect();
        let ticket = ctx.redis(self.redis, &args).expect("a configured redis");
        self.asked.insert(ticket, conn);
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        let conn = self
            .asked
            .remove(&ticket)
            .expect("a reply to a ticket of ours");
        let text = match reply {
            Reply::Redis(Ok(r)) => show(&r),
            Reply::Redis(Err(e)) => format!("error: {e}"),
            other => panic!("not a Redis reply: {other:?}"),
        };
        ctx.send_text(conn, &text);
    }
}

/// `/relay`: subscribes to `news` and `alerts.*` when the first member
/// joins; relays every message to all members as `channel: payload`.
struct Relay {
    redis: RedisId,
    members: ConnSet,
    subs: Vec<Ticket>,
}

impl Application for Relay {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &Request) {
        if self.subs.is_empty() {
            self.subs
                .push(ctx.redis_subscribe(self.redis, b"news", false).unwrap());
            self.subs
                .push(ctx.redis_subscribe(self.redis, b"alerts.*", true).unwrap());
        }
        self.members.insert(conn);
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: u16, _: &str) {
        self.members.remove(conn);
    }
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        assert!(self.subs.contains(&ticket), "only our own subscriptions");
        let Reply::Message {
            channel, payload, ..
        } = reply
        else {
            panic!("not a message: {reply:?}");
        };
        let text = format!(
            "{}: {}",
            String::from_utf8_lossy(channel),
            String::from_utf8_lossy(payload)
        );
        ctx.broadcast(self.members.iter(), Message::Text(&text));
    }
}

/// `/backend`: `post TEXT` POSTs TEXT to the backend's /echo, `get PATH`
/// GETs PATH, `twice PATH` GETs PATH and, from the reply, once more; the
/// response body (or the error) comes back as text.
struct Forward {
    base: String,
    asked: HashMap<Ticket, (ConnId, Option<String>)>,
}

impl Application for Forward {
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let again = (verb == "twice").then(|| arg.to_owned());
        self.get_or_post(ctx, conn, verb, arg, again);
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        let (conn, again) = self.asked.remove(&ticket).expect("our ticket");
        if let Some(path) = again {
            // A request started from a reply must go out at once, too.
            return self.get_or_post(ctx, conn, "get", &path, None);
        }
        let text = match reply {
            Reply::Http(Ok(r)) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
            Reply::Http(Err(e)) => format!("error: {e}"),
            other => panic!("not an HTTP reply: {other:?}"),
        };
        ctx.send_text(conn, &text);
    }
}

impl Forward {
    fn get_or_post(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        verb: &str,
        arg: &str,
        again: Option<String>,
    ) {
        let (url, request) = match verb {
            "post" => (
                Url::parse(&format!("{}/echo", self.base)).unwrap(),
                HttpRequest::new("POST", "/echo")
                    .unwrap()
                    .header("Content-Type", "text/plain")
                    .unwrap()
                    .body(arg.as_bytes().to_vec()),
            ),
            _ => (
                Url::parse(&format!("{}{arg}", self.base)).unwrap(),
                HttpRequest::new("GET", arg).unwrap(),
            ),
        };
        let ticket = ctx.http_request(&url, request).unwrap();
        self.asked.insert(ticket, (conn, again));
    }
}

/// `/inbox`: on open, a thread sends three values through the app's
/// inbox; each is sent to the connection.
struct FromThread;

impl Application for FromThread {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &Request) {
        let inbox = ctx.inbox().expect("the server has inboxes");
        std::thread::spawn(move || {
            for i in 0..3u32 {
                inbox.send((conn, format!("from a thread {i}"))).unwrap();
            }
        });
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
    fn on_reply(&mut self, ctx: &mut Context<'_>, _: Ticket, reply: Reply<'_>) {
        let Reply::Inbox(value) = reply else {
            panic!("not an inbox value")
        };
        let (conn, text) = *value.downcast::<(ConnId, String)>().expect("our type");
        ctx.send_text(conn, &text);
    }
}

fn server(redis_url: String, backend: String) -> TestServer {
    let cfg = Config {
        backend_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    TestServer::start_with(cfg, move |server: &mut Server| {
        let redis = server.add_redis(&redis_url).expect("redis url");
        Router::new()
            .route("/echo", Echo)
            .route(
                "/redis",
                RedisCommands {
                    redis,
                    asked: HashMap::new(),
                },
            )
            .route(
                "/relay",
                Relay {
                    redis,
                    members: ConnSet::default(),
                    subs: Vec::new(),
                },
            )
            .route(
                "/backend",
                Forward {
                    base: backend,
                    asked: HashMap::new(),
                },
            )
            .route("/inbox", FromThread)
            .route("/metrics", sprocket::app::Admin)
    })
}

/// PUBLISH over a raw RESP connection; returns how many subscribers got it.
fn publish(port: u16, channel: &str, payload: &str) -> Option<i64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut cmd = Vec::new();
    sprocket::clients::resp::encode_command(
        &mut cmd,
        &[b"PUBLISH", channel.as_bytes(), payload.as_bytes()],
    );
    s.write_all(&cmd).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .trim()
        .strip_prefix(':')?
        .parse()
        .ok()
}

/// Redis's count of clients blocked in a command (`INFO clients`).
fn blocked_clients(port: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut cmd = Vec::new();
    sprocket::clients::resp::encode_command(&mut cmd, &[b"INFO", b"clients"]);
    s.write_all(&cmd).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("blocked_clients:") {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:")?.trim().parse().ok())
}

/// Publishes until `subscribers` receive it (the subscription may still
/// be on its way).
fn publish_when_subscribed(port: u16, channel: &str, payload: &str) {
    wait_until("the server subscribed", || {
        publish(port, channel, payload) == Some(1)
    });
}

/// The slowest of `n` echo round trips.
fn slowest_echo(c: &mut Client, n: usize) -> Duration {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            c.echo(&format!("ping {i}"));
            t.elapsed()
        })
        .max()
        .unwrap_or_default()
}

#[test]
fn redis_commands_and_pubsub_survive_a_restart() {
    let mut redis = RedisServer::start(None);
    let port = redis.port;
    let backend = Backend::start();
    let srv = server(redis.url("", 0), backend.url(""));
    let mut cmds = srv.client("/redis");
    cmds.send_text("SET greeting hello");
    assert_eq!(cmds.read_text(), "OK");
    // Pipelined: replies come back in order.
    for i in 0..50 {
        cmds.send_text(&format!("INCR counter{}", i % 2));
    }
    let replies: Vec<String> = (0..50).map(|_| cmds.read_text()).collect();
    let expected: Vec<String> = (0..50).map(|i| (i / 2 + 1).to_string()).collect();
    assert_eq!(replies, expected);

    let mut relay = srv.client("/relay");
    publish_when_subscribed(port, "news", "first");
    assert_eq!(relay.read_text(), "news: first");
    assert_eq!(publish(port, "alerts.fire", "hot"), Some(1));
    assert_eq!(relay.read_text(), "alerts.fire: hot");

    // A command in flight when Redis dies fails, and says so.
    cmds.send_text("BLPOP never-filled 0");
    wait_until("redis has the BLPOP blocked", || {
        blocked_clients(port) == Some(1)
    });
    redis.kill();
    assert!(
        cmds.read_text().starts_with("error: "),
        "in-flight command failed"
    );
    // While Redis is away the reactor keeps serving everyone else.
    let mut echo = srv.client("/echo");
    let slowest = slowest_echo(&mut echo, 100);
    assert!(
        slowest < Duration::from_millis(200),
        "echo stalled for {slowest:?} while Redis was down"
    );
    // A command sent during the outage waits, and is answered once back.
    cmds.send_text("GET greeting");
    // SET, 50 INCRs, BLPOP, GET: the GET has reached the reactor.
    wait_until("the GET is queued", || {
        let m = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        m.contains("sprocket_redis_commands_total 53\n")
    });
    let _redis = RedisServer::start_on(port, None);
    assert_eq!(cmds.read_text(), "nil", "a fresh Redis: the key is gone");
    // Subscriptions came back by themselves.
    publish_when_subscribed(port, "news", "second");
    // (earlier attempts may have been delivered as the subscription arrived)
    let mut got = relay.read_text();
    while got != "news: second" {
        got = relay.read_text();
    }
    let metrics = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("sprocket_redis_connection_failures_total ")?
                .parse()
                .ok()
        })
        .unwrap();
    assert!(
        failures >= 2,
        "both connections lost at least once: {metrics}"
    );
}

#[test]
fn http_backend_keep_alive_timeouts_and_a_backend_that_goes_away() {
    let redis = RedisServer::start(None);
    let backend = Backend::start();
    let srv = server(redis.url("", 0), backend.url(""));
    let mut c = srv.client("/backend");
    c.send_text("post hello backend");
    let answer = c.read_text();
    assert!(answer.starts_with("200 "), "{answer}");
    assert!(answer.contains("hello backend"), "{answer}");
    // Sequential requests reuse one connection: its request count grows.
    let counts: Vec<String> = (0..3)
        .map(|_| {
            c.send_text("get /json");
            c.read_text()
        })
        .collect();
    assert!(
        counts[2].contains("\"requests\": 4") || counts[2].contains("\"requests\":4"),
        "{counts:?}"
    );
    // A request made from a reply, on a new connection (/close ends its
    // own), is dialled in the same turn (not at the next deadline sweep, up
    // to a second later).
    let started = Instant::now();
    c.send_text("twice /close");
    let answer = c.read_text();
    assert!(answer.starts_with("200 "), "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    // A backend that never answers: the request times out (500 ms), and
    // meanwhile the echo route is as fast as ever.
    let started = Instant::now();
    c.send_text("get /slow");
    let mut echo = srv.client("/echo");
    let slowest = slowest_echo(&mut echo, 50);
    assert!(
        slowest < Duration::from_millis(200),
        "echo stalled for {slowest:?}"
    );
    let answer = c.read_text();
    assert!(answer.starts_with("error: "), "{answer}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The backend goes away: the next request fails to connect, clearly.
    drop(backend);
    c.send_text("get /json");
    let answer = c.read_text();
    assert!(answer.starts_with("error: "), "{answer}");
}

#[test]
fn an_inbox_hands_values_from_another_thread_to_its_app() {
    let redis = RedisServer::start(None);
    let backend = Backend::start();
    let srv = server(redis.url("", 0), backend.url(""));
    let mut c = srv.client("/inbox");
    for i in 0..3 {
        assert_eq!(c.read_text(), format!("from a thread {i}"));
    }
}

#[test]
fn redis_auth_and_select_from_the_url() {
    let redis = RedisServer::start(Some("s3cret"));
    let backend = Backend::start();
    let srv = server(redis.url(":s3cret@", 3), backend.url(""));
    let mut c = srv.client("/redis");
    c.send_text("SET where db3");
    assert_eq!(c.read_text(), "OK");
    // The key is in database 3, not 0: look from a raw connection.
    let mut raw = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut cmds = Vec::new();
    for args in [
        &[&b"AUTH"[..], b"s3cret"][..],
        &[b"GET", b"where"],
        &[b"SELECT", b"3"],
        &[b"GET", b"where"],
    ] {
        resp::encode_command(&mut cmds, args);
    }
    raw.write_all(&cmds).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"$3\r\ndb3\r\n") {
        let n = raw.read(&mut buf).expect("replies from redis");
        assert!(n > 0, "redis closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got,
        b"+OK\r\n$-1\r\n+OK\r\n$3\r\ndb3\r\n",
        "{}",
        String::from_utf8_lossy(&got)
    );

    // A wrong password: the command fails with Redis's reason, and the
    // server keeps serving others.
    let srv = server(redis.url(":wrong@", 0), backend.url(""));
    let mut c = srv.client("/redis");
    c.send_text("PING");
    let answer = c.read_text();
    assert!(answer.starts_with("error: "), "{answer}");
    srv.client("/echo").echo("still fine");
}

#[test]
fn a_backend_by_name_resolved_before_the_reactor_runs() {
    let backend = Backend::start();
    let port = backend.port;
    let srv = TestServer::start_with(Config::default(), move |server: &mut Server| {
        // As curl's --resolve: the name is dialled at this address, and
        // requests still say Host: backend.test.
        server.add_http_host("Backend.Test", port, ([127, 0, 0, 1], port).into());
        let named = Url::parse(&format!("http://localhost:{port}/")).unwrap();
        server.resolve_http(&named).expect("localhost resolves");
        let forward = |base: String| Forward {
            base,
            asked: HashMap::new(),
        };
        Router::new()
            .route("/named", forward(format!("http://backend.test:{port}")))
            .route("/unnamed", forward(format!("http://unmapped.test:{port}")))
    });
    let mut c = srv.client("/named");
    c.send_text("get /host");
    assert_eq!(c.read_text(), format!("200 backend.test:{port}"));
    let mut c = srv.client("/unnamed");
    c.send_text("get /host");
    let answer = c.read_text();
    assert!(
        answer.starts_with("error: cannot resolve unmapped.test"),
        "{answer}"
    );
}
