//! The Pusher server's answers to bad input and its limits, with a raw
//! client (tests/pusher/ drives it with the real pusher-js and Echo).

mod common;
use common::*;
use serde_json::{Value, json};
use sprocket::app::{PusherApp, PusherLimits, PusherServer, Router};
use sprocket::pusher::auth;
use std::time::{Duration, Instant};

const KEY: &str = "k1";
const SECRET: &str = "s1";

fn server(limits: PusherLimits) -> TestServer {
    TestServer::start(sprocket::Config::default(), move || {
        let mut app = PusherApp::parse(&format!("7:{KEY}:{SECRET}")).unwrap();
        app.limits = limits;
        Router::new().prefixes(&["/app/", "/apps/"], PusherServer::new(vec![app]))
    })
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A connected client and its socket id.
fn connect(s: &TestServer) -> (Client, String) {
    let mut c = s.client(&format!("/app/{KEY}?protocol=7"));
    let hello = json_of(&c.read_text());
    assert_eq!(hello["event"], "pusher:connection_established");
    let data = json_of(hello["data"].as_str().unwrap());
    (c, data["socket_id"].as_str().unwrap().to_owned())
}

fn send(c: &mut Client, msg: Value) {
    c.send_text(&msg.to_string());
}

fn next(c: &mut Client) -> Value {
    json_of(&c.read_text())
}

fn subscribe_private(c: &mut Client, socket: &str, channel: &str) {
    let auth = auth::channel_auth(KEY, SECRET, socket, channel, None);
    send(
        c,
        json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}}),
    );
    let m = next(c);
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
}

#[test]
fn malformed_messages_get_pusher_error_and_the_connection_stays() {
    let s = server(PusherLimits::default());
    let (mut c, _) = connect(&s);
    for bad in [
        "not json",
        "[1,2]",
        r#"{"no":"event"}"#,
        r#"{"event":"pusher:subscribe","data":{}}"#,
    ] {
        c.send_text(bad);
        let m = next(&mut c);
        assert_eq!(m["event"], "pusher:error", "{bad}: {m}");
        assert_eq!(m["data"]["code"], Value::Null, "{bad}: {m}");
    }
    c.send_binary(b"\x00\x01");
    assert_eq!(next(&mut c)["event"], "pusher:error");
    send(&mut c, json!({"event": "pusher:ping", "data": {}}));
    assert_eq!(next(&mut c)["event"], "pusher:pong");
}

#[test]
fn subscriptions_refused_with_their_reason_on_the_channel() {
    let s = server(PusherLimits::default());
    let (mut c, socket) = connect(&s);
    let cases = [
        (json!({"channel": "private-x"}), "AuthError", 401),
        (
            json!({"channel": "private-x", "auth": "k1:00"}),
            "AuthError",
            401,
        ),
        (
            json!({"channel": "private-x", "auth": auth::channel_auth(KEY, SECRET, "1.1", "private-x", None)}),
            "AuthError",
            401,
        ),
        (json!({"channel": "a b"}), "InvalidChannel", 400),
        (json!({"channel": "x".repeat(201)}), "InvalidChannel", 400),
        (json!({"channel": "#server-to-user-9"}), "AuthError", 403),
        (
            json!({"channel": "presence-r", "auth": auth::channel_auth(KEY, SECRET, &socket, "presence-r", None)}),
            "AuthError",
            401,
        ),
    ];
    for (data, kind, status) in cases {
        send(&mut c, json!({"event": "pusher:subscribe", "data": data}));
        let m = next(&mut c);
        assert_eq!(m["event"], "pusher:subscription_error", "{data}: {m}");
        assert_eq!(m["data"]["type"], kind, "{data}: {m}");
        assert_eq!(m["data"]["status"], status, "{data}: {m}");
    }
    // Still connected, and a good subscription works.
    subscribe_private(&mut c, &socket, "private-x");
}

