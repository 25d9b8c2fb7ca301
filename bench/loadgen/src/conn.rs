//! Client connections on one mio `Poll`: connect, handshake, read frames,
//! buffer writes and flush them once per event.

use crate::ws::{self, Rng};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nanoseconds since the first call in this process (a monotonic clock all
/// modes share, so timestamps in payloads are comparable).
#[inline]
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What a connection reports to its mode.
pub enum Ev<'a> {
    /// Handshake done (or, raw, TCP connected).
    Open,
    /// A complete data message (fragments already joined).
    Message { opcode: u8, data: &'a [u8] },
    /// Raw mode: unconsumed stream bytes; the handler returns how many it used.
    Raw(&'a [u8]),
}

/// A mode's reaction to connection events. `out` is the connection's output
/// buffer: anything appended is written at the end of the event.
pub trait Handler {
    fn event(
        &mut self,
        idx: usize,
        out: &mut Vec<u8>,
        ev: Ev<'_>,
        now: u64,
    ) -> Result<usize, String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Handshake,
    Open,
    /// We sent a close frame and wait for the server's.
    Closing,
    Closed,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub subprotocol: Option<String>,
    /// No WebSocket at all: a TCP stream of fixed-size records.
    pub raw: bool,
    /// Raw mode: bytes the handler needs before it can use any.
    pub raw_record: usize,
    /// First read buffer size per connection (grows for large frames).
    pub read_buf: usize,
    /// wss://: the client configuration (`--tls-ca`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

pub struct Conn {
    sock: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    pub phase: Phase,
    raw: bool,
    raw_record: usize,
    accept: String,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Bytes needed from `rstart` before the next unit can be parsed.
    need: usize,
    pub wbuf: Vec<u8>,
    wpos: usize,
    frag: Vec<u8>,
    frag_op: u8,
}

impl Conn {
    fn new(t: &Target, rng: &mut Rng) -> std::io::Result<Conn> {
        let sock = TcpStream::connect(t.addr)?;
        sock.set_nodelay(true)?;
        let (mut wbuf, accept) = if t.raw {
            (Vec::new(), String::new())
        } else {
            let (key, accept) = ws::new_key(rng);
            let host = t.addr.to_string();
            (
                ws::request(&host, &t.path, &key, t.subprotocol.as_deref()),
                accept,
            )
        };
        wbuf.reserve(256);
        let tls = match &t.tls {
            Some(cfg) => Some(crate::tls::session(cfg, t.addr)?),
            None => None,
        };
        Ok(Conn {
            sock,
            tls,
            phase: Phase::Connecting,
            raw: t.raw,
            raw_record: t.raw_record.max(1),
            accept,
            rbuf: vec![0; t.read_buf.max(256)],
            rstart: 0,
            rend: 0,
            need: 1,
            wbuf,
            wpos: 0,
            frag: Vec::new(),
            frag_op: 0,
        })
    }

    /// Starts the closing handshake (or, raw, half-closes).
    pub fn close(&mut self, code: u16, rng: &mut Rng) {
        if matches!(self.phase, Phase::Open) {
            if self.raw {
                if let Some(tls) = self.tls.as_mut() {
                    tls.send_close_notify();
                } else {
                    let _ = self.sock.shutdown(std::net::Shutdown::Write);
                }
            } else {
                ws::encode(&mut self.wbuf, ws::OP_CLOSE, 2, rng.next() as u32, |p| {
                    p.copy_from_slice(&code.to_be_bytes())
                });
            }
            self.phase = Phase::Closing;
        }
    }

    /// Writes buffered output until done or the socket is full.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.phase == Phase::Connecting {
            return Ok(());
        }
        while self.wpos < self.wbuf.len() {
            let written = match self.tls.as_mut() {
                Some(tls) => crate::tls::write(tls, &mut self.sock, &self.wbuf[self.wpos..]),
                None => self.sock.write(&self.wbuf[self.wpos..]),
            };
            match written {
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if let Some(tls) = self.tls.as_mut() {
            crate::tls::flush(tls, &mut self.sock).map_err(|e| format!("write: {e}"))?;
        }
        Ok(())
    }

    /// Handles readiness; Ok(false) when the connection is finished.
    fn ready<H: Handler>(&mut self, idx: usize, h: &mut H, readable: bool) -> Result<bool, String> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.sock.take_error() {
                return Err(format!("connect: {e}"));
            }
            match self.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(true),
                Err(e) => return Err(format!("connect: {e}")),
            }
            if self.raw {
                self.phase = Phase::Open;
                h.event(idx, &mut self.wbuf, Ev::Open, now_ns())?;
            } else {
                self.phase = Phase::Handshake;
            }
        }
        if readable && !self.read_all(idx, h)? {
            return Ok(false);
        }
        self.flush()?;
        Ok(self.phase != Phase::Closed)
    }

    fn make_room(&mut self) {
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        let len = self.rbuf.len();
        if self.rstart + self.need > len || (self.rstart > 0 && len - self.rend < 2048) {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.need > self.rbuf.len() || self.rend == self.rbuf.len() {
            let want = self.need.max(self.rbuf.len() * 2).next_power_of_two();
            self.rbuf.resize(want, 0);
        }
    }

    fn read_all<H: Handler>(&mut self, idx: usize, h: &mut H) -> Result<bool, String> {
        loop {
            self.make_room();
            let space = self.rbuf.len() - self.rend;
            let got = match self.tls.as_mut() {
                Some(tls) => crate::tls::read(tls, &mut self.sock, &mut self.rbuf[self.rend..]),
                None => self.sock.read(&mut self.rbuf[self.rend..]),
            };
            match got {
                Ok(0) => {
                    return match self.phase {
                        Phase::Closing | Phase::Closed => Ok(false),
                        _ => Err("connection closed by the server".into()),
                    };
                }
                Ok(n) => {
                    self.rend += n;
                    self.process(idx, h, now_ns())?;
                    if self.phase == Phase::Closed {
                        return Ok(false);
                    }
                    // (Under TLS a short read says nothing about the
                    // socket: read on until it would block.)
                    if n < space && self.tls.is_none() {
                        // A short read emptied the socket; edge-triggered
                        // epoll reports the next arrival.
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn process<H: Handler>(&mut self, idx: usize, h: &mut H, now: u64) -> Result<(), String> {
        loop {
            let avail = &self.rbuf[self.rstart..self.rend];
            match self.phase {
                Phase::Connecting | Phase::Closed => return Ok(()),
                Phase::Handshake => match ws::check_response(avail, &self.accept)? {
                    None => {
                        self.need = avail.len() + 256;
                        return Ok(());
                    }
                    Some(n) => {
                        self.rstart += n;
                        self.phase = Phase::Open;
                        self.need = 1;
                        h.event(idx, &mut self.wbuf, Ev::Open, now)?;
                    }
                },
                Phase::Open | Phase::Closing if self.raw => {
                    let used = h.event(idx, &mut self.wbuf, Ev::Raw(avail), now)?;
                    self.rstart += used.min(avail.len());
                    self.need = self.raw_record;
                    return Ok(());
                }
                Phase::Open | Phase::Closing => {
                    let Some(hd) = ws::parse_header(avail)? else {
                        self.need = avail.len() + 14;
                        return Ok(());
                    };
                    let total = hd.header_len + hd.payload_len;
                    if avail.len() < total {
                        self.need = total;
                        return Ok(());
                    }
                    self.need = 1;
                    let p0 = self.rstart + hd.header_len;
                    let p1 = self.rstart + total;
                    self.rstart = p1;
                    match hd.opcode {
                        ws::OP_TEXT | ws::OP_BINARY => {
                            if self.frag_op != 0 {
                                return Err("data frame inside a fragmented message".into());
                            }
                            if hd.fin {
                                let ev = Ev::Message {
                                    opcode: hd.opcode,
                                    data: &self.rbuf[p0..p1],
                                };
                                h.event(idx, &mut self.wbuf, ev, now)?;
                            } else {
                                self.frag_op = hd.opcode;
                                self.frag.clear();
                                self.frag.extend_from_slice(&self.rbuf[p0..p1]);
                            }
                        }
                        ws::OP_CONT => {
                            if self.frag_op == 0 {
                                return Err("continuation without a message".into());
                            }
                            self.frag.extend_from_slice(&self.rbuf[p0..p1]);
                            if hd.fin {
                                let ev = Ev::Message {
                                    opcode: self.frag_op,
                                    data: &self.frag,
                                };
                                h.event(idx, &mut self.wbuf, ev, now)?;
                                self.frag_op = 0;
                            }
                        }
                        ws::OP_PING => {
                            let key = (now as u32) ^ (p0 as u32).rotate_left(16) ^ 0x5bd1_e995;
                            let (rbuf, wbuf) = (&self.rbuf, &mut self.wbuf);
                            ws::encode(wbuf, ws::OP_PONG, p1 - p0, key, |d| {
                                d.copy_from_slice(&rbuf[p0..p1])
                            });
                        }
                        ws::OP_PONG => {}
                        _ => {
                            // Close.
                            if self.phase == Phase::Closing {
                                self.phase = Phase::Closed;
                                return Ok(());
                            }
                            let body = &self.rbuf[p0..p1];
                            let code = if body.len() >= 2 {
                                u16::from_be_bytes([body[0], body[1]])
                            } else {
                                1005
                            };
                            let reason = String::from_utf8_lossy(body.get(2..).unwrap_or(&[]));
                            return Err(format!("server closed the connection: {code} {reason}"));
                        }
                    }
                }
            }
        }
    }
}

/// Many connections on one poll.
pub struct Driver {
    poll: Poll,
    events: Events,
    pub conns: Vec<Option<Conn>>,
    pub rng: Rng,
    /// Connections that failed, with the reason.
    pub failures: Vec<(usize, String)>,
    /// Connections that finished a clean close.
    pub closed: usize,
}

impl Driver {
    /// The first three connection failures, for a report's problems.
    pub fn first_failures(&self) -> Vec<String> {
        self.failures
            .iter()
            .take(3)
            .map(|(i, e)| format!("conn {i}: {e}"))
            .collect()
    }

    pub fn new() -> std::io::Result<Self> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            rng: Rng::seeded(),
            failures: Vec::new(),
            closed: 0,
        })
    }

    /// Starts a connection; its index is its token.
    pub fn connect(&mut self, t: &Target) -> Result<usize, String> {
        let idx = self.conns.len();
        let mut c = Conn::new(t, &mut self.rng).map_err(|e| format!("connect: {e}"))?;
        self.poll
            .registry()
            .register(
                &mut c.sock,
                Token(idx),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        self.conns.push(Some(c));
        Ok(idx)
    }

    /// Live (not failed, not closed) connections.
    pub fn live(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    fn drop_conn(&mut self, idx: usize) {
        if let Some(mut c) = self.conns[idx].take() {
            let _ = self.poll.registry().deregister(&mut c.sock);
        }
    }

    fn fail(&mut self, idx: usize, why: String) {
        self.failures.push((idx, why));
        self.drop_conn(idx);
    }

    /// Flushes one connection's output (after the mode appended to it).
    pub fn flush(&mut self, idx: usize) {
        if let Some(c) = self.conns[idx].as_mut()
            && let Err(e) = c.flush()
        {
            self.fail(idx, e);
        }
    }

    /// Starts the closing handshake on every open connection.
    pub fn close_all(&mut self, code: u16) {
        for idx in 0..self.conns.len() {
            if let Some(c) = self.conns[idx].as_mut() {
                c.close(code, &mut self.rng);
            }
            self.flush(idx);
        }
    }

    /// One poll and the events it returned.
    pub fn turn<H: Handler>(&mut self, h: &mut H, timeout: Duration) -> Result<(), String> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout))
            && e.kind() != ErrorKind::Interrupted
        {
            return Err(format!("poll: {e}"));
        }
        let mut finished = Vec::new();
        for ev in self.events.iter() {
            let idx = ev.token().0;
            let Some(Some(c)) = self.conns.get_mut(idx) else {
                continue;
            };
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            match c.ready(idx, h, readable) {
                Ok(true) => {}
                Ok(false) => finished.push((idx, None)),
                Err(e) => finished.push((idx, Some(e))),
            }
        }
        for (idx, why) in finished {
            match why {
                Some(e) => self.fail(idx, e),
                None => {
                    self.closed += 1;
                    self.drop_conn(idx);
                }
            }
        }
        Ok(())
    }

    /// Turns until `done` holds or `limit` passes; true if `done` held.
    pub fn run_until<H: Handler>(
        &mut self,
        h: &mut H,
        limit: Duration,
        mut done: impl FnMut(&Self, &H) -> bool,
    ) -> Result<bool, String> {
        let end = Instant::now() + limit;
        loop {
            if done(self, h) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(false);
            }
            self.turn(h, (end - now).min(Duration::from_millis(5)))?;
        }
    }
}
