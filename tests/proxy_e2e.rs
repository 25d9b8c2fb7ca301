//! nginx and HAProxy (Debian's, started for real) in front of the binary,
//! TLS at the proxy, with the configs from `contrib/` (their placeholders
//! filled in by the test): a wss:// echo session, the WAMP v1 demo flow,
//! `POST /publish` reaching a subscriber, and the real client address
//! (`--block 127.0.0.2` refuses a client from 127.0.0.2 only, whatever
//! forwarding headers that client forges: the one the proxy does not set
//! passes through it and must be ignored). The client is Python's
//! `websockets`, binding its socket to a chosen loopback source (all of
//! 127/8 is loopback on Linux).

mod common;

use common::binary::{Running, spawn};
use common::pki::Pki;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "proxy-e2e-publish-secret";
const NGINX: &str = "/usr/sbin/nginx";
const HAPROXY: &str = "/usr/sbin/haproxy";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary behind the proxy: trusts 127.0.0.1 (where the proxy
/// connects from), blocks 127.0.0.2, serves `POST /publish` on its public
/// port (no admin listener).
fn sprocket(pki: &Pki, extra: &[&str]) -> Running {
    let secret = pki.path("publish.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut args = vec![
        "--trusted-proxy",
        "127.0.0.1",
        "--block",
        "127.0.0.2",
        "--publish-secret-file",
        &secret,
    ];
    args.extend(extra);
    spawn(env!("CARGO_BIN_EXE_sprocket").as_ref(), &args, &[])
}

/// A port that was free a moment ago (the proxies take a fixed port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A contrib/ template with every `@NAME@` replaced; panics if one is left.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(root().join(template)).unwrap();
    for (name, value) in values {
        let placeholder = format!("@{name}@");
        assert!(
            text.contains(&placeholder),
            "{template} has no {placeholder}"
        );
        text = text.replace(&placeholder, value);
    }
    let left: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.matches('@').count() >= 2)
        .collect();
    assert!(
        left.is_empty(),
        "{template}: unfilled placeholders in {left:?}"
    );
    text
}

/// A proxy process, stopped on drop; `log` names the file its errors go to.
struct Proxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Proxy {
    /// Starts `cmd` and waits until `port` accepts connections.
    fn start(mut cmd: Command, port: u16, log: PathBuf) -> Proxy {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log.with_extension("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut proxy = Proxy { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{cmd:?} exited with {status}: {}", proxy.errors());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not listen on {port}: {}",
                proxy.errors()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the proxy wrote to its error log and stderr.
    fn errors(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.log),
            read(&self.log.with_extension("stderr"))
        )
    }
}

impl Drop for Proxy {
    /// SIGTERM first: nginx's master then stops its workers (a SIGKILL to
    /// the master alone would orphan them); SIGKILL after 5 s.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx from `contrib/nginx/sprocket.conf`, `edit` applied to the filled
/// config (to drop a line, say).
fn nginx(pki: &Pki, upstream: SocketAddr, edit: impl Fn(String) -> String) -> Proxy {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} missing (apt-get install -y nginx-light)"
    );
    let port = free_port();
    let dir = pki.dir.join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = fill(
        "contrib/nginx/sprocket.conf",
        &[
            ("LISTEN", &format!("127.0.0.1:{port}")),
            ("CERT", &pki.path("server.pem")),
            ("KEY", &pki.path("server.key")),
            ("UPSTREAM", &upstream.to_string()),
            ("PREFIX", &dir.display().to_string()),
        ],
    );
    std::fs::write(dir.join("nginx.conf"), edit(conf)).unwrap();
    let log = dir.join("error.log");
    let mut cmd = Command::new(NGINX);
    cmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(&log);
    Proxy::start(cmd, port, log)
}

