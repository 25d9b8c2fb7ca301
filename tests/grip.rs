//! WebSocket-over-HTTP and GRIP, compared with the real Pushpin: each test
//! runs one scripted scenario against PHP backends written the way a
//! Pushpin user writes them (examples/api-over-sockets/backend.php,
//! tests/grip/edge.php), once behind Pushpin and once behind sprocket's
//! `--grip-route`, and asserts the two transcripts of what the clients saw
//! are equal. The key lines are also asserted on their own, so both being
//! wrong the same way still fails. Pushpin is Debian's 1.36 (see
//! tests/common/pushpin.rs); where its behaviour is a limit rather than
//! the protocol (a message to the client over 32766 bytes stalls; one from
//! the client of 200000 bytes or more drops the connection), the scenarios
//! stay inside it.

mod common;
use common::pushpin::{self, Pushpin};
use common::services::{PhpServer, TempDir, free_port};
use common::{Client, Read_, binary, http_exchange, status_of};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const API: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/api-over-sockets/backend.php"
);
const EDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grip/edge.php");

// ---------------------------------------------------------------------
// The two stacks: php -S behind Pushpin, php -S behind sprocket.

/// `php -S` on `port` running `script` with a few workers (a sleeping
/// request must not hold the others up), killed with its workers on drop.
struct Php {
    _server: PhpServer,
    _data: TempDir,
}

impl Php {
    fn start(script: &str, port: u16, publish_url: &str) -> Php {
        let data = TempDir::new("grip-data");
        let server = PhpServer::start_on(
            port,
            script,
            &[
                ("API_DATA_DIR", data.0.as_os_str()),
                ("GRIP_PUBLISH_URL", publish_url.as_ref()),
            ],
        );
        let php = Php {
            _server: server,
            _data: data,
        };
        // Accepting is not serving yet: one real request (an empty events
        // body, which both backends answer with no events) before any
        // proxy's first OPEN, which has only the proxy's timeout.
        let warm = "POST /warm-up HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Content-Type: application/websocket-events\r\nContent-Length: 0\r\n\
                    Connection: close\r\n\r\n";
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let resp = http_exchange(addr, warm.as_bytes());
        assert_eq!(status_of(&resp), 200, "php warm-up request: {resp}");
        php
    }
}

/// Pushpin says it started before its parts are all connected to each
/// other (ZeroMQ connects in the background): a first handshake could get
/// no answer. Opens (and drops) WebSockets on `path` until one gets its
/// 101, each given 1 s.
fn wait_for_handshake(addr: SocketAddr, path: &str) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut s = std::net::TcpStream::connect(addr).expect("connect to the proxy");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(common::upgrade_request(path, &[]).as_bytes())
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
        if last.starts_with("HTTP/1.1 101 ") {
            // Goodbye, as a client says it.
            let _ = s.write_all(&common::masked_frame(0x88, &1000u16.to_be_bytes()));
            return;
        }
    }
    panic!("no WebSocket handshake through the proxy on {path} within 10 s: {last:?}");
}

enum Proxy {
    Pushpin(Pushpin),
    Sprocket(binary::Running),
}

/// A proxy and the PHP backend behind it. Fields drop in order: the
/// proxy first, then PHP.
struct Stack {
    proxy: Proxy,
    _php: Php,
}

impl Stack {
    fn pushpin(script: &str, path: &str) -> Stack {
        let port = free_port();
        let pp = Pushpin::start(port);
        let php = Php::start(script, port, &pp.publish_url());
        wait_for_handshake(pp.ws_addr(), path);
        Stack {
            proxy: Proxy::Pushpin(pp),
            _php: php,
        }
    }

    /// sprocket with `path` routed to the backend, and the same backend
    /// timeout as the Pushpin stack's zurl.
    fn sprocket(script: &str, path: &str) -> Stack {
        let port = free_port();
        let route = format!("{path}=http://127.0.0.1:{port}{path}");
        let timeout = format!("{}s", pushpin::BACKEND_TIMEOUT_SECS);
        let srv = binary::spawn(
            BIN.as_ref(),
            &[
                "--admin-listen",
                "127.0.0.1:0",
                "--grip-route",
                &route,
                "--backend-timeout",
                &timeout,
            ],
            &[],
        );
        let admin = srv
            .admin
            .unwrap_or_else(|| panic!("no admin address in {:?}", srv.startup));
        let php = Php::start(script, port, &format!("http://{admin}/publish/"));
        Stack {
            proxy: Proxy::Sprocket(srv),
            _php: php,
        }
    }

