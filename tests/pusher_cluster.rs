//! Pusher apps across processes: two sprocket binaries on one real
//! `redis-server` (`--bus`), the same `--pusher-app`, raw WebSocket
//! clients. Members are counted per user cluster-wide, the HTTP API sums
//! subscribers and lists channels over processes, a cache channel's last
//! event is the cluster's, `channel_occupied`/`channel_vacated` go once
//! per cluster, and a killed process's members and subscribers stop
//! counting within the heartbeat TTL (`docs/pusher.md`, "Across
//! processes").

mod common;
use common::binary;
use common::services::RedisServer;
use common::*;
use serde_json::{Value, json};
use sprocket::pusher::auth;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const KEY: &str = "k1";
const SECRET: &str = "s1";
const ROOM: &str = "presence-room";

fn node(bus: &str) -> binary::Running {
    let app = format!("7:{KEY}:{SECRET}");
    binary::spawn(BIN.as_ref(), &["--bus", bus, "--pusher-app", &app], &[])
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn next(c: &mut Client) -> Value {
    json_of(&c.read_text())
}

/// Nothing arrives on `c` within `wait` (a message is a failure).
fn quiet(c: &mut Client, wait: Duration, what: &str) {
    match c.read_timeout(wait) {
        Read_::Timeout => {}
        Read_::Frame(f) => panic!("{what}: unexpected {:?}", f.text()),
        Read_::Eof => panic!("{what}: the connection closed"),
    }
}

/// A client of `addr` joined to [`ROOM`] as `user`: its
/// `subscription_succeeded` presence data.
fn join(addr: SocketAddr, user: &str) -> (Client, Value) {
    let mut c = Client::connect(addr, &format!("/app/{KEY}?protocol=7"), &[]);
    let hello = next(&mut c);
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data = json_of(hello["data"].as_str().unwrap());
    let socket = data["socket_id"].as_str().unwrap().to_owned();
    let channel_data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
    let sig = auth::channel_auth(KEY, SECRET, &socket, ROOM, Some(&channel_data));
    c.send_text(
        &json!({"event": "pusher:subscribe",
                "data": {"channel": ROOM, "auth": sig, "channel_data": channel_data}})
        .to_string(),
    );
    let m = next(&mut c);
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
    let data = json_of(m["data"].as_str().unwrap());
    (c, data["presence"].clone())
}

/// The next message on `c` is `event` for `user`.
fn expect_member(c: &mut Client, event: &str, user: &str) {
    let m = next(c);
    assert_eq!(m["event"], event, "{m}");
    let data = json_of(m["data"].as_str().unwrap());
    assert_eq!(data["user_id"], user, "{m}");
}

/// A signed GET of the HTTP API: its JSON body.
/// `extra` is the rest of the query, sorted (it follows `auth_version`).
fn api_get(addr: SocketAddr, path: &str, extra: Option<&str>) -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut query = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0");
    if let Some(extra) = extra {
        query.push_str(&format!("&{extra}"));
    }
    let sig = auth::sign(SECRET, &[format!("GET\n{path}\n{query}").as_bytes()]);
    let raw = format!("GET {path}?{query}&auth_signature={sig} HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = http_exchange(addr, raw.as_bytes());
    assert_eq!(status_of(&resp), 200, "{resp}");
    json_of(resp.split_once("\r\n\r\n").map_or("", |(_, b)| b))
}

fn ids(presence: &Value) -> Vec<String> {
    let mut ids: Vec<String> = presence["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn users(addr: SocketAddr) -> Vec<String> {
    let v = api_get(addr, &format!("/apps/7/channels/{ROOM}/users"), None);
    let mut ids: Vec<String> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The bus and the members' topic subscriptions reach Redis a moment
/// after the join.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn presence_members_and_counts_span_processes_and_a_killed_process_leaves() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let p1 = node(&url);
    let mut p2 = node(&url);
    settle();

    // A on process 1, then B on process 2: each sees the other.
    let (mut a1, presence) = join(p1.addr, "a");
    assert_eq!(ids(&presence), ["a"], "{presence}");
    settle();
    let (mut b, presence) = join(p2.addr, "b");
    assert_eq!(ids(&presence), ["a", "b"], "{presence}");
    assert_eq!(presence["count"], 2, "{presence}");
    assert_eq!(presence["hash"]["a"], json!({"name": "a"}), "{presence}");
    expect_member(&mut a1, "pusher_internal:member_added", "b");

    // A second socket of A, on process 2: no second member_added anywhere.
    settle();
    let (mut a2, presence) = join(p2.addr, "a");
    assert_eq!(ids(&presence), ["a", "b"], "{presence}");
    quiet(
        &mut b,
        Duration::from_millis(500),
        "B after A's second socket",
    );
    quiet(
        &mut a1,
        Duration::from_millis(100),
        "A1 after A's second socket",
    );

    // Channel info and users from either process: the cluster's.
    for addr in [p1.addr, p2.addr] {
        let info = api_get(
            addr,
            &format!("/apps/7/channels/{ROOM}"),
            Some("info=user_count"),
        );
        assert_eq!(info["user_count"], 2, "{addr}: {info}");
        assert_eq!(info["occupied"], true, "{addr}: {info}");
        assert_eq!(users(addr), ["a", "b"], "{addr}");
        let list = api_get(
            addr,
            "/apps/7/channels",
            Some("filter_by_prefix=presence-&info=user_count"),
        );
        assert_eq!(list["channels"][ROOM]["user_count"], 2, "{addr}: {list}");
    }

    // A's sockets close one by one: one member_removed, after the last.
    a1.send_close(1000, "");
    drop(a1);
    quiet(
        &mut b,
        Duration::from_millis(500),
        "B after A's first socket left",
    );
    quiet(
        &mut a2,
        Duration::from_millis(100),
        "A2 after A's first socket left",
    );
    a2.send_close(1000, "");
    drop(a2);
    expect_member(&mut b, "pusher_internal:member_removed", "a");
    settle();
    assert_eq!(users(p1.addr), ["b"], "process 1 has no subscriber left");
    assert_eq!(users(p2.addr), ["b"]);
    let info = api_get(
        p1.addr,
        &format!("/apps/7/channels/{ROOM}"),
        Some("info=user_count"),
    );
    assert_eq!(info["user_count"], 1, "{info}");
    assert_eq!(info["occupied"], true, "{info}");

    // C on process 1 sees B; process 2 is killed (-9): B leaves within
    // the heartbeat TTL (15 s) and the next liveness check (5 s).
    let (mut c, presence) = join(p1.addr, "c");
    assert_eq!(ids(&presence), ["b", "c"], "{presence}");
    p2.child.kill().expect("kill -9 process 2");
    let _ = p2.child.wait();
    let killed = Instant::now();
    match c.read_timeout(Duration::from_secs(25)) {
        Read_::Frame(f) => {
            let m = json_of(f.text());
            assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
            assert_eq!(json_of(m["data"].as_str().unwrap())["user_id"], "b", "{m}");
        }
        other => panic!(
            "B did not leave within 25 s of the kill (closed: {})",
            matches!(other, Read_::Eof)
        ),
    }
    eprintln!("B left {:?} after the kill", killed.elapsed());
    assert_eq!(users(p1.addr), ["c"]);
    // ...and Redis no longer holds B.
    let fields = redis.cli(&["HKEYS", &format!("sprocket:pusher-presence:7:{ROOM}")]);
    assert!(!fields.contains(" b"), "{fields}");
    assert!(fields.contains(" c"), "{fields}");
}

fn node_with_webhook(bus: &str, hook: &str) -> binary::Running {
    let app = format!("7:{KEY}:{SECRET}");
    binary::spawn(
        BIN.as_ref(),
        &["--bus", bus, "--pusher-app", &app, "--pusher-webhook", hook],
        &[],
    )
}

/// A webhook endpoint: every event of every POST it gets (answered 204),
/// as `(name, channel)`, on the receiver.
fn webhook_endpoint() -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end().to_ascii_lowercase();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    for e in v["events"].as_array().unwrap() {
                        let name = e["name"].as_str().unwrap().to_owned();
                        let channel = e["channel"].as_str().unwrap().to_owned();
                        if tx.send((name, channel)).is_err() {
                            return;
                        }
                    }
                    let ok = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
                    if writer.write_all(ok).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

/// The webhook events of `channel` that arrive within `wait`.
fn hooks_of(rx: &mpsc::Receiver<(String, String)>, channel: &str, wait: Duration) -> Vec<String> {
    let until = Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((name, ch)) if ch == channel => out.push(name),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// A client of `addr` subscribed to the public `channel`: the client and
/// the message after `subscription_succeeded`, if one comes within 300 ms.
fn subscribe(addr: SocketAddr, channel: &str) -> (Client, Option<Value>) {
    let mut c = Client::connect(addr, &format!("/app/{KEY}?protocol=7"), &[]);
    assert_eq!(next(&mut c)["event"], "pusher:connection_established");
    c.send_text(&json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string());
    let m = next(&mut c);
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
    let after = match c.read_timeout(Duration::from_millis(300)) {
        Read_::Frame(f) => Some(json_of(f.text())),
        _ => None,
    };
    (c, after)
}

/// A signed trigger of event `e` with `data` on `channel`, through `addr`.
fn trigger(addr: SocketAddr, channel: &str, data: &str) {
    let body = json!({"name": "e", "channel": channel, "data": data}).to_string();
    post(addr, "/apps/7/events", &body);
}

/// A signed POST of `body` to `path`: the JSON answered.
fn post(addr: SocketAddr, path: &str, body: &str) -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let md5 = auth::body_md5(body.as_bytes());
    let query = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}");
    let sig = auth::sign(SECRET, &[format!("POST\n{path}\n{query}").as_bytes()]);
    let raw = format!(
        "POST {path}?{query}&auth_signature={sig} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = http_exchange(addr, raw.as_bytes());
    assert_eq!(status_of(&resp), 200, "{resp}");
    json_of(resp.split_once("\r\n\r\n").map_or("", |(_, b)| b))
}

fn subscription_count(addr: SocketAddr, channel: &str) -> (Value, Value) {
    let info = api_get(
        addr,
        &format!("/apps/7/channels/{channel}"),
        Some("info=subscription_count"),
    );
    (info["subscription_count"].clone(), info["occupied"].clone())
}

#[test]
fn counts_channels_cache_and_webhooks_are_the_clusters() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let (hook, hooks) = webhook_endpoint();
    let p1 = node_with_webhook(&url, &hook);
    let mut p2 = node_with_webhook(&url, &hook);
    settle();

    // One subscriber of "room" on process 1, two on process 2: one
    // channel_occupied for the cluster; either process counts three
    // (a count that is not the first is written within a second).
    let (a, _) = subscribe(p1.addr, "room");
    let (b1, _) = subscribe(p2.addr, "room");
    let (b2, _) = subscribe(p2.addr, "room");
    let (only2, _) = subscribe(p2.addr, "only-on-2");
    std::thread::sleep(Duration::from_millis(1500));
    for addr in [p1.addr, p2.addr] {
        assert_eq!(subscription_count(addr, "room"), (json!(3), json!(true)));
        let list = api_get(addr, "/apps/7/channels", None);
        let mut names: Vec<&String> = list["channels"].as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["only-on-2", "room"], "{addr}: {list}");
    }
    assert_eq!(
        subscription_count(p1.addr, "nobody"),
        (json!(0), json!(false))
    );
    // A trigger's info counts the cluster's subscribers too.
    let one = json!({"name": "e", "channel": "room", "data": "x", "info": "subscription_count"});
    assert_eq!(
        post(p1.addr, "/apps/7/events", &one.to_string()),
        json!({"channels": {"room": {"subscription_count": 3}}})
    );
    let batch = json!({"batch": [one, {"name": "e", "channel": "only-on-2", "data": "y"}]});
    assert_eq!(
        post(p1.addr, "/apps/7/batch_events", &batch.to_string()),
        json!({"batch": [{"subscription_count": 3}, {}]})
    );
    assert_eq!(
        hooks_of(&hooks, "room", Duration::from_millis(500)),
        ["channel_occupied"]
    );

    // The subscribers leave: on process 1 first (process 2 still has
    // two), then process 2's. One channel_vacated, after the wait.
    drop((a, b1));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(subscription_count(p1.addr, "room"), (json!(1), json!(true)));
    drop(b2);
    let vacated_at = Instant::now();
    assert_eq!(
        hooks_of(&hooks, "room", Duration::from_secs(5)),
        ["channel_vacated"]
    );
    assert!(vacated_at.elapsed() > Duration::from_secs(2));
    assert_eq!(
        subscription_count(p2.addr, "room"),
        (json!(0), json!(false))
    );

    // Leaving one process and arriving on the other within the wait: no
    // webhook at all (the arrival calls the vacating off).
    let (flip, _) = subscribe(p1.addr, "flip");
    assert_eq!(
        hooks_of(&hooks, "flip", Duration::from_millis(800)),
        ["channel_occupied"]
    );
    drop(flip);
    std::thread::sleep(Duration::from_millis(500));
    let (flop, _) = subscribe(p2.addr, "flip");
    assert_eq!(
        hooks_of(&hooks, "flip", Duration::from_secs(5)),
        [] as [&str; 0]
    );

    // A cache channel's last event, triggered on process 1 with nobody
    // subscribed anywhere, reaches a new subscriber on process 2.
    let (_, missed) = subscribe(p2.addr, "cache-news");
    assert_eq!(missed.unwrap()["event"], "pusher:cache_miss");
    trigger(p1.addr, "cache-fresh", "first");
    trigger(p1.addr, "cache-fresh", "latest");
    let (_, last) = subscribe(p2.addr, "cache-fresh");
    let last = last.expect("the cached event");
    assert_eq!(
        (&last["event"], &last["data"]),
        (&json!("e"), &json!("latest")),
        "{last}"
    );

    // Process 2 is killed (-9): its subscribers stop counting once its
    // liveness key expires (15 s), and its channels leave the list.
    p2.child.kill().expect("kill -9 process 2");
    let _ = p2.child.wait();
    drop((only2, flop));
    let killed = Instant::now();
    loop {
        let (n, _) = subscription_count(p1.addr, "only-on-2");
        if n == json!(0) {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(25), "still {n}");
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "process 2's subscribers stopped counting {:?} after the kill",
        killed.elapsed()
    );
    let list = api_get(p1.addr, "/apps/7/channels", None);
    assert_eq!(list["channels"], json!({}), "{list}");
}

