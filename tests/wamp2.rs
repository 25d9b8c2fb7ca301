//! WAMP v2 over real TCP with a byte-level client (JSON, and msgpack
//! through the library's codec): sessions, the broker's options, the
//! dealer's advanced features, the meta API, limits, the answers to
//! protocol violations, and v1 and v2 on one route seeing each other.
//! The interop suite (`tests/wamp2/`) runs Autobahn|Python and AutobahnJS
//! against the binary and Crossbar; these tests pin the router's exact
//! messages.

mod common;
use common::*;
use serde_json::{Value, json};
use sprocket::Config;
use sprocket::app::Router;
use sprocket::wamp::v2::{Serializer, codec};
use sprocket::wamp::{Broker, WampServer};
use std::time::Duration;

/// Roles a full client announces.
fn roles() -> Value {
    json!({
        "publisher": {"features": {"publisher_exclusion": true, "publisher_identification": true}},
        "subscriber": {"features": {"pattern_based_subscription": true}},
        "caller": {"features": {"progressive_call_results": true, "call_canceling": true,
                                 "caller_identification": true, "call_timeout": true}},
        "callee": {"features": {"progressive_call_results": true, "call_canceling": true,
                                 "caller_identification": true, "shared_registration": true}},
    })
}

struct S {
    c: Client,
    ser: Serializer,
    id: u64,
    welcome: Value,
}

impl S {
    fn connect(srv: &TestServer, ser: Serializer) -> Client {
        let c = Client::connect(
            srv.addr,
            "/wamp",
            &[("Sec-WebSocket-Protocol", ser.protocol())],
        );
        assert_eq!(
            c.header("Sec-WebSocket-Protocol").as_deref(),
            Some(ser.protocol())
        );
        c
    }

    fn join(srv: &TestServer) -> S {
        S::join_as(srv, Serializer::Json, "realm1")
    }

    fn join_as(srv: &TestServer, ser: Serializer, realm: &str) -> S {
        let c = S::connect(srv, ser);
        let mut s = S {
            c,
            ser,
            id: 0,
            welcome: Value::Null,
        };
        s.send(json!([1, realm, {"roles": roles()}]));
        let w = s.recv();
        assert_eq!(w[0], 2, "WELCOME, got {w}");
        s.id = w[1].as_u64().unwrap();
        s.welcome = w;
        s
    }

    fn send(&mut self, v: Value) {
        let bytes = serde_json::to_vec(&v).unwrap();
        match self.ser {
            Serializer::Json => self.c.send_text(std::str::from_utf8(&bytes).unwrap()),
            Serializer::MsgPack => {
                let msg = codec::decode(Serializer::Json, &bytes).expect("a valid message");
                self.c
                    .send_binary(&codec::encode(Serializer::MsgPack, &msg));
            }
        }
    }

    fn recv(&mut self) -> Value {
        loop {
            let f = self.c.read_frame();
            match (f.opcode, self.ser) {
                (9, _) => continue,
                (1, Serializer::Json) => return serde_json::from_slice(&f.payload).unwrap(),
                (2, Serializer::MsgPack) => {
                    let msg = codec::decode(Serializer::MsgPack, &f.payload).expect("msgpack");
                    let json = codec::encode(Serializer::Json, &msg);
                    return serde_json::from_slice(&json).unwrap();
                }
                _ => panic!("unexpected frame {f:?} for {:?}", self.ser),
            }
        }
    }

    fn nothing(&mut self) {
        assert_eq!(
            self.c.read_timeout(Duration::from_millis(150)),
            Read_::Timeout
        );
    }

    /// A round trip through the router (sessions are separate sockets).
    fn sync(&mut self) {
        self.send(json!([48, 999_999, {}, "wamp.session.count"]));
        let r = self.recv();
        assert_eq!(
            (r[0].clone(), r[1].clone()),
            (json!(50), json!(999_999)),
            "{r}"
        );
    }

    fn subscribe(&mut self, req: u64, topic: &str, options: Value) -> u64 {
        self.send(json!([32, req, options, topic]));
        let r = self.recv();
        assert_eq!((r[0].as_u64(), r[1].as_u64()), (Some(33), Some(req)), "{r}");
        r[2].as_u64().unwrap()
    }

