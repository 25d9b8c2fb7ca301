//! WAMP v1 over real TCP with a byte-level client: every message type,
//! every PUBLISH form, cleanup, and the answer to malformed input.

mod common;
use common::*;
use serde_json::{Value, json};
use sprocket::Config;
use sprocket::app::Router;
use sprocket::wamp::{Broker, Call, CallError, WampApp, WampContext, WampServer};
use std::time::Duration;

struct Session {
    c: Client,
    id: String,
}

impl Session {
    fn open(srv: &TestServer) -> Session {
        let mut c = Client::connect(srv.addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
        assert_eq!(c.header("Sec-WebSocket-Protocol").as_deref(), Some("wamp"));
        let welcome: Value = serde_json::from_str(&c.read_text()).unwrap();
        assert_eq!(welcome[0], 0);
        assert_eq!(welcome[2], 1);
        assert!(welcome[3].as_str().unwrap().starts_with("sprocket/"));
        let id = welcome[1].as_str().unwrap().to_owned();
        Session { c, id }
    }
    fn send(&mut self, v: Value) {
        self.c.send_text(&v.to_string());
    }
    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }
    /// Round trip through the server, so everything sent before has been
    /// processed (sessions are separate sockets; their order is not).
    fn sync(&mut self) {
        self.send(json!([2, "sync", "urn:sprocket:echo", "sync"]));
        assert_eq!(self.recv(), json!([3, "sync", "sync"]));
    }
    fn nothing(&mut self) {
        assert_eq!(
            self.c.read_timeout(Duration::from_millis(100)),
            Read_::Timeout
        );
    }
}

fn broker() -> TestServer {
    TestServer::start(Config::default(), || {
        let broker =
            Broker::new()
                .with_demo_procedures()
                .procedure("http://example.com/calc#fail", |_| {
                    Err(CallError {
                        uri: "http://example.com/error#oops".into(),
                        desc: "it failed".into(),
                        details: Some(json!({"why": 42})),
                    })
                });
        Router::new().route("/wamp", WampServer::new(broker))
    })
}

#[test]
fn welcome_ids_are_unique_and_unguessable_looking() {
    let srv = broker();
    let a = Session::open(&srv);
    let b = Session::open(&srv);
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.len(), 32, "128 random bits");
}

#[test]
fn prefix_call_result_and_errors() {
    let srv = broker();
    let mut s = Session::open(&srv);
    s.send(json!([2, "c1", "urn:sprocket:add", 1, 2.5]));
    assert_eq!(s.recv(), json!([3, "c1", 3.5]));
    // Integers in, an integer out (json!(3) is not equal to 3.0).
    s.send(json!([2, "c0", "urn:sprocket:add", 1, 2]));
    let sum = s.recv();
    assert_eq!(sum, json!([3, "c0", 3]));
    assert!(sum[2].is_i64(), "{sum}");
    s.send(json!([1, "calc", "http://example.com/calc#"]));
    s.send(json!([2, "c2", "calc:fail"]));
    assert_eq!(
        s.recv(),
        json!([4, "c2", "http://example.com/error#oops", "it failed", {"why": 42}])
    );
    s.send(json!([2, "c3", "calc:nothing", []]));
    assert_eq!(
        s.recv(),
        json!([
            4,
            "c3",
            "urn:sprocket:error:no-such-procedure",
            "no procedure http://example.com/calc#nothing"
        ])
    );
    s.send(json!([2, "c4", "urn:sprocket:add", "x"]));
    assert_eq!(s.recv()[2], "urn:sprocket:error:invalid-argument");
    // A CALL whose procedure is not a string still gets an answer.
    s.send(json!([2, "c5", {"not": "a uri"}]));
    assert_eq!(
        s.recv(),
        json!([
            4,
            "c5",
            "urn:sprocket:error:invalid-call",
            "procedure URI must be a non-empty string of at most 2048 bytes"
        ])
    );
    s.send(json!([2, "c6", "urn:sprocket:echo", {"deep": [1, 2]}]));
    assert_eq!(s.recv(), json!([3, "c6", {"deep": [1, 2]}]));
}

