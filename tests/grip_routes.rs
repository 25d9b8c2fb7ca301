//! `--grip-route`: WebSocket connections run by a real PHP backend
//! (tests/php/grip.php under `php -S`) over WebSocket-over-HTTP, through
//! the binary: what sprocket itself promises beyond Pushpin's behaviour
//! (tests/grip.rs compares the two): clear close codes when the backend
//! fails or is slow, others unharmed; refusals at OPEN; the session's
//! user and id as `Meta-*`; channels shared with WAMP topics, `POST
//! /publish` pushes and, through the Redis bus, other processes; detach;
//! the CLOSE reported to the backend; the counters.

mod common;
use common::binary;
use common::services::{PhpServer, RedisServer, TempDir, write_php_session};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const BACKEND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/grip.php");
const SECRET: &str = "grip-test-secret";

struct Setup {
    php: PhpServer,
    /// A second backend, for /slow: a sleeping `php -S` worker may hold
    /// connections it accepted meanwhile, so slowness gets its own.
    _slow_php: PhpServer,
    log: TempDir,
    srv: binary::Running,
}

impl Setup {
    fn start(extra: &[&str]) -> Setup {
        let log = TempDir::new("grip-log");
        let log_file = log.0.join("events.log");
        let php = PhpServer::start(BACKEND, &[("GRIP_LOG", log_file.as_os_str())]);
        let slow_php = PhpServer::start(BACKEND, &[("GRIP_LOG", log_file.as_os_str())]);
        let route = format!("/api={}", php.url("/api"));
        let slow_route = format!("/slow={}", slow_php.url("/slow"));
        let mut args = vec![
            "--admin-listen",
            "127.0.0.1:0",
            "--grip-route",
            &route,
            "--grip-route",
            &slow_route,
            "--backend-timeout",
            "1s",
        ];
        args.extend_from_slice(extra);
        let srv = binary::spawn(BIN.as_ref(), &args, &[("SPROCKET_PUBLISH_SECRET", SECRET)]);
        Setup {
            php,
            _slow_php: slow_php,
            log,
            srv,
        }
    }

    fn admin(&self) -> SocketAddr {
        self.srv.admin.expect("admin address")
    }

    /// A GRIP connection, past its OPEN answer (the meta message).
    fn open(&self, query: &str, extra: &[(&str, &str)]) -> (Client, Value) {
        self.open_at("/api", query, extra)
    }

    fn open_at(&self, path: &str, query: &str, extra: &[(&str, &str)]) -> (Client, Value) {
        let mut c = Client::connect(self.srv.addr, &format!("{path}{query}"), extra);
        let meta: Value = serde_json::from_str(&c.read_text()).unwrap();
        (c, meta)
    }

