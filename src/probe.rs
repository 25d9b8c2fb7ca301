//! `sprocket probe`: a one-shot WebSocket check for monitors and process
//! managers that cannot speak WebSocket themselves. It runs in its own
//! process, so plain blocking sockets with deadlines are the right tool;
//! the protocol is the library's (`ws::ClientHandshake`, the client role of
//! `ws::Connection`).

use sprocket::ws::{self, ClientHandshake, Connection, Event, Settings, Shared, WsUrl};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// What to check.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// `ws://host:port/path`.
    pub url: String,
    /// Message to send; a reply to it is awaited.
    pub text: Option<String>,
    /// Subprotocol to ask for; `wamp` waits for WAMP v1's WELCOME.
    pub protocol: Option<String>,
    /// Limit for the whole check.
    pub timeout: Duration,
}

/// What `--text` defaults to when there is no WAMP WELCOME to wait for.
const DEFAULT_TEXT: &str = "sprocket probe";

/// Runs the check: `Ok` with a line for stdout, `Err` with the one line
/// saying what failed.
pub fn run(opts: &ProbeOptions) -> Result<String, String> {
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let url = WsUrl::parse(&opts.url).map_err(|e| e.to_string())?;
    let fail = |what: String| format!("{url}: {what}");
    let mut stream = connect(&url, deadline).map_err(fail)?;
    let protocols: Vec<&str> = opts.protocol.as_deref().into_iter().collect();
    let mut out = Vec::new();
    let mut hs = ClientHandshake::start(&url, &protocols, random(), &mut out);
    stream
        .write_all(&out)
        .map_err(|e| fail(format!("cannot send the handshake: {e}")))?;
    let mut input = Vec::new();
    let accepted = loop {
        match hs.handle_input(&input) {
            Ok(Some(ok)) => break ok,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("{e}{}", refusal_body(&input)))),
        }
        read_more(&mut stream, &mut input, deadline, "the handshake response").map_err(fail)?;
    };
    input.drain(..accepted.head_len);
    let mut probe = Probe {
        conn: Connection::client(
            Instant::now(),
            u64::from_ne_bytes(random()[..8].try_into().unwrap_or_default()),
        ),
        shared: Shared::new(ws::deflate::DeflateConfig::default()),
        settings: Settings {
            ping_interval: None,
            ..Settings::default()
        },
        stream,
        input,
        deadline,
    };
    let wamp = accepted.protocol.as_deref() == Some("wamp");
    let mut what = Vec::new();
    if wamp {
        let welcome = probe.next_message("WAMP WELCOME").map_err(fail)?;
        if !welcome.starts_with("[0,") {
            return Err(fail(format!(
                "expected WAMP WELCOME [0, ...], got {}",
                shorten(&welcome)
            )));
        }
        what.push("WAMP WELCOME");
    }
    let text = opts.text.as_deref().or((!wamp).then_some(DEFAULT_TEXT));
    if let Some(text) = text {
        probe.send(text).map_err(fail)?;
        probe.next_message("a reply").map_err(fail)?;
        what.push("a reply");
    }
    let elapsed = started.elapsed();
    probe.close();
    Ok(format!(
        "ok: {url} answered with {} in {:.1} ms",
        what.join(" and "),
        elapsed.as_secs_f64() * 1000.0
    ))
}

/// The open connection.
struct Probe {
    conn: Connection,
    shared: Shared,
    settings: Settings,
    stream: TcpStream,
    input: Vec<u8>,
    deadline: Instant,
}

impl Probe {
    fn send(&mut self, text: &str) -> Result<(), String> {
        let mut out = Vec::new();
        self.conn
            .send(true, text.as_bytes(), &mut self.shared, &mut out);
        self.stream
            .write_all(&out)
            .map_err(|e| format!("cannot send: {e}"))
    }

    /// Waits for the next data message (text or binary, shown as text).
    fn next_message(&mut self, what: &str) -> Result<String, String> {
        loop {
            let mut out = Vec::new();
            let (used, event) = self.conn.handle_input(
                &mut self.input,
                Instant::now(),
                &self.settings,
                &mut self.shared,
                &mut out,
            );
            let found = match event {
                Some(Event::Text(t)) => Some(Ok(t.to_owned())),
                Some(Event::Binary(b)) => Some(Ok(String::from_utf8_lossy(b).into_owned())),
                Some(Event::Assembled(_)) => Some(Ok(String::from_utf8_lossy(
                    &self.conn.take_message(),
                )
                .into_owned())),
                Some(Event::Closed { code, reason }) => Some(Err(format!(
                    "the server closed the connection with {code}{} while waiting for {what}",
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    }
                ))),
                Some(Event::Failed(e)) => Some(Err(format!("protocol error from the server: {e}"))),
                None => None,
            };
            self.input.drain(..used);
            if !out.is_empty() {
                let _ = self.stream.write_all(&out); // pongs, our close answer
            }
            if let Some(found) = found {
                return found;
            }
            read_more(&mut self.stream, &mut self.input, self.deadline, what)?;
        }
    }

    /// Closes politely: close 1000, then a short wait for the answer.
    fn close(mut self) {
        let mut out = Vec::new();
        if self
            .conn
            .close(1000, "probe done", Instant::now(), &mut out)
        {
            let _ = self.stream.write_all(&out);
            self.deadline = self.deadline.min(Instant::now() + Duration::from_secs(1));
            while self.next_message("the close answer").is_ok() {}
        }
    }
}

/// Connects to the first address of `url` that answers before `deadline`.
fn connect(url: &WsUrl, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    let mut last = format!("no address for {}", url.host);
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out connecting".into());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                last = format!("timed out connecting to {addr}")
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Reads more bytes before `deadline`; an error names what was awaited.
fn read_more(
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    deadline: Instant,
    what: &str,
) -> Result<(), String> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out waiting for {what}"));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("socket error: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("the server closed the connection before {what}")),
            Ok(n) => {
                input.extend_from_slice(&buf[..n]);
                return Ok(());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("timed out waiting for {what}"));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("connection lost waiting for {what}: {e}")),
        }
    }
}

/// 16 bytes from the system's random source.
fn random() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Masking keys and the handshake nonce only need to be fresh here;
        // fall back to the clock rather than fail the check.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = t.to_ne_bytes();
    }
    b
}

/// The first line of a refusal's body, if it came with the head, as
/// ` (reason)`: sprocket's refusals carry their reason there.
fn refusal_body(input: &[u8]) -> String {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        return String::new();
    };
    let body = String::from_utf8_lossy(&input[end + 4..]);
    match body.lines().next().map(str::trim) {
        Some(line) if !line.is_empty() => format!(" ({})", shorten(line)),
        _ => String::new(),
    }
}

/// At most 80 characters of a message, for an error line.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