    fn register(&mut self, req: u64, procedure: &str, options: Value) -> u64 {
        self.send(json!([64, req, options, procedure]));
        let r = self.recv();
        assert_eq!((r[0].as_u64(), r[1].as_u64()), (Some(65), Some(req)), "{r}");
        r[2].as_u64().unwrap()
    }
}

fn server() -> TestServer {
    server_with(vec!["realm1".into(), "other".into()])
}

fn server_with(realms: Vec<String>) -> TestServer {
    TestServer::start(Config::default(), move || {
        Router::new().route(
            "/wamp",
            WampServer::new(Broker::new().with_demo_procedures()).realms(realms),
        )
    })
}

/// A WAMP v1 session on the same route.
struct V1 {
    c: Client,
    id: String,
}

impl V1 {
    fn open(srv: &TestServer) -> V1 {
        let mut c = Client::connect(srv.addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
        let w: Value = serde_json::from_str(&c.read_text()).unwrap();
        V1 {
            c,
            id: w[1].as_str().unwrap().to_owned(),
        }
    }
    fn send(&mut self, v: Value) {
        self.c.send_text(&v.to_string());
    }
    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }
    fn sync(&mut self) {
        self.send(json!([2, "sync", "urn:sprocket:echo", "sync"]));
        assert_eq!(self.recv(), json!([3, "sync", "sync"]));
    }
}

#[test]
fn welcome_announces_roles_realm_and_identity() {
    let srv = server();
    let a = S::join(&srv);
    let b = S::join_as(&srv, Serializer::MsgPack, "other");
    assert_ne!(a.id, b.id);
    assert!((1..=1u64 << 53).contains(&a.id));
    let d = &a.welcome[2];
    assert_eq!(d["realm"], "realm1");
    assert_eq!(d["authrole"], "anonymous");
    assert_eq!(d["authid"], format!("anonymous-{}", a.id));
    for f in [
        "publisher_exclusion",
        "subscriber_blackwhite_listing",
        "pattern_based_subscription",
        "publisher_identification",
        "subscription_meta_api",
        "session_meta_api",
    ] {
        assert_eq!(d["roles"]["broker"]["features"][f], true, "broker {f}");
    }
    for f in [
        "progressive_call_results",
        "call_timeout",
        "call_canceling",
        "caller_identification",
        "shared_registration",
    ] {
        assert_eq!(d["roles"]["dealer"]["features"][f], true, "dealer {f}");
    }
    assert!(d["agent"].as_str().unwrap().starts_with("sprocket/"));
    assert_eq!(b.welcome[2]["realm"], "other");
}

#[test]
fn bad_sessions_are_aborted_with_the_reason() {
    let srv = server();
    // No such realm.
    let mut c = S::connect(&srv, Serializer::Json);
    c.send_text(&json!([1, "nope", {"roles": roles()}]).to_string());
    let a: Value = serde_json::from_str(&c.read_text()).unwrap();
    assert_eq!(a[0], 3);
    assert_eq!(a[2], "wamp.error.no_such_realm");
    c.answer_close(1000);
    // A message before HELLO.
    let mut c = S::connect(&srv, Serializer::Json);
    c.send_text(&json!([32, 1, {}, "a.b"]).to_string());
    let a: Value = serde_json::from_str(&c.read_text()).unwrap();
    assert_eq!(
        (a[0].clone(), a[2].clone()),
        (json!(3), json!("wamp.error.protocol_violation"))
    );
    c.answer_close(1002);
    // HELLO without roles.
    let mut c = S::connect(&srv, Serializer::Json);
    c.send_text(&json!([1, "realm1", {}]).to_string());
    let a: Value = serde_json::from_str(&c.read_text()).unwrap();
    assert_eq!(a[2], "wamp.error.protocol_violation");
    assert!(a[1]["message"].as_str().unwrap().contains("roles"), "{a}");
    c.answer_close(1002);
    // Not a message at all; a binary frame on JSON; a second HELLO.
    for bad in [&b"{}"[..], b"[1, \"realm1\""] {
        let mut c = S::connect(&srv, Serializer::Json);
        c.send_text(std::str::from_utf8(bad).unwrap());
        let a: Value = serde_json::from_str(&c.read_text()).unwrap();
        assert_eq!(a[2], "wamp.error.protocol_violation", "{a}");
        c.answer_close(1002);
    }
    let mut s = S::join(&srv);
    s.c.send_binary(b"\x93\x01");
    assert_eq!(s.recv()[2], "wamp.error.protocol_violation");
    s.c.answer_close(1002);
    let mut s = S::join(&srv);
    s.send(json!([1, "realm1", {"roles": roles()}]));
    assert_eq!(s.recv()[2], "wamp.error.protocol_violation");
    s.c.answer_close(1002);
    // The server carries on.
    S::join(&srv).sync();
}

