//! Decisions kept in PHP: connect authorisation, RPC and subscriptions
//! asked of a real `php -S` backend (tests/php/backend.php) by the
//! binary, including a backend that fails, one that is slow and one that
//! is down, while other clients' round trips stay fast.

mod common;
use common::binary;
use common::services::{PhpServer, free_port, write_php_session};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const BACKEND: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/backend.php");

/// `php -S` serving tests/php/backend.php, with `SESSION_DIR` when given.
fn php_backend(session_dir: Option<&std::path::Path>) -> PhpServer {
    match session_dir {
        Some(dir) => PhpServer::start(BACKEND, &[("SESSION_DIR", dir.as_os_str())]),
        None => PhpServer::start(BACKEND, &[]),
    }
}

fn whole(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> String {
    http_exchange(addr, upgrade_request(path, extra).as_bytes())
}

fn body(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// The round trip of one echo, for "others stay fast".
fn echo_time(c: &mut Client) -> Duration {
    let t = Instant::now();
    c.echo("ping");
    t.elapsed()
}

#[test]
fn connect_authorisation_in_php() {
    let php = php_backend(None);
    let auth = php.url("/auth");
    let srv = binary::spawn(
        BIN.as_ref(),
        &[
            "--auth-backend",
            &auth,
            "--rpc-backend",
            &php.url("/rpc"),
            "--backend-timeout",
            "1s",
        ],
        &[],
    );
    // Accepted, with a user and data the RPC backend then sees.
    let mut c = Client::connect(
        srv.addr,
        "/wamp?token=good",
        &[("Sec-WebSocket-Protocol", "wamp")],
    );
    let welcome: Value = serde_json::from_str(&c.read_text()).unwrap();
    c.send_text(r#"[2, "1", "urn:app:whoami", "x"]"#);
    let result: Value = serde_json::from_str(&c.read_text()).unwrap();
    assert_eq!(result[0], 3, "{result}");
    assert_eq!(result[2]["user"], "u-7", "{result}");
    assert_eq!(result[2]["data"]["role"], "editor", "{result}");
    assert!(
        result[2]["data"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{result}"
    );
    assert_eq!(result[2]["session_id"], welcome[1], "{result}");
    assert_eq!(result[2]["args"], json!(["x"]), "{result}");

    // A header token works as well as a query token; 204 accepts too.
    Client::connect(srv.addr, "/echo", &[("X-Token", "good")]).echo("ok");
    Client::connect(srv.addr, "/echo?token=empty", &[]).echo("ok");

    let raw = whole(srv.addr, "/echo", &[]);
    assert_eq!(status_of(&raw), 401, "{raw}");
    assert_eq!(
        body(&raw),
        "Unauthorized: a token is required\n",
        "first line only"
    );
    let raw = whole(srv.addr, "/echo?token=stolen", &[]);
    assert_eq!(status_of(&raw), 403, "{raw}");
    assert!(body(&raw).contains("bad token stolen"), "{raw}");
    let raw = whole(srv.addr, "/echo?token=crash", &[]);
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert!(body(&raw).contains("authorisation backend failed"), "{raw}");

    // A slow backend: 503 after --backend-timeout; meanwhile an open
    // connection's round trips stay fast.
    let mut bystander = Client::connect(srv.addr, "/echo?token=good", &[]);
    let addr = srv.addr;
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        (whole(addr, "/echo?token=slow", &[]), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let slowest = (0..20).map(|_| echo_time(&mut bystander)).max().unwrap();
    assert!(
        slowest < Duration::from_millis(100),
        "a round trip took {slowest:?}"
    );
    let (raw, took) = slow.join().unwrap();
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_backend_that_is_down_is_a_503_not_a_hang() {
    let port = free_port(); // nothing listens there
    let url = format!("http://127.0.0.1:{port}/auth");
    let srv = binary::spawn(BIN.as_ref(), &["--auth-backend", &url], &[]);
    let t = Instant::now();
    let raw = whole(srv.addr, "/echo?token=good", &[]);
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let metrics = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        metrics.contains("sprocket_backend_auth_total{outcome=\"failed\"} 1\n"),
        "{metrics}"
    );
}

struct Wamp {
    c: Client,
}

impl Wamp {
    fn open(addr: SocketAddr, extra: &[(&str, &str)]) -> Wamp {
        let mut headers = vec![("Sec-WebSocket-Protocol", "wamp")];
        headers.extend_from_slice(extra);
        let mut c = Client::connect(addr, "/wamp", &headers);
        c.read_text();
        Wamp { c }
    }
    fn send(&mut self, v: Value) {
        self.c.send_text(&v.to_string());
    }
    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }
    fn call(&mut self, id: &str, procedure: &str) -> Value {
        self.send(json!([2, id, procedure]));
        self.recv()
    }
}

#[test]
fn rpc_in_php_results_errors_failures_and_a_slow_call() {
    let php = php_backend(None);
    let srv = binary::spawn(
        BIN.as_ref(),
        &[
            "--rpc-backend",
            &php.url("/rpc"),
            "--rpc-prefix",
            "urn:app:",
            "--backend-timeout",
            "1s",
            "--max-calls-in-flight",
            "2",
        ],
        &[],
    );
    let mut w = Wamp::open(srv.addr, &[]);
    // Local procedures are never forwarded; URIs outside the prefix are
    // not either.
    w.send(json!([2, "l", "urn:sprocket:add", 1, 2]));
    assert_eq!(w.recv(), json!([3, "l", 3]));
    assert_eq!(
        w.call("o", "urn:other:x")[2],
        "urn:sprocket:error:no-such-procedure"
    );

    let r = w.call("a", "urn:app:whoami");
    assert_eq!(r[0], 3, "{r}");
    assert_eq!(r[2]["user"], Value::Null);
    assert_eq!(
        w.call("f", "urn:app:fail"),
        json!([4, "f", "urn:app:error:invalid", "bad input", {"field": "x"}])
    );
    let r = w.call("c", "urn:app:crash");
    assert_eq!(r[2], "urn:sprocket:error:backend", "{r}");
    assert!(r[3].as_str().unwrap().contains("500"), "{r}");
    let r = w.call("n", "urn:app:nothing-here");
    assert_eq!(r[2], "urn:app:error:no-such-procedure", "{r}");

    // Two slow calls fill the in-flight bound; a third is refused at
    // once; another client is served meanwhile; the slow ones time out.
    w.send(json!([2, "s1", "urn:app:slow"]));
    w.send(json!([2, "s2", "urn:app:slow"]));
    let t = Instant::now();
    let r = w.call("s3", "urn:app:whoami");
    assert_eq!(r[2], "urn:sprocket:error:busy", "{r}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let mut other = Wamp::open(srv.addr, &[]);
    let t = Instant::now();
    assert_eq!(other.call("o1", "urn:app:whoami")[0], 3);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    for id in ["s1", "s2"] {
        let r = w.recv();
        assert_eq!(r[1], id, "{r}");
        assert_eq!(r[2], "urn:sprocket:error:backend", "{r}");
    }
    // A caller that leaves mid-call harms nothing.
    w.send(json!([2, "gone", "urn:app:slow"]));
    drop(w);
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(other.call("o2", "urn:app:whoami")[0], 3);
}

#[test]
fn subscriptions_decided_in_php() {
    let php = php_backend(None);
    let srv = binary::spawn(
        BIN.as_ref(),
        &[
            "--subscribe-backend",
            &php.url("/subscribe"),
            "--subscribe-prefix",
            "private:",
        ],
        &[],
    );
    let mut w = Wamp::open(srv.addr, &[]);
    // Each asked twice before the answer: the backend is asked once.
    for _ in 0..2 {
        w.send(json!([5, "private:allowed:1"]));
        w.send(json!([5, "private:denied"]));
    }
    w.send(json!([5, "public"]));
    // Wait for the backend's answers: publish on each until the allowed
    // one comes back (publishes reach the publisher in WAMP v1 by default).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        w.send(json!([7, "private:allowed:1", "probe"]));
        w.send(json!([2, "sync", "urn:sprocket:echo", "s"]));
        let first = w.recv();
        if first == json!([8, "private:allowed:1", "probe"]) {
            assert_eq!(w.recv(), json!([3, "sync", "s"]));
            break;
        }
        assert_eq!(first, json!([3, "sync", "s"]));
        assert!(
            Instant::now() < deadline,
            "the backend's 204 never took effect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    w.send(json!([7, "private:denied", "no"]));
    w.send(json!([7, "public", "yes"]));
    assert_eq!(w.recv(), json!([8, "public", "yes"]));
    let metrics = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        metrics.contains("sprocket_backend_subscribe_total{outcome=\"allowed\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sprocket_backend_subscribe_total{outcome=\"refused\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn forwarded_cookies_let_the_backend_use_its_own_session() {
    let dir = std::env::temp_dir().join(format!("sprocket-backends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let id = "cookie00000000000000000001";
    write_php_session(
        &dir,
        id,
        "$_SESSION['user_id'] = 99; $_SESSION['visits'] = 3;",
    );
    let php = php_backend(Some(&dir));
    let store = format!("files:{}", dir.display());
    let srv = binary::spawn(
        BIN.as_ref(),
        &[
            "--rpc-backend",
            &php.url("/rpc"),
            "--forward-cookies",
            "--auth-backend",
            &php.url("/auth"),
            "--session-store",
            &store,
            "--session-user-key",
            "user_id",
        ],
        &[],
    );
    let cookie = format!("PHPSESSID={id}");
    let mut w = Wamp::open(srv.addr, &[("Cookie", &cookie), ("X-Token", "session")]);
    let r = w.call("1", "urn:app:cookie");
    assert_eq!(r, json!([3, "1", {"php_sees": 99}]));
    let r = w.call("2", "urn:app:whoami");
    assert_eq!(
        r[2]["user"], "99",
        "the user from the session, through the auth backend: {r}"
    );
    assert_eq!(r[2]["visits"], 3, "the session as sprocket read it: {r}");
    let _ = std::fs::remove_dir_all(&dir);
}