/// HAProxy from `contrib/haproxy/sprocket.cfg`, in the foreground.
fn haproxy(pki: &Pki, upstream: SocketAddr) -> Proxy {
    assert!(
        Path::new(HAPROXY).exists(),
        "{HAPROXY} missing (apt-get install -y haproxy)"
    );
    let port = free_port();
    let dir = pki.dir.join("haproxy");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = fill(
        "contrib/haproxy/sprocket.cfg",
        &[
            ("LISTEN", &format!("127.0.0.1:{port}")),
            ("PEM", &pki.combined()),
            ("UPSTREAM", &upstream.to_string()),
        ],
    );
    std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
    let mut cmd = Command::new(HAPROXY);
    cmd.arg("-f").arg(dir.join("haproxy.cfg")).arg("-db");
    Proxy::start(cmd, port, dir.join("haproxy.log"))
}

/// The client: one command a line on stdin, one answer a line on stdout.
///   open NAME SRC PATH PROTO HEADERS  (PROTO `-` for none; HEADERS a JSON
///                                      list of [name, value])
///       → `open NAME SUBPROTOCOL` | `status CODE` | `error ...`
///   send NAME TEXT → `sent`;  recv NAME → `msg TEXT` | `timeout`
///   quiet NAME → `quiet` after 200 ms with nothing, else `msg TEXT`
///   http SRC METHOD PATH AUTH BODY → `http STATUS <JSON string of the body>`
const CLIENT: &str = r#"
import asyncio, http.client, json, ssl, sys, websockets
from websockets.exceptions import InvalidStatus
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
def say(*words):
    print(*words, flush=True)
def http_request(src, method, path, auth, body):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5, source_address=(src, 0))
    headers = {"Content-Type": "application/json"}
    if auth != "-":
        headers["Authorization"] = "Bearer " + auth
    c.request(method, path, body=body.encode() if body else None, headers=headers)
    r = c.getresponse()
    return r.status, r.read().decode()
async def main():
    loop = asyncio.get_running_loop()
    conns = {}
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).rstrip("\n")
        if not line or line == "quit":
            return
        cmd, _, rest = line.partition(" ")
        try:
            if cmd == "open":
                name, src, path, proto, headers = rest.split(" ", 4)
                ws = await websockets.connect(
                    f"wss://127.0.0.1:{port}{path}", ssl=ctx,
                    subprotocols=None if proto == "-" else [proto],
                    additional_headers=[tuple(h) for h in json.loads(headers)],
                    local_addr=(src, 0), open_timeout=5)
                conns[name] = ws
                say("open", name, ws.subprotocol)
            elif cmd == "send":
                name, _, text = rest.partition(" ")
                await conns[name].send(text)
                say("sent")
            elif cmd in ("recv", "quiet"):
                wait = 5 if cmd == "recv" else 0.2
                try:
                    say("msg", await asyncio.wait_for(conns[rest].recv(), wait))
                except asyncio.TimeoutError:
                    say("timeout" if cmd == "recv" else "quiet")
            elif cmd == "http":
                src, method, path, auth, body = rest.split(" ", 4)
                status, text = await loop.run_in_executor(None, http_request, src, method, path, auth, body)
                say("http", status, json.dumps(text))
        except InvalidStatus as e:
            say("status", e.response.status_code)
        except Exception as e:
            say("error", type(e).__name__, str(e).replace("\n", " "))
asyncio.run(main())
"#;

