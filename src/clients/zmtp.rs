//! ZMTP 3.x, the ZeroMQ wire protocol, for the accepting PULL side of
//! PUSH/PULL, sans I/O.
//!
//! Specs: rfc.zeromq.org 37/ZMTP (ZMTP 3.1) and 23/ZMTP (3.0), whose framing
//! and NULL mechanism are the same. A [`ZmtpConn`] is one accepted TCP
//! connection from a PUSH socket (PHP's `ZMQ::SOCKET_PUSH`, libzmq,
//! pyzmq): the reactor feeds it what it reads ([`ZmtpConn::handle_input`]),
//! writes [`ZmtpConn::transmit`] and reports progress with
//! [`ZmtpConn::advance_transmit`], and drains [`ZmtpConn::poll_event`].
//!
//! The connection, in order:
//!
//! 1. **Greeting** (64 octets each way). Ours is queued at construction,
//!    whole: 37/ZMTP "Backwards Interoperability": "When a peer does not need
//!    backwards interoperability, it SHOULD send its full greeting
//!    immediately". libzmq sends its signature, waits for ours, sends its
//!    major version, waits for ours, then the rest; having all 64 of ours
//!    from the start, it never waits on us. The peer's greeting is checked
//!    as its octets arrive: signature, major version ≥ 3 (any minor: "A peer
//!    MUST accept higher protocol versions"), mechanism exactly `NULL`.
//!    ZMTP 1.0/2.0 peers, other mechanisms: [`ZmtpError`], closed.
//! 2. **NULL handshake.** The peer (the client: "The peer that binds SHALL be
//!    the server") sends READY; we check its Socket-Type is PUSH and answer
//!    READY with `Socket-Type` `PULL`, or ERROR and close.
//! 3. **Traffic.** Messages of one or more frames come out as
//!    [`Event::Message`]; PING is answered with PONG echoing its context;
//!    PONG, SUBSCRIBE, CANCEL and unknown commands are ignored (as libzmq
//!    does); ERROR ends the connection.
//!
//! We never send a PING, so a ZMTP 3.0 peer (no PING/PONG) never sees a
//! command it does not know: everything we send is 3.0 as well as 3.1.
//!
//! Input is consumed whole on every call: each payload byte is copied once,
//! from the caller's buffer straight into the [`Message`] it belongs to,
//! and the at most 9 octets of a frame header split across reads wait in a
//! fixed array. So the reactor never keeps or compacts unparsed bytes for
//! this connection and can read every ZMTP socket into one shared buffer;
//! a 300 KB frame in 4 KiB reads is parsed once, not once per read. A
//! declared length is checked against the limits and never allocated: the
//! message grows only as its bytes arrive.

mod error;
mod message;
mod meta;
#[cfg(test)]
mod tests;

pub use error::{Category, ZmtpError};
pub use message::Message;
pub use meta::{Metadata, SocketType};

use std::collections::VecDeque;
use std::time::Duration;

/// The size of a greeting.
pub const GREETING_LEN: usize = 64;

/// Our greeting: signature (padding zero, as 37/ZMTP asks of peers that
/// send it whole), version 3.1, mechanism `NULL`, as-server 0 (NULL has no
/// roles), filler.
pub const GREETING: [u8; GREETING_LEN] = {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12] = b'N';
    g[13] = b'U';
    g[14] = b'L';
    g[15] = b'L';
    g
};

/// Our READY: `%d5 "READY"`, then `Socket-Type` = `PULL` (PULL sockets send
/// no Identity, as libzmq's don't).
const READY: &[u8] = b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PULL";

/// Frame flag bits (37/ZMTP "Framing").
const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;
const RESERVED: u8 = 0xF8;

/// The longest PING context (`ping-context = 0*16OCTET`).
const MAX_PING_CONTEXT: usize = 16;

/// Bounds on what one connection may make us hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Largest message frame body ([`ZmtpError::FrameTooLarge`]).
    pub max_frame: usize,
    /// Largest message, all parts together ([`ZmtpError::MessageTooLarge`]).
    pub max_message: usize,
    /// Most parts in one message ([`ZmtpError::TooManyParts`]).
    pub max_parts: usize,
    /// Largest command body, READY included ([`ZmtpError::CommandTooLarge`]).
    pub max_command: usize,
    /// Most unwritten output (PONGs) before [`ZmtpError::TransmitBacklog`].
    pub max_transmit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_frame: 1 << 20,
            max_message: 1 << 20,
            max_parts: 16,
            max_command: 64 << 10,
            max_transmit: 64 << 10,
        }
    }
}