    fn backend_log(&self) -> String {
        std::fs::read_to_string(self.log.0.join("events.log")).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        http_exchange(
            self.admin(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    }
}

fn grip_publish(admin: SocketAddr, body: &str) -> String {
    let req = format!(
        "POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(admin, req.as_bytes())
}

fn push(admin: SocketAddr, body: &str) -> String {
    let req = format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_exchange(admin, req.as_bytes())
}

fn echo(c: &mut Client, text: &str) {
    c.send_text(text);
    assert_eq!(c.read_text(), format!("echo:{text}"));
}

#[test]
fn a_failing_or_slow_backend_closes_that_connection_with_1011_and_no_other() {
    let s = Setup::start(&[]);
    let (mut bystander, _) = s.open("", &[]);
    echo(&mut bystander, "before");

    // 500: close 1011 at once.
    let (mut c, _) = s.open("", &[]);
    c.send_text("fail");
    c.answer_close(1011);

    // Malformed events: the same.
    let (mut c, _) = s.open("", &[]);
    c.send_text("garble");
    c.answer_close(1011);

    // Slow (3 s) against --backend-timeout 1s: closed after about 1 s,
    // while the bystander's round trips stay fast.
    let (mut slow, _) = s.open_at("/slow", "", &[]);
    let started = Instant::now();
    slow.send_text("slow");
    for i in 0..5 {
        let t = Instant::now();
        echo(&mut bystander, &format!("during {i}"));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a round trip took {:?} while another connection's backend was slow",
            t.elapsed()
        );
    }
    slow.answer_close(1011);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
        "closed after {took:?}, not after the 1 s backend timeout"
    );
    echo(&mut bystander, "after");

    let m = s.metrics();
    assert_eq!(
        metric(&m, r#"sprocket_grip_requests_total{outcome="failed"}"#),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"sprocket_grip_requests_total{outcome="malformed"}"#),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"sprocket_grip_requests_total{outcome="refused"}"#),
        Some(1),
        "{m}"
    );
}

#[test]
fn refusals_at_open_and_a_backend_that_is_down() {
    let s = Setup::start(&[]);
    let c = Client::try_connect(s.srv.addr, "/api?refuse=1", &[]);
    assert_eq!(status_of(&c.response), 403, "{}", c.response);
    let raw = http_exchange(s.srv.addr, upgrade_request("/api?refuse=1", &[]).as_bytes());
    assert!(raw.ends_with("no entry for you\n"), "{raw}");

    // The backend stops: the handshake gets 502.
    let port = s.php.port;
    drop(s.php);
    let c = Client::try_connect(s.srv.addr, "/api", &[]);
    assert_eq!(status_of(&c.response), 502, "{} (port {port})", c.response);
    // The server itself is fine.
    Client::connect(s.srv.addr, "/echo", &[]).echo("still here");
}

#[test]
fn the_backend_closes_and_hears_every_close() {
    let s = Setup::start(&[]);
    let (mut c, meta) = s.open("", &[]);
    let cid = meta["cid"].as_str().unwrap().to_owned();
    c.send_text("bye");
    let f = c.read_frame();
    assert_eq!(f.close_code(), Some(4000), "{f:?}");
    assert_eq!(&f.payload[2..], b"bye");
    c.send_close(4000, "");

    let (mut c2, meta2) = s.open("", &[]);
    let cid2 = meta2["cid"].as_str().unwrap().to_owned();
    assert_ne!(cid, cid2, "every connection has its own Connection-Id");
    c2.send_close(4321, "leaving");
    let f = c2.read_frame();
    assert_eq!(f.close_code(), Some(4321));

    let (mut c4, meta4) = s.open("", &[]);
    let cid4 = meta4["cid"].as_str().unwrap().to_owned();
    c4.send_frame(0x88, b""); // a close without a code
    let _ = c4.read_frame();

    let (c3, meta3) = s.open("", &[]);
    let cid3 = meta3["cid"].as_str().unwrap().to_owned();
    drop(c3); // no close handshake

    wait_until("the backend heard every close", || {
        let log = s.backend_log();
        log.contains(&format!("{cid} CLOSE 4000"))
            && log.contains(&format!("{cid2} CLOSE 4321"))
            && log.contains(&format!("{cid3} DISCONNECT -"))
            && log.contains(&format!("{cid4} CLOSE -"))
    });
}

#[test]
fn the_session_user_and_id_go_as_meta_headers() {
    let dir = TempDir::new("grip-sessions");
    let id = "gripsession0123456789abcdef";
    write_php_session(&dir.0, id, "$_SESSION['user_id'] = 42;");
    let store = format!("files:{}", dir.0.display());
    let s = Setup::start(&["--session-store", &store, "--session-user-key", "user_id"]);
    let cookie = format!("PHPSESSID={id}");
    let (_c, meta) = s.open("", &[("Cookie", &cookie)]);
    assert_eq!(meta["meta"]["user"], "42", "{meta}");
    assert_eq!(meta["meta"]["session-id"], id, "{meta}");
    // Without a session: no such headers.
    let (_c, meta) = s.open("", &[]);
    assert_eq!(meta["meta"], json!({}), "{meta}");
}

#[test]
fn channels_are_topics_shared_with_wamp_and_pushes() {
    let s = Setup::start(&[]);
    let (mut grip, _) = s.open("?channel=news", &[]);
    let mut wamp = Client::connect(s.srv.addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
    let _welcome = wamp.read_text();
    wamp.send_text(r#"[5, "news"]"#);
    wamp.send_text(r#"[2, "sync", "urn:sprocket:echo", "x"]"#);
    assert_eq!(wamp.read_text(), r#"[3,"sync","x"]"#);

    // A GRIP publish: the GRIP client gets the text, WAMP the string.
    let r = grip_publish(
        s.admin(),
        r#"{"items":[{"channel":"news","formats":{"ws-message":{"content":"hello grip"}}}]}"#,
    );
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.ends_with("Published\n"), "{r}");
    assert_eq!(grip.read_text(), "hello grip");
    assert_eq!(wamp.read_text(), r#"[8,"news","hello grip"]"#);

    // Binary content reaches the GRIP client as bytes.
    let r = grip_publish(
        s.admin(),
        r#"{"items":[{"channel":"news","formats":{"ws-message":{"content-bin":"AP9i"}}}]}"#,
    );
    assert_eq!(status_of(&r), 200, "{r}");
    let f = grip.read_frame();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (2, &[0x00, 0xff, 0x62][..])
    );
    let _ = wamp.read_text();

    // A WAMP publish and a POST /publish push reach the GRIP client as
    // the event's JSON text.
    wamp.send_text(r#"[7, "news", {"from": "wamp"}]"#);
    assert_eq!(grip.read_text(), r#"{"from":"wamp"}"#);
    let r = push(s.admin(), r#"{"topic":"news","data":"from php"}"#);
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(grip.read_text(), "from php");

    // Unsubscribed: nothing more; other channels by subscription.
    grip.send_text("unsub:news");
    assert_eq!(grip.read_text(), "unsubscribed");
    grip.send_text("sub:other");
    assert_eq!(grip.read_text(), "subscribed");
    grip_publish(
        s.admin(),
        r#"{"items":[{"channel":"news","ws-message":{"content":"missed"}},{"channel":"other","ws-message":{"content":"got"}}]}"#,
    );
    assert_eq!(grip.read_text(), "got");

    // Refusals say why.
    let r = grip_publish(s.admin(), r#"{"items":[{"ws-message":{"content":"x"}}]}"#);
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(r.contains("item 0: no \"channel\""), "{r}");
    let r = grip_publish(s.admin(), "{bad");
    assert_eq!(status_of(&r), 400, "{r}");
}

#[test]
fn a_detached_connection_still_gets_publishes() {
    let s = Setup::start(&[]);
    let (mut c, meta) = s.open("?channel=news", &[]);
    let cid = meta["cid"].as_str().unwrap().to_owned();
    c.send_text("detach");
    assert_eq!(c.read_text(), "detached");
    // Messages no longer go to the backend...
    c.send_text("are you there");
    assert_eq!(c.read_timeout(Duration::from_millis(300)), Read_::Timeout);
    // ...but publishes still come.
    grip_publish(
        s.admin(),
        r#"{"items":[{"channel":"news","ws-message":{"content":"still subscribed"}}]}"#,
    );
    assert_eq!(c.read_text(), "still subscribed");
    // The backend heard a CLOSE without a code when it detached, and
    // nothing of the client's own close.
    wait_until("the CLOSE of the detach", || {
        s.backend_log().contains(&format!("{cid} CLOSE -"))
    });
    c.send_close(4444, "");
    let _ = c.read_frame();
    std::thread::sleep(Duration::from_millis(200));
    let log = s.backend_log();
    assert_eq!(log.matches(&cid).count(), 1, "{log}");

    // A publish can close subscribers, as Pushpin's "action": "close".
    let (mut a, _) = s.open("?channel=kick", &[]);
    let (mut b, _) = s.open("?channel=kick", &[]);
    let r = grip_publish(
        s.admin(),
        r#"{"items":[{"channel":"kick","formats":{"ws-message":{"action":"close","code":4005,"reason":"kicked"}}}]}"#,
    );
    assert_eq!(status_of(&r), 200, "{r}");
    for c in [&mut a, &mut b] {
        let f = c.read_frame();
        assert_eq!(f.close_code(), Some(4005), "{f:?}");
        assert_eq!(&f.payload[2..], b"kicked");
    }
}

#[test]
fn grip_channels_span_processes_through_the_redis_bus() {
    let redis = RedisServer::start(None);
    let bus = redis.url("", 0);
    let a = Setup::start(&["--bus", &bus]);
    let b = Setup::start(&["--bus", &bus]);
    let (mut on_b, _) = b.open("?channel=cluster", &[]);
    // The subscription reaches Redis asynchronously: publish on A until
    // B's client hears one, then check that the next ones come in order.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        grip_publish(
            a.admin(),
            r#"{"items":[{"channel":"cluster","ws-message":{"content":"probe"}}]}"#,
        );
        match on_b.read_timeout(Duration::from_millis(200)) {
            Read_::Frame(f) if f.payload == b"probe" => break,
            Read_::Frame(f) => panic!("unexpected {f:?}"),
            _ => assert!(Instant::now() < deadline, "B never heard A's publish"),
        }
    }
    // Drain late probes, then the real ones.
    while let Read_::Frame(f) = on_b.read_timeout(Duration::from_millis(300)) {
        assert_eq!(f.payload, b"probe");
    }
    for i in 0..20 {
        let body =
            format!(r#"{{"items":[{{"channel":"cluster","ws-message":{{"content":"m{i}"}}}}]}}"#);
        assert_eq!(status_of(&grip_publish(a.admin(), &body)), 200);
    }
    for i in 0..20 {
        assert_eq!(on_b.read_text(), format!("m{i}"));
    }
}

#[test]
fn publish_ids_drop_repeats_and_prev_ids_keep_the_publishers_order() {
    let s = Setup::start(&[]);
    let (mut c, _) = s.open("?channel=ordered", &[]);
    let item = |id: &str, prev: Option<&str>| {
        let prev = prev.map_or(String::new(), |p| format!(r#","prev-id":"{p}""#));
        format!(
            r#"{{"items":[{{"channel":"ordered","id":"{id}"{prev},"formats":{{"ws-message":{{"content":"m{id}"}}}}}}]}}"#
        )
    };
    assert_eq!(status_of(&grip_publish(s.admin(), &item("1", None))), 200);
    assert_eq!(c.read_text(), "m1");
    // A repeat is dropped; 3 waits for 2, which releases it.
    assert_eq!(status_of(&grip_publish(s.admin(), &item("1", None))), 200);
    assert_eq!(
        status_of(&grip_publish(s.admin(), &item("3", Some("2")))),
        200
    );
    assert_eq!(c.read_timeout(Duration::from_millis(300)), Read_::Timeout);
    assert_eq!(
        status_of(&grip_publish(s.admin(), &item("2", Some("1")))),
        200
    );
    assert_eq!(c.read_text(), "m2");
    assert_eq!(c.read_text(), "m3");
    // An item whose predecessor never comes goes out after its wait.
    let started = Instant::now();
    grip_publish(s.admin(), &item("9", Some("8")));
    let f = c.read_timeout(Duration::from_secs(8));
    assert!(matches!(&f, Read_::Frame(f) if f.payload == b"m9"), "{f:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let m = s.metrics();
    assert_eq!(
        metric(&m, r#"sprocket_grip_publish_items_total{outcome="repeat"}"#),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"sprocket_grip_publish_items_total{outcome="unordered"}"#
        ),
        Some(1),
        "{m}"
    );
}

#[test]
fn backend_connections_bound_the_requests_in_flight() {
    // One connection to the backend: two connections' requests take turns.
    let s = Setup::start(&["--backend-connections", "1"]);
    let (mut a, _) = s.open("", &[]);
    let (mut b, _) = s.open("", &[]);
    let started = Instant::now();
    a.send_text("nap");
    b.send_text("nap");
    assert_eq!(a.read_text(), "echo:nap");
    assert_eq!(b.read_text(), "echo:nap");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "two 0.5 s requests over one backend connection took {took:?}"
    );
}

#[test]
fn a_backend_may_name_another_message_prefix() {
    let s = Setup::start(&[]);
    // grip; message-prefix="": messages go as they are; c: is still a
    // control message (the subscription to ?channel= works).
    let (mut c, meta) = s.open("?prefix=none&channel=bare", &[]);
    assert!(meta["cid"].is_string(), "{meta}");
    assert_eq!(c.read_text(), "no prefix needed");
    let body = r#"{"items":[{"channel":"bare","ws-message":{"content":"published"}}]}"#;
    assert_eq!(status_of(&grip_publish(s.admin(), body)), 200);
    assert_eq!(c.read_text(), "published");
    // With the default prefix, an unprefixed message is dropped and
    // counted; the m: one after it arrives.
    let (mut d, _) = s.open("", &[]);
    d.send_text("raw");
    assert_eq!(d.read_text(), "after");
    let m = s.metrics();
    assert_eq!(
        metric(&m, r#"sprocket_grip_messages_total{outcome="unprefixed"}"#),
        Some(1),
        "{m}"
    );
}
