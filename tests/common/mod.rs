//! A raw WebSocket client and a server harness for integration tests.
//! The client speaks bytes, so tests can send anything a hostile peer could.
#![allow(dead_code)]

pub mod binary;
pub mod fallible;
pub mod pki;
pub mod pushpin;
pub mod services;

use sprocket::{Application, Config, Server, ShutdownHandle};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A server running on its own thread on 127.0.0.1:0; shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Builds the app on the server thread (apps need not be `Send`).
    pub fn start<A: Application + 'static>(
        mut config: Config,
        build: impl FnOnce() -> A + Send + 'static,
    ) -> Self {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut server = Server::bind(config, build()).expect("bind");
            tx.send((server.local_addr(), server.shutdown_handle()))
                .unwrap();
            server.run().expect("server run");
        });
        let (addr, handle) = rx.recv().expect("server started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Like `start`, but `build` gets the server first (to register Redis
    /// servers, say) and returns the app for the listener.
    pub fn start_with<A: Application + 'static>(
        mut config: Config,
        build: impl FnOnce(&mut Server) -> A + Send + 'static,
    ) -> Self {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let listen = config.listen;
            let mut server = Server::new(config).expect("server");
            let app = build(&mut server);
            server.listen(listen, app).expect("listen");
            tx.send((server.local_addr(), server.shutdown_handle()))
                .unwrap();
            server.run().expect("server run");
        });
        let (addr, handle) = rx.recv().expect("server started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    pub fn client(&self, path: &str) -> Client {
        Client::connect(self.addr, path, &[])
    }

    /// Stops the server and waits for `run` to return.
    pub fn stop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn upgrade_request(path: &str, extra: &[(&str, &str)]) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Sends raw bytes as a request and returns the response, as text: once
/// its head and `Content-Length` body are in (the server may keep the
/// connection open for the next request), or when the server closes.
pub fn http_exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
            if len.is_some_and(|len| out.len() >= end + 4 + len) {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code of an HTTP response text.
pub fn status_of(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, PartialEq, Eq)]
pub struct WsFrame {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 4: compressed).
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl WsFrame {
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap()
    }
}

/// What reading the next frame gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read_ {
    Frame(WsFrame),
    /// The server closed TCP.
    Eof,
    /// Nothing within the timeout.
    Timeout,
}

pub struct Client {
    pub stream: TcpStream,
    pub response: String,
    buf: Vec<u8>,
}

impl Client {
    /// Connects and completes the handshake, panicking unless it gets 101.
    pub fn connect(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Client {
        let c = Client::try_connect(addr, path, extra);
        assert!(
            c.response.starts_with("HTTP/1.1 101 "),
            "handshake failed: {}",
            c.response
        );
        c
    }

    /// Connects and sends the handshake; `response` holds whatever came back.
    pub fn try_connect(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Client {
        Client::connect_raw(addr, upgrade_request(path, extra).as_bytes())
    }

    /// Connects and sends `request` as it is; `response` holds the head
    /// that came back.
    pub fn connect_raw(addr: SocketAddr, request: &[u8]) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut c = Client {
            stream,
            response: String::new(),
            buf: Vec::new(),
        };
        c.stream.write_all(request).unwrap();
        c.read_response();
        c
    }

    fn read_response(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                self.response = String::from_utf8_lossy(&head).into_owned();
                return;
            }
            if !self.fill() {
                break;
            }
        }
        self.response = String::from_utf8_lossy(&self.buf).into_owned();
    }

    /// Reads more bytes; false on EOF, error or timeout.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(_) => false,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.response.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one masked frame. `first` is the whole first header byte.
    pub fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let wire = masked_frame(first, payload);
        self.send_raw(&wire);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(0x81, text.as_bytes());
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(0x82, data);
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(0x88, &p);
    }

    /// Next frame, with the read timeout given.
    pub fn read_timeout(&mut self, timeout: Duration) -> Read_ {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((frame, len)) = parse_server_frame(&self.buf) {
                self.buf.drain(..len);
                return Read_::Frame(frame);
            }
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Read_::Eof,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        return Read_::Timeout;
                    }
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Read_::Eof,
                Err(e) => panic!("read error: {e}"),
            }
        }
    }

    /// Next frame; panics on EOF or after 5 s.
    pub fn read_frame(&mut self) -> WsFrame {
        match self.read_timeout(Duration::from_secs(5)) {
            Read_::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Next data frame's text, skipping pings.
    pub fn read_text(&mut self) -> String {
        loop {
            let f = self.read_frame();
            match f.opcode {
                9 => continue,
                1 => return f.text().to_owned(),
                _ => panic!("expected text, got {f:?}"),
            }
        }
    }

    /// Expects a close frame with `code`, then the server closing TCP.
    pub fn expect_close(&mut self, code: u16) {
        let f = loop {
            let f = self.read_frame();
            if f.opcode != 9 && f.opcode != 10 {
                break f;
            }
        };
        assert_eq!(f.opcode, 8, "expected close, got {f:?}");
        assert_eq!(f.close_code(), Some(code), "close payload {:?}", f.payload);
        assert_eq!(
            self.read_timeout(Duration::from_secs(5)),
            Read_::Eof,
            "server should close TCP"
        );
    }

    /// Expects the server to start a close handshake with `code`; answers
    /// it and expects the server to close TCP.
    pub fn answer_close(&mut self, code: u16) {
        let f = self.read_frame();
        assert_eq!(
            (f.opcode, f.close_code()),
            (8, Some(code)),
            "expected close {code}, got {f:?}"
        );
        self.send_close(code, "");
        assert_eq!(
            self.read_timeout(Duration::from_secs(5)),
            Read_::Eof,
            "server should close TCP"
        );
    }

    /// Round trip on /echo-style apps.
    pub fn echo(&mut self, text: &str) {
        self.send_text(text);
        assert_eq!(self.read_text(), text);
    }
}

/// One frame as a client sends it (the library's client-side encoder).
/// `first` is the whole first header byte.
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sprocket::ws::frame::write_masked_frame(&mut out, first, payload, [0x12, 0x34, 0x56, 0x78]);
    out
}

/// Parses an unmasked server frame at the start of `buf`.
pub fn parse_server_frame(buf: &[u8]) -> Option<(WsFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, hl) = match buf[1] & 0x7F {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let payload = buf.get(hl..hl + len)?.to_vec();
    Some((
        WsFrame {
            fin: buf[0] & 0x80 != 0,
            rsv: (buf[0] >> 4) & 7,
            opcode: buf[0] & 0x0F,
            payload,
        },
        hl + len,
    ))
}

/// Polls `cond` until true or the deadline; for server-side effects.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out waiting for {what}");
}

/// The value of one series (`name{labels}` exactly as rendered) in a
/// Prometheus text scrape, or `None` when the scrape has no such line.
pub fn metric(scrape: &str, series: &str) -> Option<u64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