#[test]
fn client_events_are_limited_per_second_and_by_size() {
    let s = server(PusherLimits::default());
    let (mut a, sa) = connect(&s);
    let (mut b, sb) = connect(&s);
    subscribe_private(&mut a, &sa, "private-room");
    subscribe_private(&mut b, &sb, "private-room");
    let started = Instant::now();
    for i in 0..11 {
        send(
            &mut a,
            json!({"event": "client-n", "channel": "private-room", "data": {"i": i}}),
        );
    }
    let refused = next(&mut a);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the test was too slow to mean anything"
    );
    assert_eq!(refused["event"], "pusher:error");
    assert_eq!(refused["data"]["code"], 4301, "{refused}");
    for i in 0..10 {
        let m = next(&mut b);
        assert_eq!(m["data"]["i"], i, "{m}");
    }
    assert_eq!(b.read_timeout(Duration::from_millis(200)), Read_::Timeout);

    let big = "x".repeat(10 * 1024);
    std::thread::sleep(Duration::from_millis(1100));
    send(
        &mut b,
        json!({"event": "client-big", "channel": "private-room", "data": big}),
    );
    let m = next(&mut b);
    assert!(
        m["data"]["message"].as_str().unwrap().contains("bytes"),
        "{m}"
    );
    assert_eq!(a.read_timeout(Duration::from_millis(200)), Read_::Timeout);
}

#[test]
fn presence_channels_have_a_member_limit() {
    let limits = PusherLimits {
        max_presence_members: 2,
        ..PusherLimits::default()
    };
    let s = server(limits);
    let mut held = Vec::new();
    for user in ["u1", "u2", "u1", "u3"] {
        let (mut c, socket) = connect(&s);
        let data = json!({"user_id": user}).to_string();
        let auth = auth::channel_auth(KEY, SECRET, &socket, "presence-r", Some(&data));
        send(
            &mut c,
            json!({"event": "pusher:subscribe", "data": {"channel": "presence-r", "auth": auth, "channel_data": data}}),
        );
        let m = loop {
            let m = next(&mut c);
            if m["event"] != "pusher_internal:member_added" {
                break m;
            }
        };
        if user == "u3" {
            assert_eq!(m["event"], "pusher:subscription_error", "{m}");
            assert_eq!(m["data"]["type"], "LimitReached", "{m}");
        } else {
            // A second socket of u1 is no new member.
            assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
        }
        held.push(c);
    }
}

