//! Pushes from the PHP backend into WAMP topics, through the binary:
//! `POST /publish` (from curl and from PHP's own HTTP stream), a Redis
//! channel (`$redis->publish` from php-redis, a pattern, raw mode, Redis
//! killed and back), to WAMP v1 subscribers, all topics or one user's.

mod common;
use common::binary;
use common::services::{RedisServer, write_php_session};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const SECRET: &str = "s3cret-for-tests";

/// The binary with an admin listener and the publish secret.
struct Running {
    inner: binary::Running,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn spawn(args: &[&str]) -> Running {
    let args = [&["--admin-listen", "127.0.0.1:0"][..], args].concat();
    let inner = binary::spawn(BIN.as_ref(), &args, &[("SPROCKET_PUBLISH_SECRET", SECRET)]);
    Running {
        addr: inner.addr,
        admin: inner.admin.expect("the admin address"),
        inner,
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

    fn subscribe(&mut self, topic: &str) {
        self.c.send_text(&json!([5, topic]).to_string());
        // A round trip: the subscription is in place once the answer is.
        self.c
            .send_text(r#"[2, "sync", "urn:sprocket:echo", "sync"]"#);
        assert_eq!(self.recv(), json!([3, "sync", "sync"]));
    }

    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }

    fn nothing(&mut self) {
        assert_eq!(
            self.c.read_timeout(Duration::from_millis(150)),
            Read_::Timeout
        );
    }
}

/// `POST /publish` with `auth` as the bearer secret: (status, body).
fn publish(admin: SocketAddr, auth: Option<&str>, body: &str) -> (u16, String) {
    let auth = auth
        .map(|a| format!("Authorization: Bearer {a}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /publish HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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
fn publish_over_http_answers_every_case() {
    let srv = spawn(&["--max-push-size", "2K"]);
    let mut a = Wamp::open(srv.addr, &[]);
    let mut b = Wamp::open(srv.addr, &[]);
    a.subscribe("urn:news");
    b.subscribe("urn:news");

    let push = r#"{"topic":"urn:news","data":{"title":"hello","n":1.5}}"#;
    assert_eq!(publish(srv.admin, None, push).0, 401);
    assert_eq!(publish(srv.admin, Some("wrong"), push).0, 401);
    let (status, body) = publish(srv.admin, Some(SECRET), "{not json");
    assert_eq!(status, 400);
    assert!(body.contains("not JSON"), "{body}");
    let (status, body) = publish(srv.admin, Some(SECRET), r#"{"topic":"urn:news"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("\\\"data\\\" is missing"), "{body}");
    let big = format!(r#"{{"topic":"urn:news","data":"{}"}}"#, "x".repeat(3000));
    assert_eq!(publish(srv.admin, Some(SECRET), &big).0, 413);
    // None of those reached anybody.
    a.nothing();

    assert_eq!(
        publish(srv.admin, Some(SECRET), push),
        (200, r#"{"delivered":2}"#.to_owned())
    );
    let event = json!([8, "urn:news", {"title": "hello", "n": 1.5}]);
    assert_eq!(a.recv(), event);
    assert_eq!(b.recv(), event);

    // A batch, with exclude and eligible by WAMP session id; a topic
    // nobody subscribed to reaches nobody.
    let batch = json!([
        {"topic": "urn:news", "data": 1, "exclude": [a.id]},
        {"topic": "urn:news", "data": 2, "eligible": [a.id]},
        {"topic": "urn:empty", "data": 3},
    ]);
    assert_eq!(
        publish(srv.admin, Some(SECRET), &batch.to_string()),
        (200, r#"{"delivered":2}"#.to_owned())
    );
    assert_eq!(b.recv(), json!([8, "urn:news", 1]));
    assert_eq!(a.recv(), json!([8, "urn:news", 2]));
    a.nothing();
    b.nothing();

    // The public port has no /publish.
    let raw = http_exchange(
        srv.addr,
        format!(
            "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nContent-Length: {}\r\n\r\n{push}",
            push.len()
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&raw), 404, "{raw}");

    let metrics = http_exchange(srv.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    for line in [
        "sprocket_push_http_total{outcome=\"ok\"} 2\n",
        "sprocket_push_http_total{outcome=\"unauthorized\"} 2\n",
        "sprocket_push_http_total{outcome=\"malformed\"} 2\n",
        "sprocket_push_http_total{outcome=\"too_large\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[test]
fn pushes_from_curl_and_from_php() {
    let srv = spawn(&[]);
    let mut a = Wamp::open(srv.addr, &[]);
    a.subscribe("urn:orders");
    let url = format!("http://{}/publish", srv.admin);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {SECRET}"),
        ])
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(r#"{"topic":"urn:orders","data":{"id":7,"status":"paid"}}"#)
        .arg(&url)
        .output()
        .expect("curl (apt-get install -y curl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"delivered":1}"#);
    assert_eq!(
        a.recv(),
        json!([8, "urn:orders", {"id": 7, "status": "paid"}])
    );

    // What a PHP app without an HTTP client library writes.
    let php = format!(
        r#"$ctx = stream_context_create(['http' => [
            'method' => 'POST',
            'header' => "Authorization: Bearer {SECRET}\r\nContent-Type: application/json\r\n",
            'content' => json_encode(['topic' => 'urn:orders', 'data' => ['id' => 8, 'items' => ['a', 'b']]]),
        ]]);
        echo file_get_contents('{url}', false, $ctx);"#
    );
    let out = Command::new("php")
        .args(["-d", "display_errors=stderr", "-r", &php])
        .output()
        .expect("php (apt-get install -y php-cli)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"delivered":1}"#);
    assert_eq!(
        a.recv(),
        json!([8, "urn:orders", {"id": 8, "items": ["a", "b"]}])
    );
}

fn redis_publish_from_php(port: u16, channel: &str, json: &str) {
    let php = format!(
        "$r = new Redis(); $r->connect('127.0.0.1', {port}); echo $r->publish('{channel}', '{json}');"
    );
    let out = Command::new("php")
        .args(["-d", "display_errors=stderr", "-r", &php])
        .output()
        .expect("php with php-redis");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes until one subscriber of Redis's channel is there (the
/// binary subscribes at start, asynchronously): PUBLISH returns the count.
fn wait_for_redis_subscriber(port: u16, channel: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("php")
            .args(["-r", &format!("$r = new Redis(); $r->connect('127.0.0.1', {port}); echo $r->publish('{channel}', '[]');")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout) == "1" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the binary never subscribed to {channel}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pushes_from_redis_survive_a_redis_restart() {
    let mut redis = RedisServer::start(None);
    let port = redis.port;
    let url = redis.url("", 0);
    let srv = spawn(&["--push-redis", &url, "--push-channel", "app:push"]);
    let mut a = Wamp::open(srv.addr, &[]);
    a.subscribe("urn:stock");
    wait_for_redis_subscriber(port, "app:push");
    redis_publish_from_php(
        port,
        "app:push",
        r#"{"topic":"urn:stock","data":{"sku":"A1","left":3}}"#,
    );
    assert_eq!(a.recv(), json!([8, "urn:stock", {"sku": "A1", "left": 3}]));
    redis_publish_from_php(port, "app:push", "not json");

    redis.kill();
    let redis = RedisServer::start_on(port, None);
    wait_for_redis_subscriber(redis.port, "app:push");
    redis_publish_from_php(
        port,
        "app:push",
        r#"[{"topic":"urn:stock","data":1},{"topic":"urn:stock","data":2}]"#,
    );
    assert_eq!(a.recv(), json!([8, "urn:stock", 1]));
    assert_eq!(a.recv(), json!([8, "urn:stock", 2]));

    let metrics = http_exchange(srv.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        metrics.contains("sprocket_push_redis_total{outcome=\"malformed\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sprocket_redis_connection_failures_total "),
        "{metrics}"
    );
}

#[test]
fn raw_pushes_on_a_redis_pattern_as_ratchet_code_sends_them() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    let srv = spawn(&[
        "--push-redis",
        &url,
        "--push-channel",
        "forms:*",
        "--push-topic-field",
        "form",
    ]);
    let mut a = Wamp::open(srv.addr, &[]);
    a.subscribe("invoice-17");
    wait_for_redis_subscriber(redis.port, "forms:x");
    redis_publish_from_php(
        redis.port,
        "forms:invoice",
        r#"{"form":"invoice-17","locked_by":"ann"}"#,
    );
    assert_eq!(
        a.recv(),
        json!([8, "invoice-17", {"form": "invoice-17", "locked_by": "ann"}])
    );
}

#[test]
fn a_push_to_one_user_reaches_only_their_connections() {
    // Users come from the PHP session (user_id), written by real PHP.
    let dir = std::env::temp_dir().join(format!("sprocket-push-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |id: &str, user: u32| {
        write_php_session(&dir, id, &format!("$_SESSION['user_id'] = {user};"))
    };
    write("ann0000000000000000000001", 1);
    write("bob0000000000000000000002", 2);
    let store = format!("files:{}", dir.display());
    let srv = spawn(&["--session-store", &store, "--session-user-key", "user_id"]);
    let mut ann1 = Wamp::open(
        srv.addr,
        &[("Cookie", "PHPSESSID=ann0000000000000000000001")],
    );
    let mut ann2 = Wamp::open(
        srv.addr,
        &[("Cookie", "PHPSESSID=ann0000000000000000000001")],
    );
    let mut bob = Wamp::open(
        srv.addr,
        &[("Cookie", "PHPSESSID=bob0000000000000000000002")],
    );
    let mut nobody = Wamp::open(srv.addr, &[]);
    for w in [&mut ann1, &mut ann2, &mut bob, &mut nobody] {
        w.subscribe("urn:inbox");
    }
    assert_eq!(
        publish(
            srv.admin,
            Some(SECRET),
            r#"{"user":1,"topic":"urn:inbox","data":"for ann"}"#
        ),
        (200, r#"{"delivered":2}"#.to_owned())
    );
    assert_eq!(ann1.recv(), json!([8, "urn:inbox", "for ann"]));
    assert_eq!(ann2.recv(), json!([8, "urn:inbox", "for ann"]));
    bob.nothing();
    nobody.nothing();
    assert_eq!(
        publish(
            srv.admin,
            Some(SECRET),
            r#"{"user":"2","topic":"urn:inbox","data":"for bob"}"#
        ),
        (200, r#"{"delivered":1}"#.to_owned())
    );
    assert_eq!(bob.recv(), json!([8, "urn:inbox", "for bob"]));
    let _ = std::fs::remove_dir_all(&dir);
}

fn php_zmq_push(port: u16, send: &str) {
    // As the seeds write it (ZMQContext, SOCKET_PUSH, connect, send).
    let php = format!(
        "$context = new ZMQContext();
         $socket = $context->getSocket(ZMQ::SOCKET_PUSH, 'my pusher');
         $socket->connect('tcp://127.0.0.1:{port}');
         {send}"
    );
    let out = Command::new("php")
        .args(["-d", "display_errors=stderr", "-r", &php])
        .output()
        .expect("php with php-zmq (apt-get install -y php-zmq)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn zmq_port(srv: &Running) -> u16 {
    let addr = srv
        .inner
        .logged_after("PULL on tcp://")
        .expect("the ZeroMQ address in the log");
    addr.parse::<SocketAddr>().unwrap().port()
}

#[test]
fn pushes_over_zeromq_from_php_and_pyzmq() {
    let srv = spawn(&["--push-zmq", "tcp://127.0.0.1:0"]);
    let port = zmq_port(&srv);
    let mut a = Wamp::open(srv.addr, &[]);
    a.subscribe("urn:entity:post:5");
    php_zmq_push(
        port,
        r#"$socket->send(json_encode(['topic' => 'urn:entity:post:5', 'data' => ['event' => 'updated', 'by' => 'ann']]));"#,
    );
    assert_eq!(
        a.recv(),
        json!([8, "urn:entity:post:5", {"event": "updated", "by": "ann"}])
    );
    // A multi-part message: the last part is the push.
    php_zmq_push(
        port,
        r#"$socket->sendmulti(['envelope', json_encode(['topic' => 'urn:entity:post:5', 'data' => 2])]);"#,
    );
    assert_eq!(a.recv(), json!([8, "urn:entity:post:5", 2]));
    php_zmq_push(port, "$socket->send('this is not json');");

    // A second ZeroMQ stack: pyzmq's own libzmq.
    let py = format!(
        "import zmq, json\nctx = zmq.Context()\ns = ctx.socket(zmq.PUSH)\ns.connect('tcp://127.0.0.1:{port}')\ns.send(json.dumps({{'topic': 'urn:entity:post:5', 'data': 'from pyzmq'}}).encode())\ns.close(linger=5000)\nctx.term()\n"
    );
    let out = Command::new("python3")
        .args(["-c", &py])
        .output()
        .expect("python3 with pyzmq (pip install pyzmq)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(a.recv(), json!([8, "urn:entity:post:5", "from pyzmq"]));

    // Every pusher has exited: each connection is seen closed.
    let closed = "sprocket_zmq_peers_total{outcome=\"closed\"} 4\n";
    wait_until("the four ZeroMQ peers closed", || {
        http_exchange(srv.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").contains(closed)
    });
    let metrics = http_exchange(srv.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    for line in [
        "sprocket_push_zmq_total{outcome=\"ok\"} 3\n",
        "sprocket_push_zmq_total{outcome=\"malformed\"} 1\n",
        "sprocket_zmq_peers_total{outcome=\"accepted\"} 4\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[test]
fn ratchets_push_tutorial_over_zeromq_in_raw_mode() {
    let srv = spawn(&[
        "--push-zmq",
        "tcp://127.0.0.1:0",
        "--push-topic-field",
        "category",
    ]);
    let port = zmq_port(&srv);
    let mut a = Wamp::open(srv.addr, &[]);
    a.subscribe("kittensCategory");
    php_zmq_push(
        port,
        r#"$entryData = ['category' => 'kittensCategory', 'title' => 'Cute', 'article' => 'Meow', 'when' => 1700000000];
           $socket->send(json_encode($entryData));"#,
    );
    assert_eq!(
        a.recv(),
        json!([8, "kittensCategory", {"category": "kittensCategory", "title": "Cute", "article": "Meow", "when": 1700000000}])
    );
}