#[test]
fn goodbye_is_answered_and_the_transport_closed() {
    let srv = server();
    let mut s = S::join(&srv);
    let first = s.id;
    s.send(json!([6, {}, "wamp.close.close_realm"]));
    assert_eq!(s.recv(), json!([6, {}, "wamp.close.goodbye_and_out"]));
    // Then the router closes the transport, as Crossbar does.
    s.c.answer_close(1000);
    assert_ne!(S::join(&srv).id, first);
}

#[test]
fn a_shutdown_says_goodbye_before_the_close() {
    let srv = server();
    let mut s = S::join(&srv);
    // A session still in HELLO gets no GOODBYE, only the close.
    let mut waiting = S::connect(&srv, Serializer::Json);
    let stopper = std::thread::spawn(move || {
        let mut srv = srv;
        srv.stop();
    });
    let bye = s.recv();
    assert_eq!(bye[0], 6, "{bye}");
    assert_eq!(bye[2], "wamp.close.system_shutdown", "{bye}");
    // The client's answer is not answered again; the close follows.
    s.send(json!([6, {}, "wamp.close.goodbye_and_out"]));
    s.c.answer_close(1001);
    waiting.answer_close(1001);
    stopper.join().unwrap();
}

#[test]
fn publish_options_choose_the_receivers() {
    let srv = server();
    let mut p = S::join(&srv);
    let mut a = S::join(&srv);
    let mut b = S::join_as(&srv, Serializer::MsgPack, "realm1");
    let sp = p.subscribe(1, "com.ex.t", json!({}));
    let sa = a.subscribe(1, "com.ex.t", json!({}));
    let sb = b.subscribe(1, "com.ex.t", json!({}));
    assert!(sp == sa && sa == sb, "one subscription per topic");
    // Acknowledged, publisher excluded by default; not disclosed on request.
    p.send(json!([16, 10, {"acknowledge": true, "disclose_me": false}, "com.ex.t", [1, "two"], {"k": true}]));
    let ack = p.recv();
    assert_eq!((ack[0].as_u64(), ack[1].as_u64()), (Some(17), Some(10)));
    let pubid = ack[2].as_u64().unwrap();
    for s in [&mut a, &mut b] {
        assert_eq!(
            s.recv(),
            json!([36, sa, pubid, {}, [1, "two"], {"k": true}])
        );
    }
    p.sync();
    p.nothing();
    // exclude_me false; eligible; exclude; disclose_me.
    p.send(json!([16, 11, {"exclude_me": false}, "com.ex.t", ["all"]]));
    for s in [&mut p, &mut a, &mut b] {
        assert_eq!(s.recv()[4], json!(["all"]));
    }
    p.send(json!([16, 12, {"eligible": [b.id]}, "com.ex.t", ["only b"]]));
    assert_eq!(b.recv()[4], json!(["only b"]));
    p.send(json!([16, 13, {"exclude": [b.id]}, "com.ex.t", ["not b"]]));
    assert_eq!(a.recv()[4], json!(["not b"]));
    let authid = a.welcome[2]["authid"].as_str().unwrap().to_owned();
    p.send(json!([16, 14, {"exclude_authid": [authid]}, "com.ex.t", ["not a"]]));
    assert_eq!(b.recv()[4], json!(["not a"]));
    // Disclosed unless disclose_me is false (as Crossbar's realms are
    // usually configured: Autobahn|Python 26 cannot ask).
    p.send(json!([16, 15, {}, "com.ex.t"]));
    let e = a.recv();
    assert_eq!(e[3]["publisher"], p.id);
    assert_eq!(e[3]["publisher_authrole"], "anonymous");
    assert_eq!(e.as_array().unwrap().len(), 4, "no args: left out, {e}");
    assert_eq!(b.recv()[3]["publisher"], p.id);
    a.sync();
    a.nothing();
    b.nothing();
    // Bad options and URIs: an ERROR when acknowledged.
    p.send(json!([16, 16, {"acknowledge": true, "exclude": "x"}, "com.ex.t"]));
    assert_eq!(
        p.recv(),
        json!([
            8,
            16,
            16,
            {},
            "wamp.error.invalid_argument",
            [
                "exclude/eligible must be lists of session ids, the authid/authrole lists lists of strings, exclude_me/disclose_me/acknowledge booleans"
            ]
        ])
    );
    p.send(json!([16, 17, {"acknowledge": true}, "com..t"]));
    assert_eq!(p.recv()[4], "wamp.error.invalid_uri");
    p.send(json!([16, 18, {"acknowledge": true}, "wamp.session.on_join"]));
    assert_eq!(p.recv()[4], "wamp.error.not_authorized");
    // Unsubscribing.
    a.send(json!([34, 2, sa]));
    assert_eq!(a.recv(), json!([35, 2]));
    a.send(json!([34, 3, sa]));
    assert_eq!(a.recv()[4], "wamp.error.no_such_subscription");
    p.send(json!([16, 19, {}, "com.ex.t", ["after"]]));
    assert_eq!(b.recv()[4], json!(["after"]));
    a.sync();
    a.nothing();
}