    fn ws_addr(&self) -> SocketAddr {
        match &self.proxy {
            Proxy::Pushpin(pp) => pp.ws_addr(),
            Proxy::Sprocket(s) => s.addr,
        }
    }

    fn publish_url(&self) -> String {
        match &self.proxy {
            Proxy::Pushpin(pp) => pp.publish_url(),
            Proxy::Sprocket(s) => format!("http://{}/publish/", s.admin.unwrap()),
        }
    }
}

// ---------------------------------------------------------------------
// The transcript driver.

/// One message as a client saw it (fragments put together).
#[derive(Debug, PartialEq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    /// A continuation frame outside a message (its length).
    Stray(usize),
    Eof,
    Timeout,
}

fn sha1(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Msg::Text(t) if t.len() <= 200 => write!(f, "text {t}"),
            Msg::Text(t) => write!(f, "text len={} sha1={}", t.len(), sha1(t.as_bytes())),
            Msg::Binary(b) if b.len() <= 64 => write!(f, "binary {}", hex(b)),
            Msg::Binary(b) => write!(f, "binary len={} sha1={}", b.len(), sha1(b)),
            Msg::Ping(b) => write!(f, "ping {}", hex(b)),
            Msg::Pong(b) => write!(f, "pong {}", hex(b)),
            Msg::Close(None, _) => write!(f, "close (no code)"),
            Msg::Close(Some(c), r) => write!(f, "close {c} {r:?}"),
            Msg::Stray(n) => write!(f, "stray continuation frame of {n} bytes"),
            Msg::Eof => write!(f, "EOF"),
            Msg::Timeout => write!(f, "nothing"),
        }
    }
}

/// Reads one whole message within `timeout`.
fn next_message(c: &mut Client, timeout: Duration) -> Msg {
    let deadline = Instant::now() + timeout;
    let mut partial: Option<(u8, Vec<u8>)> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Msg::Timeout;
        }
        let f = match c.read_timeout(left) {
            Read_::Frame(f) => f,
            Read_::Eof => return Msg::Eof,
            Read_::Timeout => return Msg::Timeout,
        };
        match f.opcode {
            9 => return Msg::Ping(f.payload),
            10 => return Msg::Pong(f.payload),
            8 => {
                let reason = String::from_utf8_lossy(f.payload.get(2..).unwrap_or(&[]));
                return Msg::Close(f.close_code(), reason.into_owned());
            }
            0 => match partial.as_mut() {
                Some((_, data)) => data.extend_from_slice(&f.payload),
                None => return Msg::Stray(f.payload.len()),
            },
            op => {
                assert!(partial.is_none(), "a new message inside a fragmented one");
                partial = Some((op, f.payload));
            }
        }
        if f.fin {
            let (op, data) = partial.take().unwrap();
            return match op {
                1 => Msg::Text(String::from_utf8(data).expect("UTF-8 text")),
                2 => Msg::Binary(data),
                other => panic!("unexpected opcode {other}"),
            };
        }
    }
}

/// A scenario in progress: its clients and the transcript so far.
struct Session {
    ws: SocketAddr,
    path: String,
    publish: String,
    clients: Vec<Client>,
    /// Whether each client has sent its close frame.
    closed: Vec<bool>,
    log: Vec<String>,
}

impl Session {
    fn note(&mut self, line: String) {
        // As it happens too, for a scenario that fails half-way.
        println!("  | {line}");
        self.log.push(line);
    }

    /// Opens a client; records the handshake's status.
    fn open(&mut self) -> usize {
        self.open_with("", &[])
    }

    /// Opens a client with `query` after the path and `extra` headers;
    /// records the status and the headers of the 101 that are not the
    /// handshake's own.
    fn open_with(&mut self, query: &str, extra: &[(&str, &str)]) -> usize {
        let c = Client::try_connect(self.ws, &format!("{}{query}", self.path), extra);
        let n = self.clients.len();
        let status = status_of(&c.response);
        self.note(format!("c{n} open: {status}"));
        for name in [
            "X-Backend",
            "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Extensions",
        ] {
            if let Some(v) = c.header(name) {
                self.note(format!("c{n} open: {name}: {v}"));
            }
        }
        self.clients.push(c);
        self.closed.push(false);
        n
    }

    /// A handshake the backend should refuse: records the status, the
    /// backend's `X-Backend` header and the body the client got.
    fn refused(&mut self, query: &str) {
        let req = common::upgrade_request(&format!("{}{query}", self.path), &[]);
        let resp = http_exchange(self.ws, req.as_bytes());
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let backend = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Backend: "))
            .unwrap_or("-");
        self.note(format!(
            "refused: {} X-Backend: {backend} body {body:?}",
            status_of(&resp)
        ));
    }

