//! sprocket's Pusher codecs against the real Node server SDK (npm
//! `pusher` 5.3.4, installed from tests/pusher/package-lock.json): every
//! signature the SDK makes verifies here (channel authorisation, presence,
//! user sign-in, each HTTP API call it sends), the bodies it triggers with
//! parse, and the SDK accepts the webhook signature sprocket makes.

use serde_json::{Value, json};
use sprocket::pusher::api::{self, Limits};
use sprocket::pusher::auth::{self, ApiAuthError, ApiRequest};
use sprocket::pusher::protocol::{self, Member};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const APP: &str = "4242";
const KEY: &str = "app-key-1";
const SECRET: &str = "app-secret-1";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pusher")
}

/// `npm ci` when the SDK is not installed yet (or the lock changed).
fn install() {
    let dir = dir();
    let stamp = dir.join("node_modules/.sprocket-installed-lock");
    let lock = std::fs::read(dir.join("package-lock.json")).expect("package-lock.json");
    if std::fs::read(&stamp).ok().as_deref() == Some(&lock[..]) {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("npm (Node.js 20 or later) is needed for the Pusher SDK tests");
    assert!(status.success(), "npm ci in tests/pusher failed");
    std::fs::write(stamp, lock).unwrap();
}

/// One HTTP request as the SDK sent it.
#[derive(Debug)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

/// Reads requests off one connection, answering each 200 `{}`.
fn serve(stream: TcpStream, tx: mpsc::Sender<Recorded>) {
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut length = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).unwrap();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let rec = Recorded {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            body,
        };
        if tx.send(rec).is_err() {
            return;
        }
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        );
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_node_sdk_and_sprocket_agree_on_every_signature() {
    install();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(s, tx));
        }
    });
    let hook_body =
        r#"{"time_ms":1700000000000,"events":[{"name":"channel_occupied","channel":"orders"}]}"#;
    let cfg = json!({
        "port": port, "appId": APP, "key": KEY, "secret": SECRET,
        "webhook": {"body": hook_body, "signature": auth::webhook_signature(SECRET, hook_body.as_bytes())},
    });
    let child = Command::new("node")
        .arg(dir().join("sdk-sign.js"))
        .arg(cfg.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    // Bounded: a hung SDK call fails the test rather than hanging it.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(child.wait_with_output()));
    let out = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the SDK script finished within 30 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sdk-sign.js failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let socket = "1234.5678";

    // Channel authorisation, as the app's /broadcasting/auth answers it.
    let private = step("private")["auth"].as_str().unwrap();
    assert_eq!(
        auth::check_channel(KEY, SECRET, private, socket, "private-orders.1", None),
        Ok(())
    );
    assert_eq!(
        private,
        auth::channel_auth(KEY, SECRET, socket, "private-orders.1", None)
    );
    assert!(
        auth::check_channel(KEY, SECRET, private, "1234.5679", "private-orders.1", None).is_err()
    );
    let presence = step("presence");
    let data = presence["channel_data"].as_str().unwrap();
    let member = Member::parse(data).unwrap();
    assert_eq!(member.user_id, "7");
    assert_eq!(member.user_info, json!({"name": "Ann"}));
    assert_eq!(
        auth::check_channel(
            KEY,
            SECRET,
            presence["auth"].as_str().unwrap(),
            socket,
            "presence-room.1",
            Some(data)
        ),
        Ok(())
    );
    let user = step("user");
    let user_data = user["user_data"].as_str().unwrap();
    assert_eq!(
        auth::check_user(
            KEY,
            SECRET,
            user["auth"].as_str().unwrap(),
            socket,
            user_data
        ),
        Ok(())
    );
    assert_eq!(protocol::signed_in_user(user_data).unwrap(), "7");

    // The SDK checks sprocket's webhook signature.
    assert_eq!(step("webhook")["valid"], true);
    assert_eq!(step("webhook")["tampered"], false);
    assert_eq!(step("done")["step"], "done");

    // Every API call verifies, and parses.
    let calls: Vec<Recorded> = (0..4)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(5))
                .expect("an API call")
        })
        .collect();
    for c in &calls {
        let req = ApiRequest {
            method: &c.method,
            path: &c.path,
            query: &c.query,
            body: &c.body,
        };
        assert!(
            auth::check_api(&req, KEY, SECRET, now(), auth::API_WINDOW).is_ok(),
            "{c:?}: {:?}",
            auth::check_api(&req, KEY, SECRET, now(), auth::API_WINDOW)
        );
        if !c.body.is_empty() {
            let mut changed = c.body.clone();
            changed.push(b' ');
            let tampered = ApiRequest {
                body: &changed,
                ..req
            };
            assert_eq!(
                auth::check_api(&tampered, KEY, SECRET, now(), auth::API_WINDOW),
                Err(ApiAuthError::BodyMd5)
            );
        }
        assert_eq!(
            auth::check_api(&req, KEY, "another secret", now(), auth::API_WINDOW),
            Err(ApiAuthError::BadSignature)
        );
    }
    let limits = Limits::default();
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/apps/4242/events")
    );
    let t = api::parse_trigger(&calls[0].body, &limits).unwrap();
    assert_eq!(t.name, "App\\Events\\OrderShipped");
    assert_eq!(t.channels, ["private-orders.1", "orders"]);
    assert_eq!(t.socket_id.as_deref(), Some(socket));
    assert_eq!(t.info.as_deref(), Some("subscription_count"));
    let data: Value = serde_json::from_str(&t.data).unwrap();
    assert_eq!(data, json!({"id": 1, "note": "a, b & c"}));

    assert_eq!(calls[1].path, "/apps/4242/batch_events");
    let batch = api::parse_batch(&calls[1].body, &limits).unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(
        (batch[0].name.as_str(), batch[0].channels[0].as_str()),
        ("one", "a")
    );
    assert_eq!(batch[1].data, "text");

    assert_eq!(
        (calls[2].method.as_str(), calls[2].path.as_str()),
        ("GET", "/apps/4242/channels")
    );
    let params = auth::query_params(&calls[2].query).unwrap();
    assert!(
        params.contains(&("filter_by_prefix".into(), "presence-".into())),
        "{params:?}"
    );
    assert!(
        params.contains(&("info".into(), "user_count".into())),
        "{params:?}"
    );

    assert_eq!(
        (calls[3].method.as_str(), calls[3].path.as_str()),
        ("POST", "/apps/4242/users/7/terminate_connections")
    );
}
