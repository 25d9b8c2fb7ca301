//! WAMP v2 in the binary, with what the rest of sprocket brings: calls
//! answered by the PHP RPC backend, subscriptions decided by the PHP
//! subscribe backend, pushes from `POST /publish`, and topics shared with
//! another process (v1 and v2) through the Redis bus.

mod common;
use common::binary;
use common::services::{PhpServer, RedisServer};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const BACKEND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/backend.php");
const SECRET: &str = "wamp2-push-secret";

/// A WAMP v2 JSON session over the byte-level client.
struct V2 {
    c: Client,
    id: u64,
}

impl V2 {
    fn join(addr: SocketAddr) -> V2 {
        let mut c = Client::connect(addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp.2.json")]);
        let roles = json!({"caller": {}, "subscriber": {}, "publisher": {}});
        c.send_text(&json!([1, "realm1", {"roles": roles}]).to_string());
        let w: Value = serde_json::from_str(&c.read_text()).unwrap();
        assert_eq!(w[0], 2, "WELCOME, got {w}");
        V2 {
            c,
            id: w[1].as_u64().unwrap(),
        }
    }
    fn send(&mut self, v: Value) {
        self.c.send_text(&v.to_string());
    }
    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }
    fn subscribe(&mut self, req: u64, topic: &str) -> Value {
        self.send(json!([32, req, {}, topic]));
        self.recv()
    }
    fn nothing(&mut self) {
        assert_eq!(
            self.c.read_timeout(Duration::from_millis(200)),
            Read_::Timeout
        );
    }
}

fn publish(admin: SocketAddr, body: &str) -> (u16, String) {
    let req = format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let raw = http_exchange(admin, req.as_bytes());
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status_of(&raw), body)
}

#[test]
fn v2_calls_and_subscriptions_are_decided_in_php() {
    let php = PhpServer::start(BACKEND, &[]);
    let srv = binary::spawn(
        BIN.as_ref(),
        &[
            "--rpc-backend",
            &php.url("/rpc"),
            "--rpc-prefix",
            "urn:app:",
            "--subscribe-backend",
            &php.url("/subscribe"),
            "--subscribe-prefix",
            "private:",
        ],
        &[],
    );
    let mut s = V2::join(srv.addr);
    // The backend's result is RESULT's one argument.
    s.send(json!([48, 1, {}, "urn:app:whoami", []]));
    let r = s.recv();
    assert_eq!((r[0].clone(), r[1].clone()), (json!(50), json!(1)), "{r}");
    assert_eq!(r[3][0]["user"], Value::Null, "{r}");
    // The backend's error: its URI, description and details.
    s.send(json!([48, 2, {}, "urn:app:fail", []]));
    assert_eq!(
        s.recv(),
        json!([8, 48, 2, {}, "urn:app:error:invalid", ["bad input", {"field": "x"}]])
    );
    // Outside the prefix: no such procedure, in v2's words.
    s.send(json!([48, 3, {}, "urn:other:x", []]));
    assert_eq!(s.recv()[4], "wamp.error.no_such_procedure");
    // Subscriptions under the prefix are asked of the backend.
    let ok = s.subscribe(4, "private:allowed:1");
    assert_eq!(
        (ok[0].clone(), ok[1].clone()),
        (json!(33), json!(4)),
        "{ok}"
    );
    let no = s.subscribe(5, "private:secret");
    assert_eq!(
        no,
        json!([
            8,
            32,
            5,
            {},
            "wamp.error.not_authorized",
            ["refused by the backend"]
        ])
    );
    let free = s.subscribe(6, "public:news");
    assert_eq!(free[0], 33, "{free}");
    // Pattern subscriptions could not be decided topic by topic: refused.
    s.send(json!([32, 7, {"match": "prefix"}, "private"]));
    let e = s.recv();
    assert_eq!(e[4], "wamp.error.not_authorized", "{e}");
}