/// What the connection has to tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake is complete; messages may follow.
    Ready {
        /// Always [`SocketType::Push`]: other types are refused.
        peer_socket_type: SocketType,
        /// The version in the peer's greeting (major, minor), e.g. (3, 1).
        peer_version: (u8, u8),
        /// All properties of the peer's READY (Socket-Type, Identity, ...).
        metadata: Metadata,
    },
    /// One complete message (all its frames; never part of one).
    Message(Message),
    /// The connection failed: write what [`ZmtpConn::transmit`] still holds
    /// (best effort), then close. Nothing follows.
    Error(ZmtpError),
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the peer's greeting.
    Greeting,
    /// Waiting for the peer's READY.
    Handshake,
    /// Messages and commands.
    Traffic,
    /// An error was reported; input is ignored.
    Failed,
}

/// Where the frame decoder is, inside the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// `len` octets of flags and size are in `buf` (1 + 1 or 1 + 8).
    Header { buf: [u8; 9], len: usize },
    /// A command body of which `left` octets are still to come.
    Command { left: usize },
    /// A message frame body of which `left` octets are still to come.
    Body { left: usize, more: bool },
}

const FRESH: Frame = Frame::Header {
    buf: [0; 9],
    len: 0,
};

/// One accepted ZMTP connection, the PULL side, sans I/O.
#[derive(Debug)]
pub struct ZmtpConn {
    settings: Settings,
    phase: Phase,
    greeting: [u8; GREETING_LEN],
    greeting_len: usize,
    frame: Frame,
    /// The command being received.
    command: Vec<u8>,
    /// The message being received, and how many of its frames have begun.
    message: Message,
    parts: usize,
    out: Vec<u8>,
    written: usize,
    events: VecDeque<Event>,
    ttl: Option<Duration>,
    pings: u64,
}

impl ZmtpConn {
    /// A connection the reactor just accepted; our greeting is already in
    /// [`ZmtpConn::transmit`].
    pub fn server(settings: Settings) -> ZmtpConn {
        ZmtpConn {
            settings,
            phase: Phase::Greeting,
            greeting: [0; GREETING_LEN],
            greeting_len: 0,
            frame: FRESH,
            command: Vec::new(),
            message: Message::default(),
            parts: 0,
            out: GREETING.to_vec(),
            written: 0,
            events: VecDeque::new(),
            ttl: None,
            pings: 0,
        }
    }