#[test]
fn pattern_subscriptions_name_the_topic() {
    let srv = server();
    let mut p = S::join(&srv);
    let mut s = S::join(&srv);
    let prefix = s.subscribe(1, "com", json!({"match": "prefix"}));
    let wild = s.subscribe(2, "com..ev", json!({"match": "wildcard"}));
    let exact = s.subscribe(3, "com.a.ev", json!({}));
    s.send(json!([32, 4, {"match": "fuzzy"}, "com"]));
    assert_eq!(s.recv()[4], "wamp.error.invalid_argument");
    p.send(json!([16, 1, {"disclose_me": false}, "com.example.x", [1]]));
    let e = s.recv();
    assert_eq!(
        (e[1].as_u64(), e[3].clone()),
        (Some(prefix), json!({"topic": "com.example.x"}))
    );
    p.send(json!([16, 2, {"disclose_me": false}, "com.a.ev", [2]]));
    let mut got: Vec<(u64, Value)> = (0..3)
        .map(|_| {
            let e = s.recv();
            (e[1].as_u64().unwrap(), e[3].clone())
        })
        .collect();
    got.sort_by_key(|g| g.0);
    let mut want = vec![
        (prefix, json!({"topic": "com.a.ev"})),
        (wild, json!({"topic": "com.a.ev"})),
        (exact, json!({})),
    ];
    want.sort_by_key(|g| g.0);
    assert_eq!(got, want);
    p.send(json!([16, 3, {}, "other.a.ev", [3]]));
    p.send(json!([16, 4, {}, "com.a.b.ev", [4]]));
    let e = s.recv();
    assert_eq!(
        (e[1].as_u64(), e[4].clone()),
        (Some(prefix), json!([4])),
        "not the wildcard"
    );
    s.sync();
    s.nothing();
}

