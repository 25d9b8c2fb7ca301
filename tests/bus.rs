//! The Redis bus, through the binary: several sprocket processes and one
//! real `redis-server`. Topics span processes (WAMP publishes and every
//! push ingress), exactly once and in publisher order; exclude, eligible
//! and user targets mean the same everywhere; Redis subscriptions follow
//! local interest; and under chaos (pub/sub clients killed, Redis asleep,
//! killed and restarted, a connection that goes silent) every message
//! either arrives once or lies in a gap the receiver counted.

mod common;
use common::binary;
use common::services::{RedisServer, free_port, write_php_session};
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const SECRET: &str = "bus-secret-for-tests";

/// One sprocket process on the bus, with an admin listener.
struct Node {
    inner: binary::Running,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn node(bus: &str, args: &[&str]) -> Node {
    let args = [&["--admin-listen", "127.0.0.1:0", "--bus", bus][..], args].concat();
    let inner = binary::spawn(BIN.as_ref(), &args, &[("SPROCKET_PUBLISH_SECRET", SECRET)]);
    Node {
        addr: inner.addr,
        admin: inner.admin.expect("the admin address"),
        inner,
    }
}

impl Node {
    fn metrics(&self) -> String {
        http_exchange(self.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    /// The value of one metrics line (`name{labels}`), 0 if absent.
    fn metric(&self, line: &str) -> u64 {
        metric(&self.metrics(), line).unwrap_or(0)
    }

    fn health(&self) -> String {
        let raw = http_exchange(self.admin, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status_of(&raw), 200, "{raw}");
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    fn publish(&self, body: &str) -> u16 {
        let req = format!(
            "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        status_of(&http_exchange(self.admin, req.as_bytes()))
    }
}

/// A WAMP v1 session over the byte-level client.
struct Wamp {
    c: Client,
    id: String,
}

impl Wamp {
    fn open(addr: SocketAddr, extra: &[(&str, &str)]) -> Wamp {
        let mut headers = vec![("Sec-WebSocket-Protocol", "wamp")];
        headers.extend_from_slice(extra);
        let mut c = Client::connect(addr, "/wamp", &headers);
        let welcome: Value = serde_json::from_str(&c.read_text()).unwrap();
        let id = welcome[1].as_str().unwrap().to_owned();
        Wamp { c, id }
    }

    fn send(&mut self, v: Value) {
        self.c.send_text(&v.to_string());
    }

    /// SUBSCRIBE, then a call round trip: subscribed here once it answers.
    fn subscribe(&mut self, topic: &str) {
        self.send(json!([5, topic]));
        self.sync();
    }

    fn sync(&mut self) {
        self.send(json!([2, "sync", "urn:sprocket:echo", "sync"]));
        assert_eq!(self.recv(), json!([3, "sync", "sync"]));
    }

    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }

    fn recv_within(&mut self, timeout: Duration) -> Option<Value> {
        match self.c.read_timeout(timeout) {
            Read_::Frame(f) => Some(serde_json::from_str(f.text()).unwrap()),
            Read_::Timeout => None,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    fn nothing(&mut self) {
        assert_eq!(self.recv_within(Duration::from_millis(300)), None);
    }
}

/// Waits until `check` holds, for up to 10 s; `what` names it.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Subscribers of `channel` on Redis, as `PUBSUB NUMSUB` counts them.
fn numsub(redis: &RedisServer, channel: &str) -> u64 {
    let out = redis.cli(&["PUBSUB", "NUMSUB", channel]);
    out.lines().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Takes EVENTs on `topic` until `want` of them came; the others (other
/// topics) are an error.
fn events(w: &mut Wamp, topic: &str, want: usize) -> Vec<Value> {
    (0..want)
        .map(|_| {
            let m = w.recv();
            assert_eq!(m[0], 8, "not an EVENT: {m}");
            assert_eq!(m[1], topic, "{m}");
            m[2].clone()
        })
        .collect()
}

/// Checks that every sender's numbers came exactly once, in order.
fn each_sender_in_order(got: &[Value], senders: &[(&str, u64)]) {
    for (from, count) in senders {
        let ns: Vec<u64> = got
            .iter()
            .filter(|e| e["from"] == *from)
            .map(|e| e["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..*count).collect::<Vec<_>>(), "from {from}");
    }
}

#[test]
fn topics_span_processes_from_every_ingress_exactly_once_in_order() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let zmq_port = free_port();
    let zmq = format!("tcp://127.0.0.1:{zmq_port}");
    let push = ["--push-redis", &url, "--push-channel", "pushes"];
    let a = node(&url, &push);
    let b = node(&url, &push);
    let c = node(&url, &[&push[..], &["--push-zmq", &zmq]].concat());
    let channel = "sprocket:topic:news";

    let mut a1 = Wamp::open(a.addr, &[]);
    let mut a2 = Wamp::open(a.addr, &[]);
    let mut b1 = Wamp::open(b.addr, &[]);
    a1.subscribe("news");
    a2.subscribe("news");
    b1.subscribe("news");
    // Two processes have local subscribers: two Redis subscriptions.
    eventually("NUMSUB 2", || numsub(&redis, channel) == 2);

    // Publishers on every process (C has no subscriber of its own), and
    // every ingress.
    let mut pubs: Vec<Wamp> = [a.addr, b.addr, c.addr]
        .iter()
        .map(|addr| Wamp::open(*addr, &[]))
        .collect();
    const N: u64 = 100;
    for n in 0..N {
        for (p, from) in pubs.iter_mut().zip(["A", "B", "C"]) {
            p.send(json!([7, "news", {"from": from, "n": n}]));
        }
    }
    for n in 0..20 {
        let push = json!({"topic": "news", "data": {"from": "http", "n": n}}).to_string();
        assert_eq!(a.publish(&push), 200);
        let push = json!({"topic": "news", "data": {"from": "redis", "n": n}}).to_string();
        redis.cli(&["PUBLISH", "pushes", &push]);
    }
    let script = format!(
        "import json, zmq\n\
         s = zmq.Context().socket(zmq.PUSH)\n\
         s.connect('{zmq}')\n\
         for n in range(20):\n    \
             s.send_string(json.dumps({{'topic': 'news', 'data': {{'from': 'zmq', 'n': n}}}}))\n\
         s.close(linger=5000)\n"
    );
    let status = Command::new("python3").args(["-c", &script]).status();
    assert!(status.expect("python3 with pyzmq").success());

    let senders = [
        ("A", N),
        ("B", N),
        ("C", N),
        ("http", 20),
        ("redis", 20),
        ("zmq", 20),
    ];
    let total = 3 * N as usize + 60;
    for w in [&mut a1, &mut a2, &mut b1] {
        let got = events(w, "news", total);
        each_sender_in_order(&got, &senders);
        w.nothing();
    }
    // Publishes went to Redis once each; the Redis pushes, which every
    // process hears by itself, were not repeated on the bus.
    assert_eq!(
        a.metric("sprocket_bus_publishes_total{outcome=\"ok\"}"),
        N + 20
    );
    assert_eq!(
        c.metric("sprocket_bus_publishes_total{outcome=\"ok\"}"),
        N + 20
    );
    assert_eq!(
        b.metric("sprocket_bus_messages_total{outcome=\"delivered\"}"),
        2 * N + 40
    );
    assert_eq!(a.metric("sprocket_bus_missed_total"), 0);
    assert_eq!(c.metric("sprocket_bus_channels"), 0);

    // A subscriber on C makes three; when it leaves, C unsubscribes after
    // the linger.
    let mut c1 = Wamp::open(c.addr, &[]);
    c1.subscribe("news");
    eventually("NUMSUB 3", || numsub(&redis, channel) == 3);
    assert_eq!(c.metric("sprocket_bus_channels"), 1);
    pubs[0].send(json!([7, "news", {"from": "A", "n": N}]));
    assert_eq!(c1.recv(), json!([8, "news", {"from": "A", "n": N}]));
    drop(c1);
    eventually("NUMSUB back to 2", || numsub(&redis, channel) == 2);
    assert_eq!(c.metric("sprocket_bus_channels"), 0);
    drop(b);
    eventually("NUMSUB 1 once B is gone", || numsub(&redis, channel) == 1);
}

#[test]
fn exclude_eligible_and_users_mean_the_same_in_every_process() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let dir = std::env::temp_dir().join(format!("sprocket-bus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ann = "ann0000000000000000000001";
    let bob = "bob0000000000000000000002";
    write_php_session(&dir, ann, "$_SESSION['user_id'] = 'ann';");
    write_php_session(&dir, bob, "$_SESSION['user_id'] = 'bob';");
    let store = format!("files:{}", dir.display());
    let sessions = ["--session-store", &store, "--session-user-key", "user_id"];
    let a = node(&url, &sessions);
    let b = node(&url, &sessions);
    let cookie = |id: &str| format!("PHPSESSID={id}");
    let (ca, cb) = (cookie(ann), cookie(bob));
    let mut a_ann = Wamp::open(a.addr, &[("Cookie", &ca)]);
    let mut b_bob = Wamp::open(b.addr, &[("Cookie", &cb)]);
    let mut b_ann = Wamp::open(b.addr, &[("Cookie", &ca)]);
    for w in [&mut a_ann, &mut b_bob, &mut b_ann] {
        w.subscribe("room");
    }
    eventually("both processes subscribed", || {
        numsub(&redis, "sprocket:topic:room") == 2
    });
    let mut publisher = Wamp::open(a.addr, &[]);
    // Clients cannot forge gap notices.
    a_ann.subscribe(META_GAP);
    publisher.send(json!([7, META_GAP, {"topic": "room", "missed": 5}]));
    // exclude a session of the other process.
    publisher.send(json!([7, "room", "not for bob", [b_bob.id]]));
    // eligible: only a session of the other process.
    publisher.send(json!([7, "room", "only bob", [], [b_bob.id]]));
    // A user push through A reaches that user's sockets in both.
    let push = json!({"user": "ann", "topic": "room", "data": "for ann"}).to_string();
    assert_eq!(a.publish(&push), 200);
    assert_eq!(events(&mut b_ann, "room", 2), ["not for bob", "for ann"]);
    // B has all of A's events now. excludeMe from a subscriber on B:
    b_ann.send(json!([7, "room", "from ann on B", true]));
    assert_eq!(
        events(&mut a_ann, "room", 3),
        ["not for bob", "for ann", "from ann on B"]
    );
    assert_eq!(events(&mut b_bob, "room", 2), ["only bob", "from ann on B"]);
    for w in [&mut a_ann, &mut b_bob, &mut b_ann] {
        w.nothing();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_subscriptions_follow_interest_through_thousands_of_cycles() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let baseline = redis.cli(&["PUBSUB", "CHANNELS", "app2:topic:*"]);
    assert_eq!(baseline, "");
    let a = node(&url, &["--bus-prefix", "app2:"]);
    let b = node(&url, &["--bus-prefix", "app2:"]);
    let mut w = Wamp::open(a.addr, &[]);
    // 3,000 subscribe/unsubscribe cycles over 30 topics, in bursts that
    // leave a topic and come back within one loop turn or one linger.
    for round in 0..100 {
        for t in 0..30 {
            w.send(json!([5, format!("t{t}")]));
        }
        if round % 10 == 0 {
            w.sync();
        }
        for t in 0..30 {
            w.send(json!([6, format!("t{t}")]));
        }
    }
    w.sync();
    // The last one stays: its channel too.
    w.subscribe("kept");
    eventually("only the kept channel is left", || {
        redis.cli(&["PUBSUB", "CHANNELS", "app2:topic:*"]) == "app2:topic:kept"
    });
    assert_eq!(a.metric("sprocket_bus_channels"), 1);
    // And it works, from the other process.
    let mut p = Wamp::open(b.addr, &[]);
    p.send(json!([7, "kept", "still here"]));
    assert_eq!(w.recv(), json!([8, "kept", "still here"]));
    drop(w);
    eventually("back to the baseline", || {
        redis.cli(&["PUBSUB", "CHANNELS", "app2:topic:*"]) == baseline
    });
    // The probe channels are the processes' own, under the same prefix.
    let probes = redis.cli(&["PUBSUB", "CHANNELS", "app2:probe:*"]);
    assert_eq!(probes.lines().count(), 2, "{probes}");
}

const META_GAP: &str = "urn:sprocket:meta:gap";

/// What one subscriber on B got from one publisher on A while chaos ran.
struct Run {
    /// The numbers, in the order they came.
    got: Vec<u64>,
    /// The last number sent.
    last: u64,
    /// The events lost, as the gap notices on the meta topic said.
    announced: u64,
    /// Outage notices on the meta topic.
    outages: u64,
}

/// Numbers from one publisher on A reach one subscriber on B (subscribed
/// to the gap notices too) while `chaos` runs.
fn publish_through(a: &Node, b: &Node, topic: &'static str, chaos: impl FnOnce()) -> Run {
    let mut sub = Wamp::open(b.addr, &[]);
    sub.subscribe(topic);
    sub.subscribe(META_GAP);
    // Wait until A hears B: a message from A reaches B.
    let mut p = Wamp::open(a.addr, &[]);
    eventually("B hears A", || {
        p.send(json!([7, topic, "hello"]));
        sub.recv_within(Duration::from_millis(100)) == Some(json!([8, topic, "hello"]))
    });
    while sub.recv_within(Duration::from_millis(200)).is_some() {}
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                p.send(json!([7, topic, {"n": n}]));
                n += 1;
                sent.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            p
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    chaos();
    // Go on publishing after the chaos: delivery must resume.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let _p = publisher.join().unwrap();
    let last = sent.load(Ordering::Relaxed) - 1;
    let (mut got, mut announced, mut outages) = (Vec::new(), 0, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.last() != Some(&last) {
        assert!(
            Instant::now() < deadline,
            "delivery did not resume: last {last}, got up to {:?}",
            got.last()
        );
        let Some(m) = sub.recv_within(Duration::from_millis(500)) else {
            continue;
        };
        if m[1] == META_GAP {
            assert_eq!(m[2]["topic"], topic, "{m}");
            match m[2]["cause"].as_str() {
                Some("gap") => announced += m[2]["missed"].as_u64().unwrap(),
                Some("outage") => outages += 1,
                _ => panic!("{m}"),
            }
        } else {
            got.push(m[2]["n"].as_u64().unwrap());
        }
    }
    Run {
        got,
        last,
        announced,
        outages,
    }
}

/// The invariant: each number at most once and in order, and every one
/// missing between the first and the last counted by B as missed (beyond
/// the `before` it had counted), and announced to the subscriber.
fn every_loss_counted(b: &Node, before: u64, run: &Run) -> u64 {
    let (got, last) = (&run.got, run.last);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "a repeat or a reordering"
    );
    assert_eq!(got.first(), Some(&0), "B was subscribed from the start");
    let holes = last + 1 - got.len() as u64;
    assert_eq!(
        b.metric("sprocket_bus_missed_total") - before,
        holes,
        "every lost message lies in a counted gap"
    );
    assert_eq!(run.announced, holes, "and the subscriber was told");
    holes
}

#[test]
fn pubsub_clients_killed_and_redis_asleep() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let a = node(&url, &[]);
    let b = node(&url, &[]);
    // Redis asleep for less than the probe timeout: late, nothing lost.
    let run = publish_through(&a, &b, "sleepy", || {
        redis.cli(&["DEBUG", "SLEEP", "2"]);
    });
    assert_eq!(every_loss_counted(&b, 0, &run), 0, "nothing lost");
    assert_eq!(run.outages, 0, "the connection stayed up");
    let before = b.metric("sprocket_bus_missed_total");
    // Every pub/sub connection killed: they come back by themselves.
    let run = publish_through(&a, &b, "killed", || {
        let killed: u64 = redis
            .cli(&["CLIENT", "KILL", "TYPE", "pubsub"])
            .parse()
            .unwrap();
        assert_eq!(killed, 2, "one subscriber connection per process");
    });
    let holes = every_loss_counted(&b, before, &run);
    assert_eq!(run.outages, 1, "the subscriber was told of the outage");
    eprintln!(
        "lost while the subscriber reconnected: {holes} of {}",
        run.last + 1
    );
    assert!(b.metric("sprocket_redis_connection_failures_total") >= 1);
}

#[test]
fn redis_killed_and_restarted() {
    let mut redis = RedisServer::start(None);
    let port = redis.port;
    let url = redis.url("", 0);
    let a = node(&url, &[]);
    let b = node(&url, &[]);
    let slot = std::sync::Mutex::new(None);
    // Up once it has connected (it dials at start, not before).
    eventually("B reports the bus up", || b.health() == "ok\nbus: up\n");
    let run = publish_through(&a, &b, "crash", || {
        redis.kill();
        // Still serving (200), and saying the bus is down.
        eventually("B reports the bus down", || b.health() == "ok\nbus: down\n");
        assert_eq!(b.metric("sprocket_bus_up"), 0);
        *slot.lock().unwrap() = Some(RedisServer::start_on(port, None));
    });
    let holes = every_loss_counted(&b, 0, &run);
    assert_eq!(run.outages, 1, "the subscriber was told of the outage");
    assert_eq!(b.health(), "ok\nbus: up\n");
    assert_eq!(b.metric("sprocket_bus_up"), 1);
    eprintln!("lost while Redis was down: {holes} of {}", run.last + 1);
    // Both saw a new Redis (its run_id) and said so.
    for n in [&a, &b] {
        assert_eq!(
            n.metric("sprocket_bus_redis_total{outcome=\"restarted\"}"),
            1
        );
    }
    // Still running, still serving: the process never exits over Redis.
    let mut w = Wamp::open(a.addr, &[]);
    w.sync();
    assert!(a.inner.child.id() > 0);
}

/// A TCP proxy whose connections can be made to go silent while staying
/// open (what a failover or a broken middlebox does); connections made
/// after that flow again.
struct Proxy {
    port: u16,
    /// Connections numbered below this are black holes.
    silent_below: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent_below = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let (silent, counter) = (silent_below.clone(), next.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let id = counter.fetch_add(1, Ordering::SeqCst);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let silent = silent.clone();
                    std::thread::spawn(move || pump(from, to, id, &silent));
                }
            }
        });
        Proxy {
            port,
            silent_below,
            next,
        }
    }

    /// Every connection open now goes silent (bytes read and dropped).
    fn silence(&self) {
        self.silent_below
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, silent: &AtomicU64) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if id >= silent.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_silent_connection_is_found_by_the_probe_and_replaced() {
    let redis = RedisServer::start(None);
    let proxy = Proxy::start(redis.port);
    let via_proxy = format!("redis://127.0.0.1:{}/0", proxy.port);
    let a = node(&redis.url("", 0), &[]);
    let probe = ["--bus-probe-interval", "200ms", "--bus-probe-timeout", "1s"];
    let b = node(&via_proxy, &probe);
    let run = publish_through(&a, &b, "wedged", || proxy.silence());
    let holes = every_loss_counted(&b, 0, &run);
    assert!(holes > 0, "a silent second loses what it carried");
    assert_eq!(run.outages, 1, "the subscriber was told of the outage");
    eprintln!(
        "lost while the connection was silent: {holes} of {}",
        run.last + 1
    );
    assert!(b.metric("sprocket_bus_probes_total{outcome=\"timeout\"}") >= 1);
    assert!(b.metric("sprocket_bus_probes_total{outcome=\"ok\"}") >= 1);
}

#[test]
fn durable_topics_repair_every_loss_from_the_stream() {
    let dir = std::env::temp_dir().join(format!("sprocket-bus-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut redis = RedisServer::start_persistent(port, &dir);
    let url = redis.url("", 0);
    let a = node(&url, &["--durable-topics", "d:"]);
    let b = node(&url, &["--durable-topics", "d:"]);
    let nothing_lost = |run: &Run, what: &str| {
        assert_eq!(every_loss_counted(&b, 0, run), 0, "{what}: a gap");
        assert_eq!(run.outages, 0, "{what}: durable topics repair instead");
        eprintln!("{what}: {} of {} delivered", run.got.len(), run.last + 1);
    };
    let run = publish_through(&a, &b, "d:killed", || {
        redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    });
    nothing_lost(&run, "pub/sub connections killed");
    let slot = std::sync::Mutex::new(None);
    let run = publish_through(&a, &b, "d:crash", || {
        redis.kill();
        std::thread::sleep(Duration::from_millis(700));
        *slot.lock().unwrap() = Some(RedisServer::start_persistent(port, &dir));
    });
    nothing_lost(&run, "Redis killed and restarted");
    assert!(b.metric("sprocket_bus_repairs_total{outcome=\"ok\"}") >= 2);
    // The streams are there, bounded, for whoever reads them.
    let redis = slot.lock().unwrap().take().unwrap();
    let len: u64 = redis
        .cli(&["XLEN", "sprocket:stream:d:crash"])
        .parse()
        .unwrap();
    assert!(len > 0 && len <= run.last + 2 + 100, "XLEN {len}");
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_silent_connection_loses_nothing_on_a_durable_topic() {
    let redis = RedisServer::start(None);
    let proxy = Proxy::start(redis.port);
    let via_proxy = format!("redis://127.0.0.1:{}/0", proxy.port);
    let durable = ["--durable-topics", "d:"];
    let a = node(&redis.url("", 0), &durable);
    let probe = ["--bus-probe-interval", "200ms", "--bus-probe-timeout", "1s"];
    let b = node(&via_proxy, &[&durable[..], &probe[..]].concat());
    let run = publish_through(&a, &b, "d:wedged", || proxy.silence());
    assert_eq!(
        every_loss_counted(&b, 0, &run),
        0,
        "repaired from the stream"
    );
    assert_eq!(run.outages, 0);
    assert!(b.metric("sprocket_bus_probes_total{outcome=\"timeout\"}") >= 1);
}

#[test]
fn a_quiet_durable_topic_gets_what_an_outage_hid() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let durable = ["--durable-topics", "d:"];
    let a = node(&url, &durable);
    let b = node(&url, &durable);
    let mut publisher = Wamp::open(a.addr, &[]);
    publisher.send(json!([7, "d:seats", "before anyone listened"]));
    // In the stream (A sends it to Redis after it answered the sync).
    eventually("the first event in the stream", || {
        redis.cli(&["XLEN", "sprocket:stream:d:seats"]) == "1"
    });
    let mut sub = Wamp::open(b.addr, &[]);
    sub.subscribe("d:seats");
    sub.subscribe(META_GAP);
    eventually("B subscribed on Redis", || {
        numsub(&redis, "sprocket:topic:d:seats") == 1
    });
    // B knows where the stream stood (it asks once subscribed).
    std::thread::sleep(Duration::from_millis(200));
    // The only event while B's subscription is down.
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    publisher.send(json!([7, "d:seats", "seat 12 taken"]));
    publisher.sync();
    assert_eq!(sub.recv(), json!([8, "d:seats", "seat 12 taken"]));
    let extra = sub.recv_within(Duration::from_millis(300));
    assert_eq!(
        extra,
        None,
        "B log: {:?}",
        b.inner.log.try_iter().collect::<Vec<_>>()
    );
    // One read when B began to hear the topic, one after the outage.
    assert_eq!(b.metric("sprocket_bus_repairs_total{outcome=\"ok\"}"), 2);
    assert_eq!(b.metric("sprocket_bus_missed_total"), 0);
}

const META_POSITION: &str = "urn:sprocket:meta:position";

/// Takes EVENTs of `topic` (numbers) and position notices until `until`
/// (numbers, notices so far, CALLRESULT come) says stop; returns the
/// numbers, the last position, and the CALLRESULT of `call` if it came.
fn take_durable(
    w: &mut Wamp,
    topic: &str,
    call: &str,
    mut until: impl FnMut(&[u64], usize, bool) -> bool,
) -> (Vec<u64>, Option<String>, Option<Value>) {
    let (mut got, mut position, mut result) = (Vec::new(), None, None);
    let mut notices = 0;
    while !until(&got, notices, result.is_some()) {
        let Some(m) = w.recv_within(Duration::from_secs(5)) else {
            panic!("stuck with {got:?}, {notices} notices, result {result:?}");
        };
        match m[0].as_u64() {
            Some(8) if m[1] == topic => got.push(m[2]["n"].as_u64().unwrap()),
            Some(8) if m[1] == META_POSITION => {
                assert_eq!(m[2]["topic"], topic, "{m}");
                position = Some(m[2]["position"].as_str().unwrap().to_owned());
                notices += 1;
            }
            Some(3) if m[1] == call => result = Some(m[2].clone()),
            _ => panic!("unexpected {m}"),
        }
    }
    (got, position, result)
}

#[test]
fn a_client_resumes_a_durable_topic_on_another_process() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let durable = ["--durable-topics", "d:"];
    let a = node(&url, &durable);
    let b = node(&url, &durable);
    let mut publisher = Wamp::open(a.addr, &[]);
    let publish = |p: &mut Wamp, range: std::ops::Range<u64>| {
        for n in range {
            p.send(json!([7, "d:log", {"n": n}]));
        }
    };
    // A client on A follows the topic and its positions.
    let mut first = Wamp::open(a.addr, &[]);
    first.subscribe(META_POSITION);
    first.subscribe("d:log");
    eventually("A subscribed on Redis", || {
        numsub(&redis, "sprocket:topic:d:log") == 1
    });
    std::thread::sleep(Duration::from_millis(100));
    publish(&mut publisher, 0..10);
    let (got, position, _) = take_durable(&mut first, "d:log", "-", |got, notices, _| {
        got.len() == 10 && notices == 10
    });
    assert_eq!(
        got,
        (0..10).collect::<Vec<_>>(),
        "the publisher's own process too, in order"
    );
    let position = position.expect("a position notice after each event");
    // Gone; ten more while away.
    drop(first);
    publish(&mut publisher, 10..20);
    eventually("in the stream", || {
        redis.cli(&["XLEN", "sprocket:stream:d:log"]) == "20"
    });
    // Back, on B: resume from the last position seen, while more come.
    let mut back = Wamp::open(b.addr, &[]);
    back.subscribe(META_POSITION);
    back.send(json!([2, "r1", "urn:sprocket:resume", "d:log", position]));
    publish(&mut publisher, 20..30);
    let (got, last, result) = take_durable(&mut back, "d:log", "r1", |got, notices, done| {
        done && got.len() >= 20 && notices == got.len()
    });
    assert_eq!(
        got,
        (10..30).collect::<Vec<_>>(),
        "each missed one once, in order, then live"
    );
    let result = result.unwrap();
    assert_eq!(result["complete"], true, "{result}");
    assert!(result["replayed"].as_u64().unwrap() >= 10, "{result}");
    back.nothing();
    // From the start of what the stream keeps, on a fresh session.
    let mut all = Wamp::open(b.addr, &[]);
    all.send(json!([2, "r2", "urn:sprocket:resume", "d:log", null]));
    let (got, _, result) = take_durable(&mut all, "d:log", "r2", |got, _, done| {
        done && got.len() >= 30
    });
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    assert_eq!(result.unwrap()["replayed"], 30);
    assert!(last.is_some());
    // What a resume refuses, with its reason.
    let mut w = Wamp::open(b.addr, &[]);
    let error = |w: &mut Wamp, args: Value| {
        let mut call = json!([2, "e", "urn:sprocket:resume"]);
        for a in args.as_array().unwrap() {
            call.as_array_mut().unwrap().push(a.clone());
        }
        w.send(call);
        let m = w.recv();
        assert_eq!(
            (m[0].clone(), m[2].clone()),
            (json!(4), json!("urn:sprocket:error:resume")),
            "{m}"
        );
        m[3].as_str().unwrap().to_owned()
    };
    assert!(error(&mut w, json!(["plain", null])).contains("not a durable topic"));
    assert!(error(&mut w, json!(["d:log", "no-position"])).contains("malformed position"));
    assert!(error(&mut w, json!([])).contains("takes [topic, position]"));
    w.subscribe("d:log");
    assert!(error(&mut w, json!(["d:log", null])).contains("already subscribed"));
    assert_eq!(b.metric("sprocket_bus_history_total{outcome=\"ok\"}"), 2);
}