    /// Feeds bytes read from the socket. All of `data` is consumed (held
    /// state is at most a frame header, a command, and the message being
    /// received); after an error, input is ignored.
    pub fn handle_input(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let step = match self.phase {
                Phase::Failed => return,
                Phase::Greeting => self.greeting_input(data),
                Phase::Handshake | Phase::Traffic => self.frame_input(data),
            };
            match step {
                // Every step uses at least one byte.
                Ok(used) => data = data.get(used.max(1)..).unwrap_or_default(),
                Err(e) => return self.fail(e),
            }
        }
    }

    /// The next event, if any. Call until `None` after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to write (greeting, READY, PONGs, ERROR), borrowed from the
    /// connection's own buffer: write straight from it, then call
    /// [`ZmtpConn::advance_transmit`].
    pub fn transmit(&self) -> &[u8] {
        self.out.get(self.written..).unwrap_or_default()
    }

    /// `n` bytes of [`ZmtpConn::transmit`] were written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.out.len());
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
    }

    /// The handshake is complete and no error happened: messages flow.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Traffic
    }

    /// An [`Event::Error`] was reported: flush [`ZmtpConn::transmit`] and
    /// close.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// The version in the peer's greeting, once it arrived.
    pub fn peer_version(&self) -> Option<(u8, u8)> {
        (self.greeting_len > 11).then(|| (self.greeting[10], self.greeting[11]))
    }

    /// The TTL of the peer's latest PING, if not zero: 37/ZMTP says to
    /// consider the connection dead when nothing more arrives within it.
    pub fn heartbeat_ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// How many PINGs were answered.
    pub fn pings(&self) -> u64 {
        self.pings
    }

    /// Reports `e` and stops. During the NULL handshake the peer gets an
    /// ERROR command first (37/ZMTP: "it SHOULD handle errors by returning
    /// an ERROR command, and then disconnecting the peer"); in the greeting
    /// it may not speak ZMTP 3, and after the handshake ERROR means nothing.
    fn fail(&mut self, e: ZmtpError) {
        if self.phase == Phase::Handshake && !matches!(e, ZmtpError::PeerError(_)) {
            let reason = e.reason().as_bytes();
            let size = 1 + 5 + 1 + reason.len();
            self.out.extend_from_slice(&[COMMAND, size as u8, 5]);
            self.out.extend_from_slice(b"ERROR");
            self.out.push(reason.len() as u8);
            self.out.extend_from_slice(reason);
        }
        self.phase = Phase::Failed;
        self.command = Vec::new();
        self.message = Message::default();
        self.events.push_back(Event::Error(e));
    }

    fn greeting_input(&mut self, data: &[u8]) -> Result<usize, ZmtpError> {
        let n = (GREETING_LEN - self.greeting_len).min(data.len());
        let at = self.greeting_len;
        self.greeting[at..at + n].copy_from_slice(&data[..n]);
        self.greeting_len += n;
        check_greeting(&self.greeting[..self.greeting_len])?;
        if self.greeting_len == GREETING_LEN {
            self.phase = Phase::Handshake;
        }
        Ok(n)
    }

    fn frame_input(&mut self, data: &[u8]) -> Result<usize, ZmtpError> {
        match self.frame {
            Frame::Header { mut buf, len } => {
                let flags = if len == 0 {
                    data.first().copied().unwrap_or(0)
                } else {
                    buf[0]
                };
                if flags & RESERVED != 0 {
                    return Err(ZmtpError::ReservedFlags(flags));
                }
                let need = if flags & LONG != 0 { 9 } else { 2 };
                let n = (need - len).min(data.len());
                buf[len..len + n].copy_from_slice(&data[..n]);
                self.frame = Frame::Header { buf, len: len + n };
                if len + n == need {
                    let size = match flags & LONG {
                        0 => u64::from(buf[1]),
                        _ => u64::from_be_bytes([
                            buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8],
                        ]),
                    };
                    self.begin_frame(flags, size)?;
                }
                Ok(n)
            }
            Frame::Command { left } => {
                let n = left.min(data.len());
                self.command.extend_from_slice(&data[..n]);
                self.frame = Frame::Command { left: left - n };
                if left == n {
                    self.end_command()?;
                }
                Ok(n)
            }
            Frame::Body { left, more } => {
                let n = left.min(data.len());
                self.message.extend(&data[..n]);
                self.frame = Frame::Body {
                    left: left - n,
                    more,
                };
                if left == n {
                    self.end_part(more);
                }
                Ok(n)
            }
        }
    }

    /// A frame header is complete: check it against the rules and limits
    /// before any of its body is taken.
    fn begin_frame(&mut self, flags: u8, size: u64) -> Result<(), ZmtpError> {
        let s = self.settings;
        if flags & COMMAND != 0 {
            if flags & MORE != 0 {
                return Err(ZmtpError::CommandWithMore);
            }
            let left = usize::try_from(size)
                .ok()
                .filter(|&n| n <= s.max_command)
                .ok_or(ZmtpError::CommandTooLarge(size))?;
            self.command.clear();
            self.frame = Frame::Command { left };
            if left == 0 {
                self.end_command()?;
            }
            return Ok(());
        }
        if self.phase == Phase::Handshake {
            return Err(ZmtpError::ExpectedReady);
        }
        let left = usize::try_from(size)
            .ok()
            .filter(|&n| n <= s.max_frame)
            .ok_or(ZmtpError::FrameTooLarge(size))?;
        if self.parts >= s.max_parts {
            return Err(ZmtpError::TooManyParts);
        }
        if self.message.size().saturating_add(left) > s.max_message {
            return Err(ZmtpError::MessageTooLarge);
        }
        if self.parts > 0 {
            self.message.begin_part();
        }
        self.parts += 1;
        let more = flags & MORE != 0;
        self.frame = Frame::Body { left, more };
        if left == 0 {
            self.end_part(more);
        }
        Ok(())
    }

    /// A message frame's body is complete.
    fn end_part(&mut self, more: bool) {
        self.frame = FRESH;
        if !more {
            let message = std::mem::take(&mut self.message);
            self.parts = 0;
            self.events.push_back(Event::Message(message));
        }
    }

    /// A command frame's body is complete: `command-body = command-name
    /// command-data`, `command-name = short-size 1*255command-name-char`.
    fn end_command(&mut self) -> Result<(), ZmtpError> {
        self.frame = FRESH;
        let body = std::mem::take(&mut self.command);
        let result = self.command(&body);
        // Keep a small buffer for the next command, not a big one.
        if body.capacity() <= 4096 {
            self.command = body;
        }
        result
    }

    fn command(&mut self, body: &[u8]) -> Result<(), ZmtpError> {
        let (&len, rest) = body.split_first().ok_or(ZmtpError::MalformedCommand)?;
        let len = usize::from(len);
        if len == 0 || rest.len() < len || !rest[..len].iter().all(u8::is_ascii_alphabetic) {
            return Err(ZmtpError::MalformedCommand);
        }
        let (name, data) = rest.split_at(len);
        match (self.phase, name) {
            (_, b"ERROR") => Err(ZmtpError::PeerError(error_reason(data))),
            (Phase::Handshake, b"READY") => self.ready(data),
            (Phase::Handshake, _) => Err(ZmtpError::ExpectedReady),
            (_, b"READY") => Err(ZmtpError::DuplicateReady),
            (_, b"PING") => self.ping(data),
            // PONG (we never ping), SUBSCRIBE/CANCEL/JOIN/LEAVE (not for
            // PULL) and commands we do not know: ignored, as libzmq does.
            _ => Ok(()),
        }
    }

    /// The peer's READY: its metadata must be well-formed and its socket
    /// type PUSH (37/ZMTP "The Socket-Type Property").
    fn ready(&mut self, data: &[u8]) -> Result<(), ZmtpError> {
        let metadata = Metadata::parse(data).ok_or(ZmtpError::MalformedReady)?;
        let value = metadata
            .get("Socket-Type")
            .ok_or(ZmtpError::MissingSocketType)?;
        let peer = SocketType::from_bytes(value).ok_or(ZmtpError::UnknownSocketType)?;
        if !SocketType::Pull.is_compatible_with(peer) {
            return Err(ZmtpError::IncompatibleSocketType(peer));
        }
        self.out.extend_from_slice(READY);
        self.phase = Phase::Traffic;
        self.events.push_back(Event::Ready {
            peer_socket_type: peer,
            peer_version: (self.greeting[10], self.greeting[11]),
            metadata,
        });
        Ok(())
    }

    /// `ping = command-size %d4 "PING" ping-ttl ping-context`: answered by
    /// `pong = command-size %d4 "PONG" ping-context`.
    fn ping(&mut self, data: &[u8]) -> Result<(), ZmtpError> {
        let (ttl, context) = data
            .split_first_chunk::<2>()
            .filter(|(_, c)| c.len() <= MAX_PING_CONTEXT)
            .ok_or(ZmtpError::MalformedPing)?;
        if self.transmit().len() + 7 + context.len() > self.settings.max_transmit {
            return Err(ZmtpError::TransmitBacklog);
        }
        // Tenths of a second; 0 means no TTL.
        let ttl = u16::from_be_bytes(*ttl);
        self.ttl = (ttl > 0).then(|| Duration::from_millis(u64::from(ttl) * 100));
        self.out
            .extend_from_slice(&[COMMAND, 5 + context.len() as u8, 4]);
        self.out.extend_from_slice(b"PONG");
        self.out.extend_from_slice(context);
        self.pings += 1;
        Ok(())
    }
}