#[test]
fn v1_and_v2_sessions_share_topics() {
    let srv = server();
    let mut one = V1::open(&srv);
    let mut two = S::join(&srv);
    let sub = two.subscribe(1, "http://ex.com/chat", json!({}));
    one.send(json!([5, "http://ex.com/chat"]));
    one.sync();
    // v1 → v2: the event is the one argument (excludeMe: v1 publishers
    // get their own events otherwise, as in Ratchet).
    one.send(json!([7, "http://ex.com/chat", {"text": "hi"}, true]));
    let e = two.recv();
    assert_eq!(
        (e[0].clone(), e[1].as_u64(), e[4].clone()),
        (json!(36), Some(sub), json!([{"text": "hi"}]))
    );
    // v1 excludes the v2 session by its id.
    one.send(json!([
        7,
        "http://ex.com/chat",
        "not you",
        [two.id.to_string()]
    ]));
    one.send(json!([
        7,
        "http://ex.com/chat",
        "you",
        [],
        [two.id.to_string()]
    ]));
    assert_eq!(two.recv()[4], json!(["you"]));
    assert_eq!(one.recv(), json!([8, "http://ex.com/chat", "not you"]));
    // v2 → v1: one argument is the event; several, or kwargs, a dict.
    two.send(json!([16, 2, {}, "http://ex.com/chat", ["hello"]]));
    assert_eq!(one.recv(), json!([8, "http://ex.com/chat", "hello"]));
    two.send(json!([16, 3, {}, "http://ex.com/chat", [1, 2], {"a": 1}]));
    assert_eq!(
        one.recv(),
        json!([8, "http://ex.com/chat", {"args": [1, 2], "kwargs": {"a": 1}}])
    );
    two.send(json!([16, 4, {}, "http://ex.com/chat", [], {"a": 1}]));
    assert_eq!(one.recv(), json!([8, "http://ex.com/chat", {"a": 1}]));
    // eligible names v2 sessions only: the v1 session gets nothing.
    two.send(json!([16, 5, {"eligible": [two.id]}, "http://ex.com/chat", ["v2 only"]]));
    one.sync();
    assert_eq!(
        one.c.read_timeout(Duration::from_millis(150)),
        Read_::Timeout
    );
    two.sync();
    two.nothing();
    // Other realms do not share the v1 topics.
    let mut elsewhere = S::join_as(&srv, Serializer::Json, "other");
    elsewhere.subscribe(1, "http://ex.com/chat", json!({}));
    one.send(json!([7, "http://ex.com/chat", "realm1 only", true]));
    assert_eq!(two.recv()[4], json!(["realm1 only"]));
    elsewhere.sync();
    elsewhere.nothing();
    let _ = one.id;
}

#[test]
fn calls_are_routed_to_callees_and_answered() {
    let srv = server();
    let mut callee = S::join(&srv);
    let mut caller = S::join_as(&srv, Serializer::MsgPack, "realm1");
    let reg = callee.register(1, "com.ex.add", json!({}));
    callee.send(json!([64, 2, {}, "com.ex.add"]));
    assert_eq!(callee.recv()[4], "wamp.error.procedure_already_exists");
    caller.send(json!([48, 7, {"disclose_me": true}, "com.ex.add", [2, 3], {"x": 1}]));
    let inv = callee.recv();
    assert_eq!(inv[0], 68);
    assert_eq!(inv[2].as_u64(), Some(reg));
    assert_eq!(inv[3]["caller"], caller.id);
    assert_eq!(
        (inv[4].clone(), inv[5].clone()),
        (json!([2, 3]), json!({"x": 1}))
    );
    let r = inv[1].as_u64().unwrap();
    callee.send(json!([70, r, {}, [5], {"sum": true}]));
    assert_eq!(caller.recv(), json!([50, 7, {}, [5], {"sum": true}]));
    // An application error travels with its URI, args and kwargs.
    caller.send(json!([48, 8, {}, "com.ex.add", []]));
    let r = callee.recv()[1].as_u64().unwrap();
    callee.send(json!([8, 68, r, {}, "com.ex.error.custom", [1, 2], {"foo": "bar"}]));
    assert_eq!(
        caller.recv(),
        json!([8, 48, 8, {}, "com.ex.error.custom", [1, 2], {"foo": "bar"}])
    );
    // No such procedure; invalid URIs; the app's own procedures.
    caller.send(json!([48, 9, {}, "com.ex.nothing", []]));
    let e = caller.recv();
    assert_eq!(
        (e[0].clone(), e[2].clone(), e[4].clone()),
        (json!(8), json!(9), json!("wamp.error.no_such_procedure"))
    );
    caller.send(json!([48, 10, {}, "com ex", []]));
    assert_eq!(caller.recv()[4], "wamp.error.invalid_uri");
    caller.send(json!([48, 11, {}, "urn:sprocket:add", [1, 2.5]]));
    assert_eq!(caller.recv(), json!([50, 11, {}, [3.5]]));
    // Unregistering; then nobody answers.
    callee.send(json!([66, 3, reg]));
    assert_eq!(callee.recv(), json!([67, 3]));
    callee.send(json!([66, 4, reg]));
    assert_eq!(callee.recv()[4], "wamp.error.no_such_registration");
    caller.send(json!([48, 12, {}, "com.ex.add", []]));
    assert_eq!(caller.recv()[4], "wamp.error.no_such_procedure");
}