#[test]
fn pushes_from_php_reach_v2_subscribers() {
    let srv = binary::spawn(
        BIN.as_ref(),
        &["--admin-listen", "127.0.0.1:0"],
        &[("SPROCKET_PUBLISH_SECRET", SECRET)],
    );
    let admin = srv.admin.expect("the admin address");
    let mut s = V2::join(srv.addr);
    let sub = s.subscribe(1, "urn:news")[2].clone();
    let (status, body) = publish(admin, r#"{"topic":"urn:news","data":{"title":"hello"}}"#);
    assert_eq!(status, 200, "{body}");
    let e = s.recv();
    assert_eq!((e[0].clone(), e[1].clone()), (json!(36), sub));
    assert_eq!(e[4], json!([{"title": "hello"}]));
    // A push to one session (eligible) names the v2 session by its id.
    let only = format!(
        r#"{{"topic":"urn:news","data":"for you","eligible":["{}"]}}"#,
        s.id
    );
    assert_eq!(publish(admin, &only).0, 200);
    assert_eq!(s.recv()[4], json!(["for you"]));
    let others = r#"{"topic":"urn:news","data":"not you","eligible":["nobody"]}"#;
    assert_eq!(publish(admin, others).0, 200);
    s.nothing();
}

#[test]
fn v2_topics_cross_processes_on_the_bus() {
    let redis = RedisServer::start(None);
    let bus = redis.url("", 0);
    let a = binary::spawn(BIN.as_ref(), &["--bus", &bus], &[]);
    let b = binary::spawn(BIN.as_ref(), &["--bus", &bus], &[]);
    let mut sub_b = V2::join(b.addr);
    sub_b.subscribe(1, "com.ex.shared");
    let mut v1_b = Client::connect(b.addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
    v1_b.read_text(); // WELCOME
    v1_b.send_text(r#"[5, "com.ex.shared"]"#);
    v1_b.send_text(r#"[2, "sync", "urn:sprocket:echo", "sync"]"#);
    assert_eq!(v1_b.read_text(), r#"[3,"sync","sync"]"#);
    let mut pub_a = V2::join(a.addr);
    // The bus subscription of process b may take a moment to reach Redis:
    // publish until the first event arrives, then count exactly.
    let mut got = None;
    for i in 0..50 {
        pub_a.send(json!([16, 100 + i, {}, "com.ex.shared", ["probe"]]));
        if let Read_::Frame(f) = sub_b.c.read_timeout(Duration::from_millis(100)) {
            got = Some(serde_json::from_slice::<Value>(&f.payload).unwrap());
            break;
        }
    }
    let first = got.expect("a v2 publish on process a reached process b");
    assert_eq!(first[4], json!(["probe"]));
    while sub_b.c.read_timeout(Duration::from_millis(200)) != Read_::Timeout {}
    while v1_b.read_timeout(Duration::from_millis(200)) != Read_::Timeout {}
    pub_a.send(json!([16, 1, {"acknowledge": true}, "com.ex.shared", [{"n": 1}]]));
    assert_eq!(pub_a.recv()[0], 17);
    assert_eq!(sub_b.recv()[4], json!([{"n": 1}]));
    assert_eq!(
        serde_json::from_str::<Value>(&v1_b.read_text()).unwrap(),
        json!([8, "com.ex.shared", {"n": 1}])
    );
    // Excluding the v2 subscriber of the other process by its id.
    pub_a.send(json!([16, 2, {"exclude": [sub_b.id]}, "com.ex.shared", ["v1 only"]]));
    assert_eq!(
        serde_json::from_str::<Value>(&v1_b.read_text()).unwrap(),
        json!([8, "com.ex.shared", "v1 only"])
    );
    sub_b.nothing();
}

#[test]
fn durable_topics_reach_each_v2_subscription_once() {
    let redis = RedisServer::start(None);
    let bus = redis.url("", 0);
    let srv = binary::spawn(
        BIN.as_ref(),
        &["--bus", &bus, "--durable-topics", "orders."],
        &[],
    );
    let mut s = V2::join(srv.addr);
    let exact = s.subscribe(1, "orders.eu")[2].as_u64().unwrap();
    s.send(json!([32, 2, {"match": "prefix"}, "orders."]));
    let prefix = s.recv()[2].as_u64().unwrap();
    let mut p = V2::join(srv.addr);
    // The first publishes may come before the stream is read: wait for one.
    let mut seen = Vec::new();
    for i in 0..50 {
        p.send(json!([16, 100 + i, {}, "orders.eu", ["probe"]]));
        if let Read_::Frame(f) = s.c.read_timeout(Duration::from_millis(100)) {
            seen.push(serde_json::from_slice::<Value>(&f.payload).unwrap());
            break;
        }
    }
    assert!(!seen.is_empty(), "no event on the durable topic");
    while let Read_::Frame(_) = s.c.read_timeout(Duration::from_millis(300)) {}
    p.send(json!([16, 1, {"acknowledge": true}, "orders.eu", ["one"]]));
    assert_eq!(p.recv()[0], 17);
    // Exactly one EVENT per subscription, from the stream.
    let mut subs: Vec<u64> = (0..2)
        .map(|_| {
            let e = s.recv();
            assert_eq!(e[4], json!(["one"]), "{e}");
            e[1].as_u64().unwrap()
        })
        .collect();
    subs.sort();
    let mut want = vec![exact, prefix];
    want.sort();
    assert_eq!(subs, want);
    s.nothing();
}