/// The mechanism field we accept: `NULL`, null-padded to 20 octets.
const NULL_MECHANISM: [u8; 20] = *b"NULL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// Checks as much of the peer's greeting as has arrived. The padding (octets
/// 1-8) is not looked at ("MUST NOT validate this"), nor are as-server and
/// the filler, which have no meaning for NULL.
fn check_greeting(g: &[u8]) -> Result<(), ZmtpError> {
    // signature = %xFF padding %x7F. A first octet other than %xFF, or a
    // 10th octet with bit 0 clear, is ZMTP 1.0 (37/ZMTP "Detecting ZMTP 1.0
    // and 2.0 Peers"); anything but %x7F is not ZMTP 2.0 or later either.
    if g.first().is_some_and(|&b| b != 0xFF) || g.get(9).is_some_and(|&b| b != 0x7F) {
        return Err(ZmtpError::NotZmtp);
    }
    // version-major: 1 or 2 is ZMTP 2.0, which we do not speak.
    if let Some(&major) = g.get(10).filter(|&&m| m < 3) {
        return Err(ZmtpError::UnsupportedVersion(major));
    }
    if let Some(mechanism) = g.get(12..32).and_then(|m| <[u8; 20]>::try_from(m).ok())
        && mechanism != NULL_MECHANISM
    {
        return Err(ZmtpError::WrongMechanism(mechanism));
    }
    Ok(())
}

/// `error-reason = short-size 0*255VCHAR`, as printable text; lenient,
/// since it only goes to the log.
fn error_reason(data: &[u8]) -> String {
    let reason = match data.split_first() {
        Some((&len, rest)) => &rest[..usize::from(len).min(rest.len())],
        None => &[],
    };
    error::printable(reason)
}