#[test]
fn progressive_results_timeouts_and_cancels() {
    let srv = server();
    let mut callee = S::join(&srv);
    let mut caller = S::join(&srv);
    callee.register(1, "com.ex.slow", json!({}));
    // Progressive results.
    caller.send(json!([48, 1, {"receive_progress": true}, "com.ex.slow", []]));
    let inv = callee.recv();
    assert_eq!(inv[3]["receive_progress"], true);
    let r = inv[1].as_u64().unwrap();
    for i in 0..3 {
        callee.send(json!([70, r, {"progress": true}, [i]]));
    }
    callee.send(json!([70, r, {}, ["done"]]));
    for i in 0..3 {
        assert_eq!(caller.recv(), json!([50, 1, {"progress": true}, [i]]));
    }
    assert_eq!(caller.recv(), json!([50, 1, {}, ["done"]]));
    // A timeout: the caller gets wamp.error.canceled, the callee INTERRUPT.
    caller.send(json!([48, 2, {"timeout": 100}, "com.ex.slow", []]));
    let inv = callee.recv();
    assert_eq!(inv[3]["timeout"], 100);
    let r = inv[1].as_u64().unwrap();
    let e = caller.recv();
    assert_eq!(
        (e[4].clone(), e[5].clone()),
        (json!("wamp.error.canceled"), json!(["the call timed out"]))
    );
    assert_eq!(callee.recv(), json!([69, r, {"mode": "killnowait"}]));
    callee.send(json!([70, r, {}, ["late"]])); // dropped
    // Cancel, kill: the callee's answer to the INTERRUPT goes to the caller.
    caller.send(json!([48, 3, {}, "com.ex.slow", []]));
    let r = callee.recv()[1].as_u64().unwrap();
    caller.send(json!([49, 3, {"mode": "kill"}]));
    assert_eq!(callee.recv(), json!([69, r, {"mode": "kill"}]));
    callee.send(json!([
        8,
        68,
        r,
        {},
        "wamp.error.runtime_error",
        ["stopped"]
    ]));
    assert_eq!(
        caller.recv(),
        json!([8, 48, 3, {}, "wamp.error.canceled", ["stopped"]])
    );
    // skip: the caller is sent nothing (as Crossbar does, and as
    // AutobahnJS, which settles the call itself, needs), the callee's
    // result is dropped, and the caller's next call is answered.
    caller.send(json!([48, 4, {}, "com.ex.slow", []]));
    let r = callee.recv()[1].as_u64().unwrap();
    caller.send(json!([49, 4, {"mode": "skip"}]));
    callee.send(json!([70, r, {}, ["ignored"]]));
    caller.sync();
    caller.nothing();
    // killnowait: both at once.
    caller.send(json!([48, 5, {}, "com.ex.slow", []]));
    let r = callee.recv()[1].as_u64().unwrap();
    caller.send(json!([49, 5, {"mode": "killnowait"}]));
    assert_eq!(caller.recv()[4], "wamp.error.canceled");
    assert_eq!(callee.recv(), json!([69, r, {"mode": "killnowait"}]));
    caller.sync();
    caller.nothing();
    // The callee leaves mid-call: the caller gets an error.
    caller.send(json!([48, 6, {}, "com.ex.slow", []]));
    callee.recv();
    callee.send(json!([6, {}, "wamp.close.close_realm"]));
    assert_eq!(
        caller.recv(),
        json!([8, 48, 6, {}, "wamp.error.canceled", ["the callee left"]])
    );
}