#[test]
fn a_redis_outage_delays_nothing_for_long_and_is_answered() {
    let mut redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let (hook, hooks) = webhook_endpoint();
    let p = node_with_webhook(&url, &hook);
    settle();
    redis.kill();
    settle();
    // A cache channel's subscription waits for Redis at most a few
    // seconds, then goes on with this process's view: a cache miss.
    let asked = Instant::now();
    let (c, after) = subscribe(p.addr, "cache-x");
    assert_eq!(after.unwrap()["event"], "pusher:cache_miss");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    // The occupied webhook goes as this process sees it.
    let mut sent = hooks_of(&hooks, "cache-x", Duration::from_secs(5));
    sent.sort();
    assert_eq!(sent, ["cache_miss", "channel_occupied"]);
    // The channel's counts cannot be known: 503 with a reason, soon.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (path, query) = (
        "/apps/7/channels/cache-x",
        format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0"),
    );
    let sig = auth::sign(SECRET, &[format!("GET\n{path}\n{query}").as_bytes()]);
    let raw = format!("GET {path}?{query}&auth_signature={sig} HTTP/1.1\r\nHost: x\r\n\r\n");
    let asked = Instant::now();
    let resp = http_exchange(p.addr, raw.as_bytes());
    assert_eq!(status_of(&resp), 503, "{resp}");
    assert!(
        resp.contains("the cluster's counts are unreachable"),
        "{resp}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    // A trigger still publishes and answers, with this process's counts.
    let one = json!({"name": "e", "channel": "cache-x", "data": "x", "info": "subscription_count"});
    assert_eq!(
        post(p.addr, "/apps/7/events", &one.to_string()),
        json!({"channels": {"cache-x": {"subscription_count": 1}}})
    );
    drop(c);
}

#[test]
fn an_apps_connection_quota_counts_every_process() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let app = format!(r#"{{ id = "7", key = "{KEY}", secret = "{SECRET}", max-connections = 2 }}"#);
    let spawn = || binary::spawn(BIN.as_ref(), &["--bus", &url, "--pusher-app", &app], &[]);
    let (p1, p2) = (spawn(), spawn());
    let hello = |addr: SocketAddr| {
        let mut c = Client::connect(addr, &format!("/app/{KEY}?protocol=7"), &[]);
        let m = next(&mut c);
        (c, m)
    };
    let (_a, m) = hello(p1.addr);
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    let (_b, m) = hello(p2.addr);
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    // Each process learns the other's count within a second or two.
    std::thread::sleep(Duration::from_millis(2500));
    for addr in [p1.addr, p2.addr] {
        let (mut c, m) = hello(addr);
        assert_eq!(m["event"], "pusher:error", "{addr}: {m}");
        assert_eq!(m["data"]["code"], 4004, "{addr}: {m}");
        c.answer_close(4004);
    }
}