    fn text(&mut self, c: usize, text: &str) {
        self.clients[c].send_text(text);
        let shown = Msg::Text(text.to_owned());
        self.note(format!("c{c} > {shown}"));
    }

    fn binary(&mut self, c: usize, data: &[u8]) {
        self.clients[c].send_binary(data);
        let shown = Msg::Binary(data.to_vec());
        self.note(format!("c{c} > {shown}"));
    }

    fn ping(&mut self, c: usize, data: &[u8]) {
        self.clients[c].send_frame(0x89, data);
        self.note(format!("c{c} > ping {}", hex(data)));
    }

    fn close(&mut self, c: usize, code: u16, reason: &str) {
        self.clients[c].send_close(code, reason);
        self.closed[c] = true;
        self.note(format!("c{c} > close {code} {reason:?}"));
    }

    /// The next message on client `c` (5 s at most); recorded.
    fn recv(&mut self, c: usize) -> Msg {
        let m = next_message(&mut self.clients[c], Duration::from_secs(5));
        self.note(format!("c{c} < {m}"));
        m
    }

    /// The next `n` messages on `c`, in an order the protocol leaves open
    /// (e.g. an answer and a publish the same request caused): recorded
    /// sorted.
    fn recv_any_order(&mut self, c: usize, n: usize) -> Vec<String> {
        let mut got: Vec<String> = (0..n)
            .map(|_| next_message(&mut self.clients[c], Duration::from_secs(5)).to_string())
            .collect();
        got.sort();
        for m in &got {
            self.note(format!("c{c} < {m} (any order)"));
        }
        got
    }

    /// Reads until the connection ends (EOF); records each message and
    /// whether it came within `bound` (timed from the call). A close frame
    /// from the proxy is answered with its code, as browsers do, unless
    /// the client closed first.
    fn recv_end(&mut self, c: usize, bound: std::ops::Range<Duration>) {
        let start = Instant::now();
        loop {
            let m = next_message(&mut self.clients[c], bound.end + Duration::from_secs(2));
            let t = start.elapsed();
            let when = if bound.contains(&t) {
                format!("within {:?}..{:?}", bound.start, bound.end)
            } else {
                format!("OUTSIDE {:?}..{:?} (took {t:?})", bound.start, bound.end)
            };
            self.note(format!("c{c} < {m} ({when})"));
            match m {
                Msg::Eof | Msg::Timeout => return,
                Msg::Close(code, _) if !self.closed[c] => {
                    let code = code.unwrap_or(1000);
                    let frame = common::masked_frame(0x88, &code.to_be_bytes());
                    // The proxy may be gone already.
                    let _ = std::io::Write::write_all(&mut self.clients[c].stream, &frame);
                    self.closed[c] = true;
                    self.note(format!("c{c} > close {code} \"\" (the answer)"));
                }
                _ => {}
            }
        }
    }

    /// Posts a GRIP publish body; records the status, and the body of a
    /// success (Pushpin's `Published\n`). An error's text is not part of
    /// the protocol (Pushpin's are in the notes): only its status is kept.
    fn publish(&mut self, body: &str) -> u16 {
        let (status, answer) = post_publish(&self.publish, body);
        if (200..300).contains(&status) {
            self.note(format!("publish -> {status} {answer:?}"));
        } else {
            self.note(format!("publish -> {status}"));
        }
        status
    }

    /// Subscriptions take effect a little after the backend's answer
    /// (Pushpin: a few ms later, through its handler), so a publish right
    /// after it may be missed. Publishes probes to `channel` until client
    /// `c` gets one; `others`, already subscribed, read up to the same
    /// probe. Not recorded: how many probes it took is timing.
    fn await_subscribed(&mut self, c: usize, channel: &str, others: &[usize]) {
        for k in 1..=50 {
            let probe = format!("probe {k}");
            let (status, _) = post_publish(&self.publish, &publish_text(channel, &probe));
            assert_eq!(status, 200, "probe publish");
            loop {
                match next_message(&mut self.clients[c], Duration::from_millis(100)) {
                    Msg::Text(t) if t == probe => {
                        for &o in others {
                            self.skip_to(o, &probe);
                        }
                        return;
                    }
                    Msg::Text(t) if t.starts_with("probe ") => continue,
                    Msg::Timeout => break,
                    m => panic!("c{c}: {m} while waiting to be subscribed to {channel}"),
                }
            }
        }
        panic!("c{c} was not subscribed to {channel} after 50 probes");
    }