#[test]
fn publish_forms_follow_ratchet() {
    let srv = broker();
    let mut a = Session::open(&srv);
    let mut b = Session::open(&srv);
    let mut c = Session::open(&srv);
    let t = "http://example.com/topic";
    for s in [&mut a, &mut b, &mut c] {
        s.send(json!([1, "ev", "http://example.com/"]));
        s.send(json!([5, "ev:topic"]));
        s.sync();
    }
    // No excludeMe: everyone subscribed, publisher included (Ratchet).
    a.send(json!([7, t, "one"]));
    for s in [&mut a, &mut b, &mut c] {
        assert_eq!(s.recv(), json!([8, t, "one"]));
    }
    // excludeMe = true.
    a.send(json!([7, "ev:topic", {"n": 2}, true]));
    assert_eq!(b.recv(), json!([8, t, {"n": 2}]));
    assert_eq!(c.recv(), json!([8, t, {"n": 2}]));
    a.nothing();
    // Exclude list.
    let (bid, cid) = (b.id.clone(), c.id.clone());
    a.send(json!([7, t, 3, [bid]]));
    assert_eq!(a.recv(), json!([8, t, 3]));
    assert_eq!(c.recv(), json!([8, t, 3]));
    b.nothing();
    // Eligible list.
    a.send(json!([7, t, 4, [], [cid.clone()]]));
    assert_eq!(c.recv(), json!([8, t, 4]));
    a.nothing();
    b.nothing();
    // Empty eligible list means everybody (Ratchet; AutobahnPython says nobody).
    a.send(json!([7, t, 5, [], []]));
    for s in [&mut a, &mut b, &mut c] {
        assert_eq!(s.recv(), json!([8, t, 5]));
    }
    // Exclude and eligible together.
    a.send(json!([7, t, 6, [cid.clone()], [cid, b.id.clone()]]));
    assert_eq!(b.recv(), json!([8, t, 6]));
    a.nothing();
    c.nothing();
}

/// AutobahnPython 0.8's `publish(topic, event)` sends `excludeMe` as `null`;
/// Ratchet reads that as `false`. It must not close the session.
#[test]
fn publish_with_null_exclude_me_reaches_everybody() {
    let srv = broker();
    let mut a = Session::open(&srv);
    let mut b = Session::open(&srv);
    for s in [&mut a, &mut b] {
        s.send(json!([5, "t"]));
        s.sync();
    }
    a.send(json!([7, "t", "plain", null]));
    assert_eq!(a.recv(), json!([8, "t", "plain"]));
    assert_eq!(b.recv(), json!([8, "t", "plain"]));
    a.sync();
}

/// Answers any call with `{topic: subscriber count}` of every live topic.
struct Inspect;

impl WampApp for Inspect {
    fn on_call(&mut self, ctx: &mut WampContext<'_, '_>, call: Call, _: &str, _: &[Value]) {
        let topics: serde_json::Map<String, Value> = ctx
            .topics()
            .map(|t| (t.to_owned(), json!(ctx.subscribers(t).len())))
            .collect();
        ctx.call_result(&call, &Value::Object(topics));
    }
}

