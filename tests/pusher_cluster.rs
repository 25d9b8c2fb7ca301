//! Pusher presence across processes: two sprocket binaries on one real
//! `redis-server` (`--bus`), the same `--pusher-app`, raw WebSocket
//! clients. Members are counted per user cluster-wide, the HTTP API sums
//! over processes, and a killed process's members leave within the
//! heartbeat TTL (`docs/pusher.md`, "Several processes").

mod common;
use common::binary;
use common::services::RedisServer;
use common::*;
use serde_json::{Value, json};
use sprocket::pusher::auth;
use std::net::SocketAddr;
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
    let fields = redis.cli(&["HKEYS", &format!("pusher-presence:7:{ROOM}")]);
    assert!(!fields.contains(" b"), "{fields}");
    assert!(fields.contains(" c"), "{fields}");
}