    /// The other way round: publishes a probe, waits for `witness` (still
    /// subscribed) to get it, then makes an echo round trip on `c`; done
    /// when the echo comes back with no probe before it.
    fn await_unsubscribed(&mut self, c: usize, channel: &str, witness: usize) {
        for k in 1..=50 {
            let probe = format!("probe {k}");
            let (status, _) = post_publish(&self.publish, &publish_text(channel, &probe));
            assert_eq!(status, 200, "probe publish");
            self.skip_to(witness, &probe);
            let echo = format!("unsubscribed yet? {k}");
            self.clients[c].send_text(&echo);
            match next_message(&mut self.clients[c], Duration::from_secs(5)) {
                Msg::Text(t) if t == echo => return,
                Msg::Text(t) if t.starts_with("probe ") => self.skip_to(c, &echo),
                m => panic!("c{c}: {m} while waiting to be unsubscribed from {channel}"),
            }
        }
        panic!("c{c} was still subscribed to {channel} after 50 probes");
    }

    /// Reads `c` up to the text `want`, skipping probes.
    fn skip_to(&mut self, c: usize, want: &str) {
        loop {
            match next_message(&mut self.clients[c], Duration::from_secs(5)) {
                Msg::Text(t) if t == want => return,
                Msg::Text(t) if t.starts_with("probe ") => continue,
                m => panic!("c{c}: {m} while waiting for {want:?}"),
            }
        }
    }
}

/// Posts `body` to a GRIP publish URL; the status and the answer's body.
fn post_publish(url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// publish URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let addr: SocketAddr = host.parse().unwrap();
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = http_exchange(addr, raw.as_bytes());
    let answer = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status_of(&resp), answer.to_owned())
}

fn publish_text(channel: &str, text: &str) -> String {
    let content = serde_json::to_string(text).unwrap();
    publish_body(channel, &format!(r#"{{"content":{content}}}"#))
}

/// Runs `scenario` against the proxy at `ws` (clients open `path`) with
/// its GRIP publish endpoint at `publish_url`; returns what happened.
fn transcript(
    ws: SocketAddr,
    path: &str,
    publish_url: &str,
    scenario: fn(&mut Session),
) -> Vec<String> {
    let mut s = Session {
        ws,
        path: path.to_owned(),
        publish: publish_url.to_owned(),
        clients: Vec::new(),
        closed: Vec::new(),
        log: Vec::new(),
    };
    scenario(&mut s);
    s.log
}

fn publish_body(channel: &str, format: &str) -> String {
    format!(r#"{{"items":[{{"channel":"{channel}","formats":{{"ws-message":{format}}}}}]}}"#)
}

/// Asserts `want` appear in `got`, in this order (other lines may come
/// between).
fn assert_in_order(got: &[String], want: &[&str], who: &str) {
    let mut at = 0;
    for w in want {
        match got[at..].iter().position(|g| g == w) {
            Some(i) => at += i + 1,
            None => panic!(
                "{who}: expected line {w:?} (in order) in the transcript:\n{}",
                got.join("\n")
            ),
        }
    }
}

fn show_diff(a: &[String], b: &[String]) -> String {
    let mut out = String::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        let mark = if x == y { "  " } else { "!!" };
        out += &format!(
            "{mark} {:<60} | {}\n",
            x.map_or("-", String::as_str),
            y.map_or("-", String::as_str)
        );
    }
    out
}

/// A difference between Pushpin and sprocket that docs/grip.md ("Where
/// sprocket differs from Pushpin") documents as intended: where Pushpin's
/// transcript has the lines `pushpin`, sprocket's must have `sprocket`.
struct Documented {
    why: &'static str,
    pushpin: &'static [&'static str],
    sprocket: &'static [&'static str],
}

/// Pushpin's transcript with the documented differences applied, in
/// order: what sprocket's must be. Each difference must still be there.
fn expected_of_sprocket(reference: &[String], documented: &[Documented]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut at = 0;
    for d in documented {
        let found = (at..=reference.len().saturating_sub(d.pushpin.len())).find(|&i| {
            reference[i..i + d.pushpin.len()]
                .iter()
                .zip(d.pushpin)
                .all(|(a, b)| a == b)
        });
        let Some(i) = found else {
            panic!(
                "the documented difference \"{}\" no longer shows in Pushpin's transcript \
                 (expected {:?}); update the test and docs/grip.md",
                d.why, d.pushpin
            );
        };
        out.extend_from_slice(&reference[at..i]);
        out.extend(d.sprocket.iter().map(|l| l.to_string()));
        at = i + d.pushpin.len();
    }
    out.extend_from_slice(&reference[at..]);
    out
}