#[test]
fn a_silent_client_is_pinged_then_closed_with_4201() {
    let limits = PusherLimits {
        activity_timeout: 1,
        pong_timeout: Duration::from_secs(1),
        ..PusherLimits::default()
    };
    let s = server(limits);
    let (mut c, _) = connect(&s);
    let started = Instant::now();
    let ping = next(&mut c);
    assert_eq!(ping["event"], "pusher:ping");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Answering keeps it open: pinged again a second later.
    send(&mut c, json!({"event": "pusher:pong", "data": {}}));
    assert_eq!(next(&mut c)["event"], "pusher:ping");
    // Not answering closes it.
    let started = Instant::now();
    c.answer_close(4201);
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Sends a WebSocket control frame (`first`: 0x89 ping, 0x8A pong) every
/// 250 ms for `for_`, reading what comes back: the data frames seen (the
/// server's pongs to our pings are skipped).
fn keep_alive_with_frames(c: &mut Client, first: u8, for_: Duration) -> Vec<WsFrame> {
    let until = Instant::now() + for_;
    let mut seen = Vec::new();
    while Instant::now() < until {
        c.send_frame(first, b"hi");
        loop {
            match c.read_timeout(Duration::from_millis(250)) {
                Read_::Frame(f) if f.opcode == 10 => assert_eq!(f.payload, b"hi"),
                Read_::Frame(f) => seen.push(f),
                Read_::Timeout => break,
                Read_::Eof => panic!("the server closed the connection"),
            }
        }
    }
    seen
}

#[test]
fn websocket_ping_and_pong_frames_count_as_activity() {
    let limits = PusherLimits {
        activity_timeout: 1,
        pong_timeout: Duration::from_secs(1),
        ..PusherLimits::default()
    };
    let s = server(limits);
    let (pinger, _) = connect(&s);
    let (ponger, _) = connect(&s);
    let (mut silent, _) = connect(&s);
    // Four activity timeouts with only control frames: never pinged, and
    // still open at the end (a `pusher:ping` is answered).
    let keep = |mut c: Client, first: u8| {
        std::thread::spawn(move || {
            let seen = keep_alive_with_frames(&mut c, first, Duration::from_secs(4));
            send(&mut c, json!({"event": "pusher:ping", "data": {}}));
            (seen, next(&mut c))
        })
    };
    let pinger = keep(pinger, 0x89);
    let ponger = keep(ponger, 0x8A);
    // Meanwhile a silent one is pinged (the timeout is live)...
    assert_eq!(next(&mut silent)["event"], "pusher:ping");
    // ...and a WebSocket ping answers that as well as `pusher:pong` does:
    // no 4201 for as long as the frames keep coming.
    let seen = keep_alive_with_frames(&mut silent, 0x89, Duration::from_secs(3));
    assert!(seen.is_empty(), "{seen:?}");
    // Once they stop, the server pings again, then closes.
    assert_eq!(next(&mut silent)["event"], "pusher:ping");
    silent.answer_close(4201);
    for (what, t) in [("pings", pinger), ("pongs", ponger)] {
        let (seen, answer) = t.join().unwrap();
        assert!(seen.is_empty(), "a client sending {what} got {seen:?}");
        assert_eq!(answer["event"], "pusher:pong", "{what}");
    }
}

#[test]
fn wrong_keys_and_versions_close_with_the_protocol_codes() {
    let s = server(PusherLimits::default());
    for (path, code) in [
        ("/app/nope?protocol=7", 4001),
        (&format!("/app/{KEY}") as &str, 4008),
        (&format!("/app/{KEY}?protocol=x"), 4006),
        (&format!("/app/{KEY}?protocol=4"), 4007),
    ] {
        let mut c = s.client(path);
        let m = next(&mut c);
        assert_eq!(m["event"], "pusher:error", "{path}");
        assert_eq!(m["data"]["code"], code, "{path}: {m}");
        c.answer_close(code);
    }
}

#[test]
fn the_http_api_refuses_unsigned_and_unknown() {
    let s = server(PusherLimits::default());
    let post = |path: &str, body: &str| {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        http_exchange(s.addr, raw.as_bytes())
    };
    let r = post("/apps/7/events", r#"{"name":"e","channel":"a","data":"1"}"#);
    assert_eq!(status_of(&r), 401, "{r}");
    assert!(r.contains("auth_key parameter is required"), "{r}");
    let r = post("/apps/8/events", "{}");
    assert_eq!(status_of(&r), 404, "{r}");
    assert!(r.contains("unknown app id"), "{r}");

    // Signed, but a bad body: 400 with the reason; data too large: 413.
    let signed = |path: &str, body: &str| post_signed(&s, KEY, SECRET, path, body);
    let r = signed("/apps/7/events", r#"{"name":"e","data":"1"}"#);
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(r.contains("channels"), "{r}");
    let big = format!(
        r#"{{"name":"e","channel":"a","data":"{}"}}"#,
        "x".repeat(10 * 1024 + 1)
    );
    assert_eq!(status_of(&signed("/apps/7/events", &big)), 413);
    let r = signed("/apps/7/events", r#"{"name":"e","channel":"a","data":"1"}"#);
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.ends_with("{}"), "{r}");
}

#[test]
fn an_app_keeps_its_own_origins_and_client_event_setting() {
    let s = TestServer::start(sprocket::Config::default(), move || {
        let mut strict = PusherApp::parse(&format!("7:{KEY}:{SECRET}")).unwrap();
        strict.client_events = false;
        strict.allowed_origins = vec!["https://app.example.com".into()];
        let open = PusherApp::parse("8:k2:s2").unwrap();
        Router::new().prefixes(&["/app/", "/apps/"], PusherServer::new(vec![strict, open]))
    });
    let path = format!("/app/{KEY}?protocol=7");
    // Another page's origin, and none at all: 4009, then the close.
    for extra in [&[("Origin", "https://evil.example")][..], &[]] {
        let mut c = Client::connect(s.addr, &path, extra);
        let m = next(&mut c);
        assert_eq!(m["event"], "pusher:error", "{extra:?}");
        assert_eq!(m["data"]["code"], 4009, "{extra:?}: {m}");
        c.answer_close(4009);
    }
    // The app's own page connects; its client events are refused and
    // reach nobody.
    let origin = [("Origin", "https://app.example.com")];
    let hello = |c: &mut Client| {
        let m = next(c);
        assert_eq!(m["event"], "pusher:connection_established", "{m}");
        json_of(m["data"].as_str().unwrap())["socket_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut a = Client::connect(s.addr, &path, &origin);
    let sa = hello(&mut a);
    let mut b = Client::connect(s.addr, &path, &origin);
    let sb = hello(&mut b);
    subscribe_private(&mut a, &sa, "private-room");
    subscribe_private(&mut b, &sb, "private-room");
    send(
        &mut a,
        json!({"event": "client-n", "channel": "private-room", "data": {}}),
    );
    let refused = next(&mut a);
    assert_eq!(refused["event"], "pusher:error", "{refused}");
    assert!(
        refused["data"]["message"]
            .as_str()
            .unwrap()
            .contains("not enabled"),
        "{refused}"
    );
    assert_eq!(b.read_timeout(Duration::from_millis(200)), Read_::Timeout);
    // The other app takes any origin.
    let mut c = Client::connect(
        s.addr,
        "/app/k2?protocol=7",
        &[("Origin", "https://evil.example")],
    );
    hello(&mut c);
}

/// POSTs a signed trigger of `data` to app `id` (key and secret given).
fn trigger(s: &TestServer, id: &str, key: &str, secret: &str, data: &str) -> String {
    let body = json!({"name": "e", "channel": "c", "data": data}).to_string();
    post_signed(s, key, secret, &format!("/apps/{id}/events"), &body)
}

/// POSTs `body` to `path`, signed with `key` and `secret`.
fn post_signed(s: &TestServer, key: &str, secret: &str, path: &str, body: &str) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let md5 = auth::body_md5(body.as_bytes());
    let query = format!("auth_key={key}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}");
    let sig = auth::sign(secret, &[format!("POST\n{path}\n{query}").as_bytes()]);
    let raw = format!(
        "POST {path}?{query}&auth_signature={sig} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_exchange(s.addr, raw.as_bytes())
}

#[test]
fn each_app_has_its_own_limits() {
    let s = TestServer::start(sprocket::Config::default(), move || {
        let mut small = PusherApp::parse(&format!("7:{KEY}:{SECRET}")).unwrap();
        small.limits = PusherLimits {
            max_connections: Some(2),
            max_client_event: 200,
            activity_timeout: 9,
            ..PusherLimits::default()
        };
        small.limits.api.max_data = 100;
        let big = PusherApp::parse("8:k2:s2").unwrap();
        Router::new().prefixes(&["/app/", "/apps/"], PusherServer::new(vec![small, big]))
    });
    // Its activity timeout is what its clients are told.
    let mut c = s.client(&format!("/app/{KEY}?protocol=7"));
    let hello = next(&mut c);
    let data = json_of(hello["data"].as_str().unwrap());
    assert_eq!(data["activity_timeout"], 9, "{hello}");
    let socket = data["socket_id"].as_str().unwrap().to_owned();
    let (mut d, sd) = connect(&s);
    // A third connection is over the quota: 4004, then the close.
    let mut third = s.client(&format!("/app/{KEY}?protocol=7"));
    let m = next(&mut third);
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert_eq!(m["data"]["code"], 4004, "{m}");
    third.answer_close(4004);
    // The other app has no quota and the default timeout.
    let others: Vec<Client> = (0..3)
        .map(|_| {
            let mut o = s.client("/app/k2?protocol=7");
            let m = next(&mut o);
            assert_eq!(m["event"], "pusher:connection_established", "{m}");
            assert_eq!(
                json_of(m["data"].as_str().unwrap())["activity_timeout"],
                120
            );
            o
        })
        .collect();
    // Client events over the app's 200 bytes are refused; under, they go.
    subscribe_private(&mut c, &socket, "private-room");
    subscribe_private(&mut d, &sd, "private-room");
    send(
        &mut c,
        json!({"event": "client-big", "channel": "private-room", "data": "x".repeat(200)}),
    );
    let m = next(&mut c);
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert!(
        m["data"]["message"].as_str().unwrap().contains("200 bytes"),
        "{m}"
    );
    send(
        &mut c,
        json!({"event": "client-small", "channel": "private-room", "data": "x".repeat(100)}),
    );
    assert_eq!(next(&mut d)["event"], "client-small");
    // The API takes 100 bytes of data for this app, 10 KiB for the other.
    let r = trigger(&s, "7", KEY, SECRET, &"y".repeat(101));
    assert_eq!(status_of(&r), 413, "{r}");
    assert_eq!(
        status_of(&trigger(&s, "7", KEY, SECRET, &"y".repeat(100))),
        200
    );
    assert_eq!(
        status_of(&trigger(&s, "8", "k2", "s2", &"y".repeat(101))),
        200
    );
    // A closed connection frees its place in the quota.
    d.send_close(1000, "");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = s.client(&format!("/app/{KEY}?protocol=7"));
        let m = next(&mut again);
        if m["event"] == "pusher:connection_established" {
            break;
        }
        assert_eq!(m["data"]["code"], 4004, "{m}");
        assert!(Instant::now() < deadline, "the quota was not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(others);
}

#[test]
fn trigger_answers_carry_the_attributes_asked_of_each_channel() {
    let s = server(PusherLimits::default());
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut c, _) = connect(&s);
        send(
            &mut c,
            json!({"event": "pusher:subscribe", "data": {"channel": "room"}}),
        );
        assert_eq!(
            next(&mut c)["event"],
            "pusher_internal:subscription_succeeded"
        );
        held.push(c);
    }
    let body_of = |r: String| json_of(r.split_once("\r\n\r\n").map_or("", |(_, b)| b));
    // One event: per channel; user_count is for presence channels only.
    let one = json!({"name": "e", "channels": ["room", "empty"], "data": "1",
                     "info": "subscription_count,user_count"});
    let r = post_signed(&s, KEY, SECRET, "/apps/7/events", &one.to_string());
    assert_eq!(
        body_of(r),
        json!({"channels": {"room": {"subscription_count": 2}, "empty": {"subscription_count": 0}}})
    );
    // A batch: the attributes of each event's channel, {} without info.
    let batch = json!({"batch": [
        {"name": "e", "channel": "room", "data": "1", "info": "subscription_count"},
        {"name": "e", "channel": "room", "data": "2"},
        {"name": "e", "channel": "presence-x", "data": "3", "info": "user_count"},
    ]});
    let r = post_signed(&s, KEY, SECRET, "/apps/7/batch_events", &batch.to_string());
    assert_eq!(
        body_of(r),
        json!({"batch": [{"subscription_count": 2}, {}, {"user_count": 0}]})
    );
    // Without info: {}.
    let plain = json!({"name": "e", "channel": "room", "data": "1"});
    let r = post_signed(&s, KEY, SECRET, "/apps/7/events", &plain.to_string());
    assert_eq!(body_of(r), json!({}));
    drop(held);
}

#[test]
fn under_a_path_prefix_both_sides_move() {
    let s = TestServer::start(sprocket::Config::default(), move || {
        let app = PusherApp::parse(&format!("7:{KEY}:{SECRET}")).unwrap();
        let pusher = PusherServer::new(vec![app]).path_prefix("/ws");
        let [ws, api] = pusher.paths();
        assert_eq!([ws.as_str(), api.as_str()], ["/ws/app/", "/ws/apps/"]);
        Router::new().prefixes(&[&ws, &api], pusher)
    });
    let mut c = s.client(&format!("/ws/app/{KEY}?protocol=7"));
    let hello = next(&mut c);
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    send(
        &mut c,
        json!({"event": "pusher:subscribe", "data": {"channel": "news"}}),
    );
    assert_eq!(
        next(&mut c)["event"],
        "pusher_internal:subscription_succeeded"
    );
    // The API is signed over its whole path, prefix and all.
    let body = json!({"name": "e", "channel": "news", "data": "hi"}).to_string();
    let r = post_signed(&s, KEY, SECRET, "/ws/apps/7/events", &body);
    assert_eq!(status_of(&r), 200, "{r}");
    let m = next(&mut c);
    assert_eq!(
        (&m["event"], &m["data"]),
        (&json!("e"), &json!("hi")),
        "{m}"
    );
    // The unprefixed paths are not this server's.
    let r = post_signed(&s, KEY, SECRET, "/apps/7/events", &body);
    assert_eq!(status_of(&r), 404, "{r}");
    let refused = Client::try_connect(s.addr, &format!("/app/{KEY}?protocol=7"), &[]);
    assert!(
        !refused.response.starts_with("HTTP/1.1 101 "),
        "{}",
        refused.response
    );
}

#[test]
fn a_shutdown_closes_with_4200_so_clients_reconnect_at_once() {
    let s = server(PusherLimits::default());
    let (mut c, _) = connect(&s);
    let stopper = std::thread::spawn(move || {
        let mut s = s;
        s.stop();
    });
    c.answer_close(4200);
    stopper.join().unwrap();
}