struct Client {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Client {
    /// A client of the proxy on `port`, trusting `pki`'s CA.
    fn new(port: u16, pki: &Pki) -> Client {
        let mut child = Command::new("python3")
            .args(["-c", CLIENT, &port.to_string(), &pki.path("ca.pem")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (with websockets: pip install websockets)");
        let out = BufReader::new(child.stdout.take().unwrap());
        Client { child, out }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").unwrap();
        let mut answer = String::new();
        self.out.read_line(&mut answer).unwrap();
        assert!(!answer.is_empty(), "the client died at {line:?}");
        answer.trim_end().to_owned()
    }

    /// Opens connection `name` from `src`; the answer line.
    fn open(&mut self, name: &str, src: &str, path: &str, proto: &str, headers: Value) -> String {
        self.ask(&format!("open {name} {src} {path} {proto} {headers}"))
    }

    fn send(&mut self, name: &str, text: &str) {
        assert_eq!(self.ask(&format!("send {name} {text}")), "sent");
    }

    /// The next message on `name`, as JSON.
    fn recv_json(&mut self, name: &str) -> Value {
        let answer = self.ask(&format!("recv {name}"));
        let text = answer
            .strip_prefix("msg ")
            .unwrap_or_else(|| panic!("{name}: expected a message, got {answer:?}"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// (status, body) of an https request from 127.0.0.5 through the proxy.
    fn http(&mut self, method: &str, path: &str, auth: &str, body: &str) -> (u16, String) {
        let answer = self.ask(&format!("http 127.0.0.5 {method} {path} {auth} {body}"));
        let mut words = answer.splitn(3, ' ');
        assert_eq!(words.next(), Some("http"), "{answer}");
        let status = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let body: String = serde_json::from_str(words.next().unwrap_or("\"\"")).unwrap();
        (status, body)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Prometheus series' value in a scrape.
fn metric(scrape: &str, series: &str) -> u64 {
    common::metric(scrape, series).unwrap_or_else(|| panic!("no {series} in {scrape}"))
}

/// The next log line of `server` with `needle`, within 5 s.
fn logged(server: &Running, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match server.log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no log line with {needle:?} in {seen:#?}");
}

/// A WebSocket session, the WAMP demo, `POST /publish` and the client's
/// address, through `proxy` to `server`. The
/// forged headers are sent by the clients themselves.
fn through(proxy: &Proxy, pki: &Pki, server: &Running) {
    let mut c = Client::new(proxy.port, pki);
    // A WebSocket session over wss:// through the proxy.
    assert_eq!(
        c.open("echo", "127.0.0.3", "/echo", "-", json!([])),
        "open echo None"
    );
    for text in ["hello through the proxy", &"x".repeat(100_000)] {
        assert_eq!(c.ask(&format!("send echo {text}")), "sent");
        assert_eq!(c.ask("recv echo"), format!("msg {text}"));
    }

    // The WAMP v1 demo flow: WELCOME, subscribe, a publish reaching the
    // other session.
    let welcome = |v: &Value| {
        assert_eq!(v[0], 0, "{v}");
        assert_eq!(v[2], 1, "{v}");
        v[1].as_str().unwrap().to_owned()
    };
    assert_eq!(
        c.open("a", "127.0.0.3", "/wamp", "wamp", json!([])),
        "open a wamp"
    );
    assert_eq!(
        c.open("b", "127.0.0.4", "/wamp", "wamp", json!([])),
        "open b wamp"
    );
    let (id_a, id_b) = (welcome(&c.recv_json("a")), welcome(&c.recv_json("b")));
    assert_ne!(id_a, id_b);
    c.send("a", r#"[5, "urn:e2e:chat"]"#);
    // A call as a barrier: the subscription is in place once it answers.
    c.send("a", r#"[2, "sync", "urn:sprocket:echo", "sync"]"#);
    assert_eq!(c.recv_json("a"), json!([3, "sync", "sync"]));
    c.send("b", r#"[7, "urn:e2e:chat", {"from": "b", "text": "hi"}]"#);
    assert_eq!(
        c.recv_json("a"),
        json!([8, "urn:e2e:chat", {"from": "b", "text": "hi"}])
    );
    assert_eq!(c.ask("quiet b"), "quiet", "b did not subscribe");

    // POST /publish through the proxy, with and without the secret.
    let push = r#"{"topic":"urn:e2e:chat","data":{"pushed":true}}"#;
    assert_eq!(c.http("POST", "/publish", "wrong", push).0, 401);
    // sprocket names the client, not the proxy.
    logged(server, "push refused from 127.0.0.5:");
    assert_eq!(
        c.http("POST", "/publish", SECRET, push),
        (200, r#"{"delivered":1}"#.to_owned())
    );
    assert_eq!(
        c.recv_json("a"),
        json!([8, "urn:e2e:chat", {"pushed": true}])
    );

    // The real client address: 127.0.0.2 is blocked, whatever it forges;
    // a forgery naming 127.0.0.2 does not block 127.0.0.3.
    let forged = |addr: &str| {
        json!([
            ["X-Forwarded-For", addr],
            ["Forwarded", format!("for={addr}")]
        ])
    };
    assert_eq!(
        c.open("blocked", "127.0.0.2", "/echo", "-", json!([])),
        "status 403"
    );
    logged(server, "refused");
    assert_eq!(
        c.open("forger", "127.0.0.2", "/echo", "-", forged("127.0.0.3")),
        "status 403"
    );
    let line = logged(server, "refused");
    assert!(
        line.contains(" 127.0.0.2:") && line.ends_with(": 403 address blocked"),
        "{line}"
    );
    assert_eq!(
        c.open("framed", "127.0.0.3", "/echo", "-", forged("127.0.0.2")),
        "open framed None"
    );
    assert_eq!(c.ask("send framed still served"), "sent");
    assert_eq!(c.ask("recv framed"), "msg still served");
}

/// nginx as in contrib: it appends to `X-Forwarded-For` and passes the
/// clients' forged `Forwarded` on untouched; sprocket (default
/// `--forwarded-header x-forwarded-for`) does not read it.
#[test]
fn nginx_in_front_with_tls() {
    let pki = Pki::new("e2e-nginx");
    let server = sprocket(&pki, &[]);
    let proxy = nginx(&pki, server.addr, |c| c);
    through(&proxy, &pki, &server);
    let mut c = Client::new(proxy.port, &pki);
    let (_, metrics) = c.http("GET", "/metrics", "-", "");
    assert!(
        metric(&metrics, "sprocket_forwarded_used_total") >= 8,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "sprocket_forwarded_ignored_total"), 0);
    // The forger's and the framer's Forwarded.
    assert!(
        metric(&metrics, "sprocket_forwarded_other_header_ignored_total") >= 2,
        "{metrics}"
    );
}

/// nginx setting `Forwarded` instead (the contrib config's
/// `X-Forwarded-For` line replaced by the one its comment gives), sprocket
/// with `--forwarded-header forwarded`: nginx now passes the clients'
/// forged `X-Forwarded-For` on untouched, and sprocket does not read it.
#[test]
fn nginx_with_forwarded_only() {
    let pki = Pki::new("e2e-nginx-forwarded");
    let server = sprocket(&pki, &["--forwarded-header", "forwarded"]);
    let proxy = nginx(&pki, server.addr, |conf| {
        let xff = "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;";
        assert!(conf.contains(xff), "the X-Forwarded-For line");
        let forwarded = "proxy_set_header Forwarded \"for=\\\"$remote_addr\\\";proto=$scheme\";";
        assert!(conf.contains(forwarded), "the commented Forwarded line");
        conf.replace(xff, forwarded)
    });
    through(&proxy, &pki, &server);
    let mut c = Client::new(proxy.port, &pki);
    let (_, metrics) = c.http("GET", "/metrics", "-", "");
    assert!(
        metric(&metrics, "sprocket_forwarded_used_total") >= 8,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "sprocket_forwarded_ignored_total"), 0);
    assert!(
        metric(&metrics, "sprocket_forwarded_other_header_ignored_total") >= 2,
        "{metrics}"
    );
}

#[test]
fn haproxy_in_front_with_tls_and_proxy_protocol_v2() {
    let pki = Pki::new("e2e-haproxy");
    let server = sprocket(&pki, &["--proxy-protocol"]);
    let proxy = haproxy(&pki, server.addr);
    through(&proxy, &pki, &server);
    let mut c = Client::new(proxy.port, &pki);
    let (_, metrics) = c.http("GET", "/metrics", "-", "");
    assert!(
        metric(&metrics, "sprocket_proxy_headers_ok_total") >= 8,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "sprocket_proxy_headers_bad_total"), 0);
    // The clients' forged headers came from an untrusted client address
    // (the one in the PROXY header), so they were ignored.
    assert!(
        metric(&metrics, "sprocket_forwarded_ignored_total") >= 2,
        "{metrics}"
    );
}