/// The scenario behind Pushpin, its key lines checked, then behind
/// sprocket: the transcripts must be the same.
fn against_both(script: &str, path: &str, scenario: fn(&mut Session), key: &[&str]) {
    against_both_except(script, path, scenario, key, &[]);
}

/// The same, but where `documented` differences are expected.
fn against_both_except(
    script: &str,
    path: &str,
    scenario: fn(&mut Session),
    key: &[&str],
    documented: &[Documented],
) {
    // One scenario at a time: Pushpin is four processes and PHP five, on a
    // 2-core machine; run side by side, a backend's first answer could
    // miss the backend timeout, and the timed lines would be about the load.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    println!("--- running behind Pushpin");
    let reference = {
        let stack = Stack::pushpin(script, path);
        transcript(stack.ws_addr(), path, &stack.publish_url(), scenario)
    };
    // Shown when the test fails.
    println!("--- behind Pushpin:\n{}", reference.join("\n"));
    assert_in_order(&reference, key, "Pushpin");
    let expected = expected_of_sprocket(&reference, documented);
    println!("--- running behind sprocket");
    let ours = {
        let stack = Stack::sprocket(script, path);
        transcript(stack.ws_addr(), path, &stack.publish_url(), scenario)
    };
    println!("--- behind sprocket:\n{}", ours.join("\n"));
    assert!(
        expected == ours,
        "sprocket differs from Pushpin{} (expected left, sprocket right):\n{}",
        if documented.is_empty() {
            ""
        } else {
            " beyond the documented differences"
        },
        show_diff(&expected, &ours)
    );
}

// ---------------------------------------------------------------------
// The API over sockets (examples/api-over-sockets).