#[test]
fn shared_registrations_follow_their_policy() {
    let srv = server();
    let mut callees: Vec<S> = (0..3).map(|_| S::join(&srv)).collect();
    let mut reg = 0;
    for c in callees.iter_mut() {
        reg = c.register(1, "com.ex.rr", json!({"invoke": "roundrobin"}));
    }
    let mut odd = S::join(&srv);
    odd.send(json!([64, 1, {"invoke": "first"}, "com.ex.rr"]));
    let policy = "wamp.error.procedure_exists_with_different_invocation_policy";
    assert_eq!(odd.recv()[4], policy);
    odd.send(json!([64, 2, {}, "com.ex.rr"]));
    assert_eq!(odd.recv()[4], policy);
    let mut caller = S::join(&srv);
    let mut order = Vec::new();
    for i in 0..6 {
        caller.send(json!([48, 100 + i, {}, "com.ex.rr", []]));
        // Exactly one callee gets it.
        let (who, inv) = loop {
            let mut hit = None;
            for (n, c) in callees.iter_mut().enumerate() {
                if let Read_::Frame(f) = c.c.read_timeout(Duration::from_millis(20)) {
                    hit = Some((n, serde_json::from_slice::<Value>(&f.payload).unwrap()));
                }
            }
            if let Some(h) = hit {
                break h;
            }
        };
        assert_eq!(inv[2].as_u64(), Some(reg));
        callees[who].send(json!([70, inv[1], {}, [who]]));
        assert_eq!(caller.recv(), json!([50, 100 + i, {}, [who]]));
        order.push(who);
    }
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    // first / last.
    for (policy, want) in [("first", 0usize), ("last", 2)] {
        let name = format!("com.ex.{policy}");
        for c in callees.iter_mut() {
            c.register(2, &name, json!({"invoke": policy}));
        }
        caller.send(json!([48, 1, {}, name, []]));
        let inv = callees[want].recv();
        assert_eq!(inv[0], 68);
        callees[want].send(json!([70, inv[1], {}, []]));
        assert_eq!(caller.recv(), json!([50, 1, {}]));
    }
}

#[test]
fn meta_api_and_meta_events() {
    let srv = server();
    let mut a = S::join(&srv);
    a.subscribe(1, "wamp.session.on_join", json!({}));
    a.subscribe(2, "wamp.session.on_leave", json!({}));
    a.subscribe(3, "wamp.subscription.on_create", json!({}));
    a.subscribe(4, "wamp.subscription.on_subscribe", json!({}));
    let mut b = S::join(&srv);
    let joined = a.recv();
    assert_eq!(joined[4][0]["session"], b.id);
    assert_eq!(joined[4][0]["authrole"], "anonymous");
    let sub = b.subscribe(1, "com.ex.meta", json!({}));
    let created = a.recv();
    assert_eq!(created[4][0], b.id);
    assert_eq!(created[4][1]["id"], sub);
    assert_eq!(created[4][1]["uri"], "com.ex.meta");
    // Then on_subscribe; the meta topics' own subscriptions were not
    // announced at all.
    assert_eq!(a.recv()[4], json!([b.id, sub]));
    a.send(json!([48, 5, {}, "wamp.session.count"]));
    assert_eq!(a.recv(), json!([50, 5, {}, [2]]));
    a.send(json!([48, 6, {}, "wamp.session.list"]));
    let mut ids: Vec<u64> = serde_json::from_value(a.recv()[3][0].clone()).unwrap();
    ids.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(ids, want);
    a.send(json!([48, 7, {}, "wamp.session.get", [b.id]]));
    let got = a.recv();
    assert_eq!(got[3][0]["session"], b.id);
    assert_eq!(got[3][0]["authid"], b.welcome[2]["authid"]);
    a.send(json!([48, 8, {}, "wamp.session.get", [1]]));
    assert_eq!(a.recv()[4], "wamp.error.no_such_session");
    a.send(json!([
        48,
        9,
        {},
        "wamp.subscription.lookup",
        ["com.ex.meta"]
    ]));
    assert_eq!(a.recv()[3], json!([sub]));
    a.send(json!([
        48,
        10,
        {},
        "wamp.subscription.list_subscribers",
        [sub]
    ]));
    assert_eq!(a.recv()[3], json!([[b.id]]));
    b.send(json!([6, {}, "wamp.close.close_realm"]));
    b.recv();
    let left = a.recv();
    assert_eq!(left[4][0], b.id);
    a.send(json!([48, 11, {}, "wamp.session.count"]));
    assert_eq!(a.recv(), json!([50, 11, {}, [1]]));
}

#[test]
fn session_limits_are_errors_not_silence() {
    let srv = server();
    let mut s = S::join(&srv);
    for i in 0..1024 {
        s.send(json!([32, i + 1, {}, format!("t.{i}")]));
    }
    for _ in 0..1024 {
        assert_eq!(s.recv()[0], 33);
    }
    s.send(json!([32, 5000, {}, "t.over"]));
    let e = s.recv();
    assert_eq!(e[4], "sprocket.error.limit_exceeded");
    assert_eq!(e[5], json!(["at most 1024 subscriptions a session"]));
    s.sync();
}