#[test]
fn unsubscribe_and_disconnect_leave_topics() {
    let srv = TestServer::start(Config::default(), || {
        Router::new().route("/wamp", WampServer::new(Inspect))
    });
    let mut a = Session::open(&srv);
    let mut b = Session::open(&srv);
    let topics = |s: &mut Session| {
        s.send(json!([2, "q", "inspect"]));
        s.recv()[2].clone()
    };
    a.send(json!([5, "t"]));
    a.send(json!([5, "only-a"]));
    b.send(json!([5, "t"]));
    b.send(json!([5, "t"])); // twice: still one subscription
    topics(&mut a); // a's subscriptions are processed once it has an answer
    assert_eq!(topics(&mut b), json!({"t": 2, "only-a": 1}));
    a.send(json!([7, "t", 1]));
    assert_eq!(a.recv(), json!([8, "t", 1]));
    assert_eq!(b.recv(), json!([8, "t", 1]));
    b.nothing();
    b.send(json!([6, "t"]));
    assert_eq!(topics(&mut b), json!({"t": 1, "only-a": 1}));
    a.send(json!([7, "t", 2]));
    assert_eq!(a.recv(), json!([8, "t", 2]));
    b.nothing();
    a.send(json!([6, "only-a"]));
    assert_eq!(
        topics(&mut a),
        json!({"t": 1}),
        "a topic without subscribers goes away"
    );
    a.send(json!([5, "only-a"]));
    drop(a);
    wait_until("a's subscriptions removed on disconnect", || {
        topics(&mut b) == json!({})
    });
}

#[test]
fn malformed_messages_get_documented_answers() {
    let srv = broker();
    let cases: Vec<(&str, u16)> = vec![
        ("not json", 1007),
        ("{\"an\":\"object\"}", 1007),
        ("[]", 1007),
        ("[\"2\",\"c\",\"p\"]", 1007),
        ("[8,\"t\",1]", 1007),
        ("[42]", 1007),
        ("[5]", 1007),
        ("[5,7]", 1007),
        ("[6,\"a\",\"b\"]", 1007),
        ("[7,\"t\"]", 1007),
        ("[7,\"t\",1,\"me\"]", 1007),
        ("[1,\"a:b\",\"http://x\"]", 1007),
    ];
    let mut bystander = Session::open(&srv);
    bystander.send(json!([5, "t"]));
    bystander.sync();
    for (text, code) in cases {
        let mut s = Session::open(&srv);
        s.c.send_text(text);
        s.c.answer_close(code);
        bystander.send(json!([7, "t", text]));
        assert_eq!(
            bystander.recv(),
            json!([8, "t", text]),
            "others unaffected after {text}"
        );
    }
    let mut s = Session::open(&srv);
    s.c.send_binary(b"[5,\"t\"]");
    s.c.answer_close(1003);
    let mut s = Session::open(&srv);
    let long = "u".repeat(3000);
    s.send(json!([5, long]));
    s.c.answer_close(1007);
}

/// Answers calls later, from a timer, and pushes to a topic from the server.
#[derive(Default)]
struct Deferred {
    pending: Vec<Call>,
}

impl WampApp for Deferred {
    fn on_call(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        call: Call,
        _procedure: &str,
        _args: &[Value],
    ) {
        self.pending.push(call);
        ctx.add_timer(Duration::from_millis(20));
    }
    fn on_subscribe(
        &mut self,
        _: &mut WampContext<'_, '_>,
        _: sprocket::ConnId,
        topic: &str,
    ) -> sprocket::wamp::Subscribe {
        (topic != "forbidden").into()
    }
    fn on_timer(&mut self, ctx: &mut WampContext<'_, '_>, _: sprocket::TimerId) {
        for call in std::mem::take(&mut self.pending) {
            ctx.call_result(&call, &json!("later"));
        }
        let n = ctx.publish("news", &json!("pushed by the server"));
        assert!(n <= 1);
    }
}

#[test]
fn deferred_results_server_push_and_refused_subscription() {
    let srv = TestServer::start(Config::default(), || {
        Router::new().route("/wamp", WampServer::new(Deferred::default()))
    });
    let mut s = Session::open(&srv);
    s.send(json!([5, "news"]));
    s.send(json!([5, "forbidden"]));
    s.send(json!([7, "forbidden", 1]));
    s.send(json!([2, "slow", "anything"]));
    assert_eq!(s.recv(), json!([3, "slow", "later"]));
    assert_eq!(s.recv(), json!([8, "news", "pushed by the server"]));
    s.nothing();
}