fn api_scenario(s: &mut Session) {
    // Every client joins "posts" in its OPEN answer.
    let a = s.open();
    s.await_subscribed(a, "posts", &[]);
    s.text(a, r#"{"type":"posts.index","data":{"page":1,"limit":10}}"#);
    s.recv(a);
    s.text(
        a,
        r#"{"type":"tokens.create","data":{"username":"alice","password":"wrong"}}"#,
    );
    s.recv(a);
    s.text(
        a,
        r#"{"type":"tokens.create","data":{"username":"alice","password":"wonderland"}}"#,
    );
    s.recv(a);
    s.text(a, r#"{"type":"posts.index","data":{"page":1,"limit":10}}"#);
    s.recv(a);

    let b = s.open();
    s.await_subscribed(b, "posts", &[a]);
    s.text(
        b,
        r#"{"type":"tokens.create","data":{"username":"bob","password":"builder"}}"#,
    );
    s.recv(b);
    // Alice posts: her answer and the announcement both reach her, and
    // the announcement reaches Bob.
    s.text(
        a,
        r#"{"type":"posts.create","data":{"body":"hello sockets"}}"#,
    );
    s.recv_any_order(a, 2);
    s.recv(b);
    // Exactly once: the next message each sees is its own answer.
    s.text(b, r#"{"type":"posts.index","data":{"page":1,"limit":10}}"#);
    s.recv(b);
    s.text(a, r#"{"type":"posts.index","data":{"page":2,"limit":10}}"#);
    s.recv(a);
    s.text(a, "not json");
    s.recv(a);
    s.close(a, 1000, "");
    s.recv_end(a, Duration::ZERO..Duration::from_secs(2));
}

#[test]
fn api_over_sockets_matches_pushpin() {
    let post = r#"{"id":1,"author":"alice","body":"hello sockets"}"#;
    let created = format!(r#"text {{"type":"posts.created","data":{post}}}"#);
    let answer = format!(r#"text {{"type":"posts.create","status":"ok","data":{post}}}"#);
    let key = [
        "c0 open: 101".to_owned(),
        r#"c0 < text {"type":"posts.index","status":"error"}"#.to_owned(),
        r#"c0 < text {"type":"tokens.create","status":"error"}"#.to_owned(),
        r#"c0 < text {"type":"tokens.create","status":"ok"}"#.to_owned(),
        r#"c0 < text {"type":"posts.index","status":"ok","data":[]}"#.to_owned(),
        "c1 open: 101".to_owned(),
        r#"c1 < text {"type":"tokens.create","status":"ok"}"#.to_owned(),
        format!("c0 < {answer} (any order)"),
        format!("c0 < {created} (any order)"),
        format!("c1 < {created}"),
        format!(r#"c1 < text {{"type":"posts.index","status":"ok","data":[{post}]}}"#),
        r#"c0 < text {"type":"posts.index","status":"ok","data":[]}"#.to_owned(),
        r#"c0 < text {"type":"unknown","status":"error"}"#.to_owned(),
        "c0 < close 1000 \"\" (within 0ns..2s)".to_owned(),
        "c0 < EOF (within 0ns..2s)".to_owned(),
    ];
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    against_both(API, "/api", api_scenario, &key);
}

// ---------------------------------------------------------------------
// Edge cases (tests/grip/edge.php).

fn pattern(n: usize) -> String {
    let unit = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..n).map(|i| unit[i % unit.len()] as char).collect()
}

/// Well past one proxy buffer, under Pushpin's 200000-byte limit for one
/// client message (a bigger one drops the connection). The backend answers
/// with its length and SHA-1.
const CLIENT_BIG: usize = 150_000;
/// What the backend sends: several frames' worth, under the 32766 bytes
/// past which Pushpin 1.36 stalls a message to the client for good.
const BACKEND_BIG: usize = 32_000;

fn binary_and_large(s: &mut Session) {
    let c = s.open();
    let all: Vec<u8> = (0..=255u8).collect();
    s.binary(c, &all);
    s.recv(c);
    s.binary(c, &[]);
    s.recv(c);
    s.text(c, &pattern(CLIENT_BIG));
    s.recv(c);
    s.text(c, &format!("big:{BACKEND_BIG}"));
    s.recv(c);
    s.text(c, "héllo ✓");
    s.recv(c);
}

#[test]
fn edge_binary_and_large_messages_match_pushpin() {
    let all: Vec<u8> = (0..=255u8).collect();
    let bin = format!("c0 < binary len=256 sha1={}", sha1(&all));
    let client_big = format!(
        "c0 < text received {CLIENT_BIG} bytes, sha1 {}",
        sha1(pattern(CLIENT_BIG).as_bytes())
    );
    let backend_big = format!(
        "c0 < text len={BACKEND_BIG} sha1={}",
        sha1(pattern(BACKEND_BIG).as_bytes())
    );
    let key = [
        "c0 open: 101",
        &bin,
        "c0 < binary ",
        &client_big,
        &backend_big,
        "c0 < text héllo ✓",
    ];
    against_both(EDGE, "/edge", binary_and_large, &key);
}

fn backend_fails(s: &mut Session) {
    let c = s.open();
    s.text(c, "before");
    s.recv(c);
    s.text(c, "fail");
    s.recv_end(c, Duration::ZERO..Duration::from_secs(1));
}

#[test]
fn edge_backend_500_matches_pushpin() {
    // Pushpin drops the client without a close frame (a browser sees 1006).
    let key = [
        "c0 open: 101",
        "c0 < text before",
        "c0 > text fail",
        "c0 < EOF (within 0ns..1s)",
    ];
    against_both_except(
        EDGE,
        "/edge",
        backend_fails,
        &key,
        &[Documented {
            why: "a backend failure after the handshake: close 1011",
            pushpin: &["c0 < EOF (within 0ns..1s)"],
            sprocket: &[
                "c0 < close 1011 \"backend error\" (within 0ns..1s)",
                "c0 > close 1011 \"\" (the answer)",
                "c0 < EOF (within 0ns..1s)",
            ],
        }],
    );
}

fn backend_slow(s: &mut Session) {
    let c = s.open();
    s.text(c, "sleep:6");
    s.recv_end(c, Duration::from_secs(2)..Duration::from_millis(4500));
}

#[test]
fn edge_slow_backend_matches_pushpin() {
    // Past the backend timeout (3 s here, zurl's `timeout`): dropped, no
    // close frame, the late answer never arrives.
    let key = [
        "c0 open: 101",
        "c0 > text sleep:6",
        "c0 < EOF (within 2s..4.5s)",
    ];
    against_both_except(
        EDGE,
        "/edge",
        backend_slow,
        &key,
        &[Documented {
            why: "a backend failure after the handshake (a timeout): close 1011",
            pushpin: &["c0 < EOF (within 2s..4.5s)"],
            sprocket: &[
                "c0 < close 1011 \"backend error\" (within 2s..4.5s)",
                "c0 > close 1011 \"\" (the answer)",
                "c0 < EOF (within 2s..4.5s)",
            ],
        }],
    );
}

fn backend_closes(s: &mut Session) {
    let c = s.open();
    s.text(c, "close:4000:going away");
    s.recv(c);
    s.close(c, 4000, "ok");
    s.recv_end(c, Duration::ZERO..Duration::from_secs(2));
}

#[test]
fn edge_backend_close_matches_pushpin() {
    let key = [
        "c0 open: 101",
        "c0 < close 4000 \"going away\"",
        "c0 > close 4000 \"ok\"",
        "c0 < EOF (within 0ns..2s)",
    ];
    against_both(EDGE, "/edge", backend_closes, &key);
}

fn subscriptions(s: &mut Session) {
    let a = s.open();
    let b = s.open();
    s.text(a, "sub:news");
    s.recv(a);
    s.await_subscribed(a, "news", &[]);
    s.text(b, "sub:news");
    s.recv(b);
    s.await_subscribed(b, "news", &[a]);
    s.publish(&publish_body("news", r#"{"content":"n1"}"#));
    s.recv(a);
    s.recv(b);
    s.text(a, "unsub:news");
    s.recv(a);
    s.await_unsubscribed(a, "news", b);
    s.publish(&publish_body("news", r#"{"content":"n2"}"#));
    // b getting n2 shows the publish went out; a's next message must be
    // the answer to its own round trip, not n2.
    s.recv(b);
    s.text(a, "sync");
    s.recv(a);
    s.publish(&publish_body("news", r#"{"content-bin":"AP8BgA=="}"#));
    s.recv(b);
    s.publish(&publish_body("nobody-listens", r#"{"content":"x"}"#));
    s.publish(r#"{"items":[{"formats":{"ws-message":{"content":"x"}}}]}"#);
    s.publish("{not json");
    s.publish(&publish_body("news", "{}"));
    s.text(b, "still here");
    s.recv(b);
}

#[test]
fn edge_subscribe_publish_matches_pushpin() {
    let key = [
        "c0 < text subscribed:news",
        "c1 < text subscribed:news",
        "publish -> 200 \"Published\\n\"",
        "c0 < text n1",
        "c1 < text n1",
        "c0 < text unsubscribed:news",
        "publish -> 200 \"Published\\n\"",
        "c1 < text n2",
        "c0 < text sync",
        "c1 < binary 00ff0180",
        "publish -> 200 \"Published\\n\"",
        // No channel; not JSON; no content.
        "publish -> 400",
        "publish -> 400",
        "publish -> 400",
        "c1 < text still here",
    ];
    against_both(EDGE, "/edge", subscriptions, &key);
}

fn meta_and_control(s: &mut Session) {
    let c = s.open();
    // OPEN was request 1.
    s.text(c, "count");
    s.recv(c);
    s.text(c, "x");
    s.recv(c);
    s.text(c, "count");
    s.recv(c);
    s.ping(c, b"hi");
    s.recv(c);
    s.text(c, "count");
    s.recv(c);
    s.close(c, 4001, "bye");
    s.recv_end(c, Duration::ZERO..Duration::from_secs(2));
}

#[test]
fn edge_set_meta_counter_matches_pushpin() {
    let key = [
        "c0 open: 101",
        "c0 < text count=2",
        "c0 < text x",
        "c0 < text count=4",
        // Pushpin leaves pongs to the backend, which answers PONG.
        "c0 < pong 6869",
        "c0 < text count=6",
        // The backend's own close, answering the client's.
        "c0 < close 4001 \"ack:bye\" (within 0ns..2s)",
        "c0 < EOF (within 0ns..2s)",
    ];
    against_both_except(
        EDGE,
        "/edge",
        meta_and_control,
        &key,
        &[
            Documented {
                why: "client pings are answered by sprocket, not posted (one request fewer)",
                pushpin: &["c0 < text count=6"],
                sprocket: &["c0 < text count=5"],
            },
            Documented {
                why: "the client's close is answered at once with its own code",
                pushpin: &["c0 < close 4001 \"ack:bye\" (within 0ns..2s)"],
                sprocket: &["c0 < close 4001 \"\" (within 0ns..2s)"],
            },
        ],
    );
}

fn keep_alive(s: &mut Session) {
    let c = s.open();
    s.text(c, "keepalive:ka:1");
    s.recv(c);
    // Idle now: the proxy sends "ka" (Pushpin's timer is coarse: well
    // within 3 s); an answer to the client's own message still comes.
    let got = next_message(&mut s.clients[c], Duration::from_secs(3));
    s.note(format!("c{c} < {got} (idle)"));
    s.text(c, "after");
    loop {
        match next_message(&mut s.clients[c], Duration::from_secs(3)) {
            Msg::Text(t) if t == "ka" => continue,
            m => {
                s.note(format!("c{c} < {m} (keep-alives skipped)"));
                break;
            }
        }
    }
}

#[test]
fn edge_keep_alive_matches_pushpin() {
    let key = [
        "c0 < text keepalive set",
        "c0 < text ka (idle)",
        "c0 < text after (keep-alives skipped)",
    ];
    against_both(EDGE, "/edge", keep_alive, &key);
}

fn publish_ids(s: &mut Session) {
    let c = s.open();
    s.text(c, "sub:ids");
    s.recv(c);
    s.await_subscribed(c, "ids", &[]);
    let item = |id: &str, prev: Option<&str>, text: &str| {
        let prev = prev.map_or(String::new(), |p| format!(r#","prev-id":"{p}""#));
        format!(
            r#"{{"items":[{{"channel":"ids","id":"{id}"{prev},"formats":{{"ws-message":{{"content":"{text}"}}}}}}]}}"#
        )
    };
    s.publish(&item("1", None, "one"));
    s.recv(c);
    // The same id again is dropped: the next message is "two".
    s.publish(&item("1", None, "one again"));
    s.publish(&item("2", Some("1"), "two"));
    s.recv(c);
    // "four" follows "three", which is not there yet: held until it is.
    s.publish(&item("4", Some("3"), "four"));
    s.publish(&item("3", Some("2"), "three"));
    s.recv(c);
    s.recv(c);
}

#[test]
fn edge_publish_ids_match_pushpin() {
    let key = [
        "c0 < text one",
        "c0 < text two",
        "c0 < text three",
        "c0 < text four",
    ];
    against_both(EDGE, "/edge", publish_ids, &key);
}

fn unanswered_close(s: &mut Session) {
    let c = s.open();
    s.text(c, "quiet");
    s.recv(c);
    s.close(c, 1000, "");
    s.recv_end(c, Duration::ZERO..Duration::from_secs(2));
}

#[test]
fn edge_unanswered_client_close_matches_pushpin() {
    // The backend does not answer the client's CLOSE: Pushpin gives up on
    // the connection (no keep-alive, so no second chance) and the client
    // gets no close frame.
    let key = [
        "c0 open: 101",
        "c0 < text quiet",
        "c0 > close 1000 \"\"",
        "c0 < EOF (within 0ns..2s)",
    ];
    against_both_except(
        EDGE,
        "/edge",
        unanswered_close,
        &key,
        &[Documented {
            why: "the client's close is answered at once with its own code",
            pushpin: &["c0 < EOF (within 0ns..2s)"],
            sprocket: &[
                "c0 < close 1000 \"\" (within 0ns..2s)",
                "c0 < EOF (within 0ns..2s)",
            ],
        }],
    );
}

fn handshake_headers(s: &mut Session) {
    let c = s.open_with(
        "?headers",
        &[
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ],
    );
    s.text(c, "hi");
    s.recv(c);
}

#[test]
fn edge_handshake_headers_match_pushpin() {
    // The backend's answer to OPEN picks the subprotocol and adds a header
    // of its own; Pushpin passes both to the client in the 101, and offers
    // no extension (permessage-deflate is not forwarded or negotiated).
    let key = [
        "c0 open: 101",
        "c0 open: X-Backend: edge.php",
        "c0 open: Sec-WebSocket-Protocol: chat",
        "c0 < text hi",
    ];
    against_both_except(
        EDGE,
        "/edge",
        handshake_headers,
        &key,
        &[Documented {
            why: "headers of the answer to OPEN: only Sec-WebSocket-Protocol; \
                  permessage-deflate offered (on by default)",
            pushpin: &[
                "c0 open: X-Backend: edge.php",
                "c0 open: Sec-WebSocket-Protocol: chat",
            ],
            sprocket: &[
                "c0 open: Sec-WebSocket-Protocol: chat",
                "c0 open: Sec-WebSocket-Extensions: permessage-deflate; \
                 server_no_context_takeover; client_no_context_takeover",
            ],
        }],
    );
}

fn refusal(s: &mut Session) {
    s.refused("?refuse");
    // And the route still works.
    let c = s.open();
    s.text(c, "after a refusal");
    s.recv(c);
}

#[test]
fn edge_refused_open_matches_pushpin() {
    // Pushpin hands the backend's refusal to the client as it is: status,
    // headers, body.
    let key = [
        "refused: 403 X-Backend: edge.php body \"no entry without a ticket\\n\"",
        "c0 open: 101",
        "c0 < text after a refusal",
    ];
    against_both_except(
        EDGE,
        "/edge",
        refusal,
        &key,
        &[Documented {
            why: "refusal at OPEN: the backend's status and body, not its headers",
            pushpin: &["refused: 403 X-Backend: edge.php body \"no entry without a ticket\\n\""],
            sprocket: &["refused: 403 X-Backend: - body \"no entry without a ticket\\n\""],
        }],
    );
}
