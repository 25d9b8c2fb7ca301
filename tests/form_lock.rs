//! The seeds' form-lock application end to end (examples/form-lock/): two
//! users signed in through PHP's own session, locks decided by PHP over
//! the RPC backend, lock changes pushed back through POST /publish, and
//! "entity updated" pushed over ZeroMQ by save.php, as a Doctrine listener
//! would.

mod common;
use common::binary;
use common::services::{Group, free_port, wait_for_port};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/form-lock");
const SECRET: &str = "form-lock-secret";

/// Signs in through the app's /login: the PHPSESSID cookie it sets.
fn sign_in(php: u16, user: u32) -> String {
    let raw = http_exchange(
        SocketAddr::from(([127, 0, 0, 1], php)),
        format!("GET /login?user={user} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status_of(&raw), 303, "{raw}");
    raw.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

struct Page {
    c: Client,
    next: u32,
}

impl Page {
    fn open(addr: SocketAddr, cookie: &str) -> Page {
        let mut c = Client::connect(
            addr,
            "/wamp",
            &[("Sec-WebSocket-Protocol", "wamp"), ("Cookie", cookie)],
        );
        c.read_text();
        c.send_text(r#"[5, "urn:form:invoice-17"]"#);
        let mut page = Page { c, next: 0 };
        page.call("urn:sprocket:echo", "sync");
        page
    }
    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.c.read_text()).unwrap()
    }
    /// Calls; returns the answer and any events that came before it.
    fn call(&mut self, procedure: &str, arg: &str) -> (Value, Vec<Value>) {
        self.next += 1;
        let id = self.next.to_string();
        self.c
            .send_text(&json!([2, id, procedure, arg]).to_string());
        let mut events = Vec::new();
        loop {
            let msg = self.recv();
            if msg[0] == 8 {
                events.push(msg[2].clone());
            } else {
                assert_eq!(msg[1], id, "{msg}");
                return (msg, events);
            }
        }
    }
    /// The next event, from `early` (events already read) or the socket.
    fn event(&mut self, early: &mut Vec<Value>) -> Value {
        if !early.is_empty() {
            return early.remove(0);
        }
        let msg = self.recv();
        assert_eq!(msg[0], 8, "{msg}");
        msg[2].clone()
    }
}

#[test]
fn form_locks_decided_in_php_and_seen_live() {
    let tmp = std::env::temp_dir().join(format!("sprocket-form-lock-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let php_port = free_port();
    let store = format!("files:{}", tmp.display());
    let rpc = format!("http://127.0.0.1:{php_port}/rpc");
    let srv = binary::spawn(
        BIN.as_ref(),
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--session-store",
            &store,
            "--session-user-key",
            "user_id",
            "--rpc-backend",
            &rpc,
            "--rpc-prefix",
            "form-",
            "--push-zmq",
            "tcp://127.0.0.1:0",
        ],
        &[("SPROCKET_PUBLISH_SECRET", SECRET)],
    );
    let admin = srv.admin.unwrap();
    let zmq = srv.logged_after("PULL on tcp://").unwrap();
    let php = Group::spawn(
        Command::new("php")
            .args(["-d", "display_errors=stderr"])
            .args(["-d", &format!("session.save_path={}", tmp.display())])
            .args([
                "-S",
                &format!("127.0.0.1:{php_port}"),
                &format!("{DIR}/backend.php"),
            ])
            .env("PHP_CLI_SERVER_WORKERS", "4")
            .env("SPROCKET_PUBLISH_URL", format!("http://{admin}/publish"))
            .env("SPROCKET_PUBLISH_SECRET", SECRET)
            .env("FORM_LOCK_FILE", tmp.join("locks.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("php (apt-get install -y php-cli)");
    wait_for_port(php_port, "php -S");
    let page = http_exchange(
        SocketAddr::from(([127, 0, 0, 1], php_port)),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(page.contains("Form locks, live"), "{page}");

    let mut ann = Page::open(srv.addr, &sign_in(php_port, 1));
    let mut bob = Page::open(srv.addr, &sign_in(php_port, 2));

    let (answer, mut early) = ann.call("form-lock", "invoice-17");
    assert_eq!(
        answer,
        json!([3, "2", {"form": "invoice-17", "locked_by": "1"}])
    );
    let locked = json!({"event": "locked", "form": "invoice-17", "locked_by": "1"});
    assert_eq!(ann.event(&mut early), locked);
    let (answer, mut early) = bob.call("form-lock", "invoice-17");
    assert_eq!(
        answer,
        json!([4, "2", "urn:form:error:locked", "locked by user 1", {"locked_by": "1"}])
    );
    assert_eq!(bob.event(&mut early), locked, "bob saw ann's lock live");
    let (answer, _) = bob.call("form-unlock", "invoice-17");
    assert_eq!(answer[2], "urn:form:error:not-yours", "{answer}");

    let (answer, mut early) = ann.call("form-unlock", "invoice-17");
    assert_eq!(answer[2]["locked_by"], Value::Null, "{answer}");
    let unlocked = json!({"event": "unlocked", "form": "invoice-17", "locked_by": null});
    assert_eq!(ann.event(&mut early), unlocked);
    assert_eq!(bob.event(&mut Vec::new()), unlocked);

    // The entity is saved elsewhere: save.php pushes through ZeroMQ.
    let out = Command::new("php")
        .args([
            "-d",
            "display_errors=stderr",
            &format!("{DIR}/save.php"),
            "zmq",
        ])
        .arg(format!("tcp://{zmq}"))
        .arg("invoice-17")
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [&mut ann, &mut bob] {
        let event = page.event(&mut Vec::new());
        assert_eq!(event["event"], "updated", "{event}");
        assert_eq!(event["form"], "invoice-17", "{event}");
    }
    drop(php);
    let _ = std::fs::remove_dir_all(&tmp);
}
