//! One WebSocket connection after its opening handshake, as a state
//! machine without I/O, in either role.
//!
//! The caller owns the bytes: it hands input to [`Connection::handle_input`]
//! (one event at a time, borrowed from that input when the message came in
//! one frame) and gives every method that may answer the peer the
//! connection's output buffer to append to. Time is an input too:
//! [`Connection::poll_timeout`] says when the connection next needs
//! [`Connection::handle_timeout`]. Nothing here reads a clock or a socket,
//! so the close handshake, the ping/pong liveness rule and every timeout
//! run the same in the reactor, in tests on virtual time and in the fuzzer.
//!
//! What it owns of RFC 6455: message assembly (§5.4), permessage-deflate
//! (RFC 7692, server role), answering pings (§5.5.2), the close handshake
//! (§5.5.1, §7.1), and in the client role masking every frame (§5.3).

mod send;

use super::close;
use super::deflate::{self, InflateError, Session};
use super::frame::{self, OpCode};
use super::pool::Pool;
use super::{Decoded, Decoder, Frame, Limits, ProtocolError};
use std::time::{Duration, Instant};

/// What the connections of one reactor share: the permessage-deflate
/// codecs and spare buffers.
pub struct Shared {
    /// Codecs for connections without context takeover.
    pub deflate: deflate::Shared,
    /// Spare buffers (message assembly, output).
    pub buffers: Pool,
    /// Where messages are compressed before they are framed.
    compressed: Vec<u8>,
}

impl Shared {
    /// Nothing allocated until used.
    pub fn new(deflate: deflate::DeflateConfig) -> Self {
        Shared {
            deflate: deflate::Shared::new(deflate),
            buffers: Pool::default(),
            compressed: Vec::new(),
        }
    }

    /// The payload compressed last, and lets a huge one's space go.
    fn compressed(&self, n: usize) -> &[u8] {
        &self.compressed[..n]
    }

    fn trim(&mut self) {
        if self.compressed.capacity() > 1 << 20 {
            self.compressed = Vec::new();
        }
    }
}

/// Settings every connection of a reactor follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Frame and message size limits (a compressed message's inflated size
    /// counts against `max_message`).
    pub limits: Limits,
    /// Ping when nothing was heard for this long; fail the connection when
    /// another interval passes in silence. `None`: never ping.
    pub ping_interval: Option<Duration>,
    /// Time the peer has to answer our close frame.
    pub close_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            ping_interval: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the close handshake stands (§7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (§7.1.2); messages
    /// that still arrive are discarded.
    CloseSent,
    /// Finished: both close frames went (`complete`), or the connection
    /// failed or timed out. Nothing more is sent or delivered.
    Closed {
        /// The close handshake completed: the TCP connection can go as soon
        /// as the output is written (§7.1.1).
        complete: bool,
    },
}

/// A complete message that did not arrive in one frame: it waits in the
/// connection until [`Connection::take_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assembled {
    /// Text (valid UTF-8) rather than binary.
    pub text: bool,
}

/// What one call of [`Connection::handle_input`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'b> {
    /// A text message that came in one frame: a slice of the input.
    Text(&'b str),
    /// A binary message that came in one frame: a slice of the input.
    Binary(&'b [u8]),
    /// A message assembled from fragments or inflated: take it with
    /// [`Connection::take_message`].
    Assembled(Assembled),
    /// The peer's close frame; our answer (if one was due) is queued, and
    /// the close handshake is complete. `code` is 1005 for an empty frame.
    Closed {
        /// The peer's status code.
        code: u16,
        /// The peer's reason.
        reason: &'b str,
    },
    /// The peer broke the protocol: a close frame with the error's code is
    /// queued (unless one went already) and the connection is over (§7.1.7).
    Failed(ProtocolError),
}

/// What [`Connection::handle_timeout`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Nothing heard for two ping intervals, the ping unanswered.
    Ping,
    /// The peer did not answer our close frame in time.
    Close,
}

/// One connection's RFC 6455 state after the handshake.
pub struct Connection {
    decoder: Decoder,
    state: State,
    /// While open: when anything last arrived from the peer. Once our
    /// close frame is out: when it went (input no longer moves it). One
    /// field for both keeps an idle connection small.
    since: Instant,
    ping_outstanding: bool,
    /// Mask keys for the client role (xorshift64*; 0 in the server role).
    mask_state: u64,
    /// The message being assembled or inflated.
    message: Vec<u8>,
    deflate: Option<Box<Session>>,
}

impl Connection {
    /// The server side of a connection whose 101 just went out, with
    /// permessage-deflate if `deflate` parameters were agreed on.
    pub fn server(now: Instant, deflate: Option<deflate::Params>) -> Self {
        let mut decoder = Decoder::new();
        decoder.set_compression(deflate.is_some());
        Connection {
            decoder,
            state: State::Open,
            since: now,
            ping_outstanding: false,
            mask_state: 0,
            message: Vec::new(),
            deflate: deflate.map(|p| Box::new(Session::new(p))),
        }
    }

    /// The client side, after the server's 101 was checked. `seed` (from a
    /// good random source) seeds the masking keys (§5.3, §10.3: they must
    /// be unpredictable to the page's script, which here is no one's).
    pub fn client(now: Instant, seed: u64) -> Self {
        Connection {
            decoder: Decoder::client(),
            state: State::Open,
            since: now,
            ping_outstanding: false,
            mask_state: seed | 1,
            message: Vec::new(),
            deflate: None,
        }
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Messages may be sent and are delivered.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// While open: when the last input of any kind arrived from the peer
    /// (data, ping, pong), the instant [`Self::handle_input`] was called
    /// with it. `None` once the close handshake began.
    pub fn last_input(&self) -> Option<Instant> {
        self.is_open().then_some(self.since)
    }

    /// The permessage-deflate state, if negotiated.
    pub fn deflate(&self) -> Option<&Session> {
        self.deflate.as_deref()
    }

    /// Processes frames from the head of `buf` (which starts at a frame
    /// boundary) until one gives the caller an event or the input runs out.
    /// Returns the bytes consumed and the event; `(n, None)` means the rest
    /// of `buf` is an incomplete frame (see [`Self::frame_len`]) or that the
    /// connection is closed and input is discarded. Answers (pongs, close
    /// frames) are appended to `out`. Any input counts as a sign of life.
    pub fn handle_input<'b>(
        &mut self,
        buf: &'b mut [u8],
        now: Instant,
        settings: &Settings,
        shared: &mut Shared,
        out: &mut Vec<u8>,
    ) -> (usize, Option<Event<'b>>) {
        if !buf.is_empty() && self.state == State::Open {
            self.since = now;
            self.ping_outstanding = false;
        }
        let total = buf.len();
        let mut rest: &'b mut [u8] = buf;
        loop {
            if matches!(self.state, State::Closed { .. }) {
                return (total, None);
            }
            let pos = total - rest.len();
            if rest.is_empty() {
                return (pos, None);
            }
            // A complete frame is split off, so that its event may borrow
            // it while the rest stays free for the next call. An incomplete
            // one is still decoded: its payload is unmasked and checked as
            // it arrives, and its header's errors are found at once.
            let complete = match frame::parse_header(rest) {
                Ok(Some(h)) => usize::try_from(h.payload_len)
                    .ok()
                    .and_then(|len| len.checked_add(h.header_len))
                    .filter(|&len| len <= rest.len()),
                _ => None,
            };
            let Some(len) = complete else {
                return match self.decoder.decode(rest, &settings.limits) {
                    Ok(_) => (pos, None),
                    Err(e) => (total, Some(self.fail(e, shared, out))),
                };
            };
            let (this, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            let frame = match self.decoder.decode(this, &settings.limits) {
                Ok(Decoded::Frame { frame, .. }) => frame,
                // A frame whose bytes are all here decodes whole.
                Ok(Decoded::Incomplete { .. }) => continue,
                Err(e) => return (total, Some(self.fail(e, shared, out))),
            };
            match self.on_frame(frame, settings, shared, out) {
                Step::Continue => {}
                Step::Event(event) => return (pos + len, Some(event)),
                Step::Failed(e) => return (total, Some(self.fail(e, shared, out))),
            }
        }
    }

    /// The size of the incomplete frame at the head of the input, once its
    /// header is known (0 before): the caller can size its buffer once.
    pub fn frame_len(&self, buf: &[u8]) -> usize {
        match frame::parse_header(buf) {
            Ok(Some(h)) => h.header_len.saturating_add(h.payload_len as usize),
            _ => 0,
        }
    }

    /// Applies one decoded frame.
    fn on_frame<'b>(
        &mut self,
        frame: Frame<'b>,
        settings: &Settings,
        shared: &mut Shared,
        out: &mut Vec<u8>,
    ) -> Step<'b> {
        let open = self.is_open();
        match frame {
            Frame::Text(text) if open => Step::Event(Event::Text(text)),
            Frame::Binary(data) if open => Step::Event(Event::Binary(data)),
            // §5.5.1: after our close frame, data may still come; it is
            // discarded.
            Frame::Text(_) | Frame::Binary(_) => Step::Continue,
            Frame::Fragment {
                text, fin, payload, ..
            } => {
                if self.message.capacity() == 0 {
                    self.message = shared.buffers.take();
                }
                self.message.extend_from_slice(payload);
                self.finish_message(fin, text, shared)
            }
            Frame::Compressed {
                text,
                first,
                fin,
                payload,
            } => match self.inflate(text, first, fin, payload, settings, shared) {
                Ok(()) => self.finish_message(fin, text, shared),
                Err(e) => {
                    self.message.clear();
                    Step::Failed(match e {
                        InflateError::TooBig => ProtocolError::MessageTooBig,
                        InflateError::Utf8 => ProtocolError::InvalidUtf8,
                        InflateError::Corrupt => ProtocolError::BadDeflateData,
                    })
                }
            },
            // §5.5.2: answer with a pong carrying the same data, unless closing.
            Frame::Ping(data) => {
                if open {
                    pooled(out, shared);
                    self.push_control(OpCode::Pong, data, out);
                }
                Step::Continue
            }
            // §5.5.3: an unsolicited pong needs no answer; any input already
            // counted as a sign of life.
            Frame::Pong(_) => Step::Continue,
            Frame::Close(c) => {
                // §5.5.1: echo the code if we have not sent a close frame.
                if open {
                    pooled(out, shared);
                    self.push_close(c.code, "", out);
                }
                self.state = State::Closed { complete: true };
                Step::Event(Event::Closed {
                    code: c.code.unwrap_or(close::NO_STATUS),
                    reason: c.reason,
                })
            }
        }
    }

    /// After a fragment: deliver the message on FIN (if still open).
    fn finish_message<'b>(&mut self, fin: bool, text: bool, shared: &mut Shared) -> Step<'b> {
        if !fin {
            return Step::Continue;
        }
        if self.is_open() {
            return Step::Event(Event::Assembled(Assembled { text }));
        }
        let buf = std::mem::take(&mut self.message);
        give_back(buf, shared);
        Step::Continue
    }

    /// Decompresses one frame of a compressed message onto the message so
    /// far (RFC 7692 §7.2.2); the inflated size counts against the message
    /// limit as it grows.
    fn inflate(
        &mut self,
        text: bool,
        first: bool,
        fin: bool,
        payload: &[u8],
        settings: &Settings,
        shared: &mut Shared,
    ) -> Result<(), InflateError> {
        // The decoder yields compressed frames only with a session.
        let Some(session) = self.deflate.as_deref_mut() else {
            return Err(InflateError::Corrupt);
        };
        if self.message.capacity() == 0 {
            self.message = shared.buffers.take();
        }
        let limit = usize::try_from(settings.limits.max_message).unwrap_or(usize::MAX);
        session.inflate(
            &mut shared.deflate,
            payload,
            first,
            fin,
            text,
            &mut self.message,
            limit,
        )
    }

    /// The message of the last [`Event::Assembled`]. Give the buffer back
    /// with [`Shared::buffers`] (cleared) once the app is done with it.
    pub fn take_message(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.message)
    }

    /// Fails the connection for a protocol error (§7.1.7).
    fn fail<'b>(&mut self, e: ProtocolError, shared: &mut Shared, out: &mut Vec<u8>) -> Event<'b> {
        if self.is_open() {
            pooled(out, shared);
            self.push_close(Some(e.close_code()), &e.to_string(), out);
        }
        self.state = State::Closed { complete: false };
        Event::Failed(e)
    }

    /// Fails the connection from our side (an app panicked, say): a close
    /// frame with `code` unless one went already; nothing more after it.
    pub fn abort(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        if self.is_open() {
            self.push_close(Some(code), reason, out);
        }
        if !matches!(self.state, State::Closed { .. }) {
            self.state = State::Closed { complete: false };
        }
    }

    /// Starts the close handshake (§7.1.2). `code` must be sendable
    /// (`close::is_sendable`); false if the connection was not open.
    pub fn close(&mut self, code: u16, reason: &str, now: Instant, out: &mut Vec<u8>) -> bool {
        if !self.is_open() {
            return false;
        }
        self.push_close(Some(code), reason, out);
        self.state = State::CloseSent;
        self.since = now;
        true
    }

    /// The connection is gone without a close handshake (a timeout, a dead
    /// peer): nothing more is sent.
    pub fn drop_now(&mut self) {
        self.state = State::Closed { complete: false };
    }

    /// When [`Self::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self, settings: &Settings) -> Option<Instant> {
        match self.state {
            State::Open => {
                let interval = settings.ping_interval?;
                let wait = if self.ping_outstanding {
                    interval * 2
                } else {
                    interval
                };
                Some(self.since + wait)
            }
            State::CloseSent => Some(self.since + settings.close_timeout),
            State::Closed { .. } => None,
        }
    }

    /// Runs the timers due at `now`: pings an idle peer (appended to
    /// `out`), or reports a timeout, after which the connection is closed
    /// and must be dropped.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        settings: &Settings,
        out: &mut Vec<u8>,
    ) -> Option<Timeout> {
        match self.state {
            State::Open => {
                let interval = settings.ping_interval?;
                let idle = now.saturating_duration_since(self.since);
                if self.ping_outstanding && idle >= interval * 2 {
                    self.state = State::Closed { complete: false };
                    return Some(Timeout::Ping);
                }
                if !self.ping_outstanding && idle >= interval {
                    self.ping_outstanding = true;
                    self.push_control(OpCode::Ping, b"", out);
                }
                None
            }
            State::CloseSent
                if now.saturating_duration_since(self.since) >= settings.close_timeout =>
            {
                self.state = State::Closed { complete: false };
                Some(Timeout::Close)
            }
            _ => None,
        }
    }
}

/// What a frame meant.
enum Step<'b> {
    Continue,
    Event(Event<'b>),
    Failed(ProtocolError),
}

/// Gives an output buffer that has none one from the pool, so that
/// answers (pongs, close frames) reuse buffers instead of allocating.
fn pooled(out: &mut Vec<u8>, shared: &mut Shared) {
    if out.capacity() == 0 {
        *out = shared.buffers.take();
    }
}

/// Returns an assembly buffer to the pool.
fn give_back(mut buf: Vec<u8>, shared: &mut Shared) {
    buf.clear();
    shared.buffers.give(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> Settings {
        Settings {
            limits: Limits::default(),
            ping_interval: Some(100 * MS),
            close_timeout: 50 * MS,
        }
    }

    /// A client and a server connection joined by two byte pipes.
    struct Pair {
        client: Connection,
        server: Connection,
        shared: Shared,
        settings: Settings,
        now: Instant,
        to_server: Vec<u8>,
        to_client: Vec<u8>,
    }

    /// What came out of one side's input, owned.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Text(String),
        Binary(Vec<u8>),
        Closed(u16, String),
        Failed(ProtocolError),
    }

    impl Pair {
        fn new() -> Self {
            let now = Instant::now();
            Pair {
                client: Connection::client(now, 0x1234_5678_9abc_def0),
                server: Connection::server(now, None),
                shared: Shared::new(deflate::DeflateConfig::default()),
                settings: settings(),
                now,
                to_server: Vec::new(),
                to_client: Vec::new(),
            }
        }

        /// Delivers everything queued for one side; returns its events.
        fn deliver(&mut self, to_server: bool) -> Vec<Seen> {
            let (conn, mut input, out) = if to_server {
                let input = std::mem::take(&mut self.to_server);
                (&mut self.server, input, &mut self.to_client)
            } else {
                let input = std::mem::take(&mut self.to_client);
                (&mut self.client, input, &mut self.to_server)
            };
            let mut seen = Vec::new();
            let mut pos = 0;
            loop {
                let (n, event) = conn.handle_input(
                    &mut input[pos..],
                    self.now,
                    &self.settings,
                    &mut self.shared,
                    out,
                );
                pos += n;
                let Some(event) = event else { break };
                seen.push(match event {
                    Event::Text(t) => Seen::Text(t.to_owned()),
                    Event::Binary(b) => Seen::Binary(b.to_vec()),
                    Event::Closed { code, reason } => Seen::Closed(code, reason.to_owned()),
                    Event::Failed(e) => Seen::Failed(e),
                    Event::Assembled(a) => {
                        let m = conn.take_message();
                        if a.text {
                            Seen::Text(String::from_utf8(m).unwrap())
                        } else {
                            Seen::Binary(m)
                        }
                    }
                });
            }
            assert_eq!(pos, input.len(), "whole frames were queued");
            seen
        }
    }

    #[test]
    fn client_frames_are_masked_and_server_frames_are_not() {
        let mut p = Pair::new();
        assert!(
            p.client
                .send(true, b"Hello", &mut p.shared, &mut p.to_server)
        );
        let first = p.to_server.clone();
        assert_eq!(first[0], 0x81);
        assert_eq!(first[1], 0x80 | 5, "MASK bit set (§5.3)");
        assert_ne!(&first[6..], b"Hello", "payload masked");
        assert!(
            p.client
                .send(true, b"Hello", &mut p.shared, &mut p.to_server)
        );
        let second = &p.to_server[first.len()..];
        assert_ne!(&second[2..6], &first[2..6], "a fresh key per frame");
        assert_eq!(
            p.deliver(true),
            vec![Seen::Text("Hello".into()), Seen::Text("Hello".into())]
        );
        assert!(
            p.server
                .send(false, &[1, 2, 3], &mut p.shared, &mut p.to_client)
        );
        assert_eq!(p.to_client, [0x82, 3, 1, 2, 3], "servers never mask (§5.1)");
        assert_eq!(p.deliver(false), vec![Seen::Binary(vec![1, 2, 3])]);
    }

    #[test]
    fn each_role_fails_on_the_other_roles_masking() {
        let mut p = Pair::new();
        // A server frame sent to the server: unmasked.
        p.to_server = vec![0x81, 0x01, b'x'];
        assert_eq!(p.deliver(true), vec![Seen::Failed(ProtocolError::Unmasked)]);
        assert_eq!(p.server.state(), State::Closed { complete: false });
        assert_eq!(
            &p.to_client[..4],
            &[0x88, 0x19, 0x03, 0xEA],
            "close 1002 queued"
        );
        // A masked frame sent to the client.
        let mut p = Pair::new();
        frame::write_masked_frame(&mut p.to_client, 0x81, b"x", [1, 2, 3, 4]);
        assert_eq!(p.deliver(false), vec![Seen::Failed(ProtocolError::Masked)]);
        let mut answer = std::mem::take(&mut p.to_server);
        // The client's close frame is masked like any other.
        let h = frame::parse_header(&answer).unwrap().unwrap();
        let mask = h.mask.expect("client close frame masked");
        frame::apply_mask(&mut answer[h.header_len..], mask, 0);
        assert_eq!(
            &answer[h.header_len..h.header_len + 2],
            &1002u16.to_be_bytes()
        );
    }

    #[test]
    fn close_handshake_started_by_either_side() {
        // Server first: the client echoes the code; the server sees Closed.
        let mut p = Pair::new();
        assert!(p.server.close(4000, "bye", p.now, &mut p.to_client));
        assert_eq!(p.server.state(), State::CloseSent);
        assert!(
            !p.server
                .send(true, b"late", &mut p.shared, &mut p.to_client)
        );
        assert_eq!(p.deliver(false), vec![Seen::Closed(4000, "bye".into())]);
        assert_eq!(p.client.state(), State::Closed { complete: true });
        assert_eq!(p.deliver(true), vec![Seen::Closed(4000, String::new())]);
        assert_eq!(p.server.state(), State::Closed { complete: true });
        assert!(p.to_client.is_empty(), "no answer to the answer");
        // Client first, with data in flight behind the server's close.
        let mut p = Pair::new();
        p.client
            .send(true, b"in flight", &mut p.shared, &mut p.to_server);
        p.client.close(1000, "", p.now, &mut p.to_server);
        assert_eq!(
            p.deliver(true),
            vec![
                Seen::Text("in flight".into()),
                Seen::Closed(1000, String::new())
            ]
        );
        assert_eq!(p.deliver(false), vec![Seen::Closed(1000, String::new())]);
    }

    #[test]
    fn data_after_our_close_is_discarded_and_pings_unanswered() {
        let mut p = Pair::new();
        p.server.close(1000, "", p.now, &mut p.to_client);
        p.to_client.clear();
        p.client
            .send(true, b"dropped", &mut p.shared, &mut p.to_server);
        frame::write_masked_frame(&mut p.to_server, 0x01, b"frag", [9, 9, 9, 9]);
        frame::write_masked_frame(&mut p.to_server, 0x80, b"ment", [9, 9, 9, 9]);
        frame::write_masked_frame(&mut p.to_server, 0x89, b"ping", [9, 9, 9, 9]);
        assert_eq!(p.deliver(true), vec![]);
        assert!(p.to_client.is_empty(), "no pong while closing");
        assert_eq!(p.server.state(), State::CloseSent);
    }

    #[test]
    fn fragments_and_pings_between_them() {
        let mut p = Pair::new();
        frame::write_masked_frame(&mut p.to_server, 0x01, "hé".as_bytes(), [1, 2, 3, 4]);
        frame::write_masked_frame(&mut p.to_server, 0x89, b"p", [1, 2, 3, 4]);
        frame::write_masked_frame(&mut p.to_server, 0x80, "llo".as_bytes(), [1, 2, 3, 4]);
        assert_eq!(p.deliver(true), vec![Seen::Text("héllo".into())]);
        assert_eq!(p.to_client, [0x8A, 1, b'p'], "pong in the middle (§5.5.2)");
    }

    #[test]
    fn incomplete_frames_wait_and_report_their_size() {
        let mut p = Pair::new();
        let mut wire = Vec::new();
        frame::write_masked_frame(&mut wire, 0x82, &[5; 1000], [1, 2, 3, 4]);
        let mut part = wire[..500].to_vec();
        let (n, event) = p.server.handle_input(
            &mut part,
            p.now,
            &p.settings,
            &mut p.shared,
            &mut p.to_client,
        );
        assert_eq!((n, event), (0, None));
        assert_eq!(p.server.frame_len(&part), wire.len());
        // The caller keeps the bytes it gave (now partly unmasked) and adds
        // the rest.
        part.extend_from_slice(&wire[500..]);
        let (n, event) = p.server.handle_input(
            &mut part,
            p.now,
            &p.settings,
            &mut p.shared,
            &mut p.to_client,
        );
        assert_eq!(n, 1008);
        assert_eq!(event, Some(Event::Binary(&[5; 1000][..])));
    }

    #[test]
    fn ping_liveness_on_virtual_time() {
        let mut p = Pair::new();
        let s = p.settings;
        let t0 = p.now;
        assert_eq!(p.server.poll_timeout(&s), Some(t0 + 100 * MS));
        assert_eq!(
            p.server.handle_timeout(t0 + 99 * MS, &s, &mut p.to_client),
            None
        );
        assert!(p.to_client.is_empty(), "not idle long enough");
        assert_eq!(
            p.server.handle_timeout(t0 + 100 * MS, &s, &mut p.to_client),
            None
        );
        assert_eq!(p.to_client, [0x89, 0], "idle: pinged");
        assert_eq!(p.server.poll_timeout(&s), Some(t0 + 200 * MS));
        // The pong (any input) resets the clock.
        p.now = t0 + 150 * MS;
        assert_eq!(p.deliver(false), vec![]);
        assert_eq!(p.deliver(true), vec![]);
        assert_eq!(p.server.poll_timeout(&s), Some(t0 + 250 * MS));
        // Now silence: a ping, then after another interval the timeout.
        p.to_client.clear();
        assert_eq!(
            p.server.handle_timeout(t0 + 250 * MS, &s, &mut p.to_client),
            None
        );
        assert_eq!(p.to_client, [0x89, 0]);
        assert_eq!(
            p.server.handle_timeout(t0 + 349 * MS, &s, &mut p.to_client),
            None
        );
        assert_eq!(
            p.server.handle_timeout(t0 + 350 * MS, &s, &mut p.to_client),
            Some(Timeout::Ping)
        );
        assert_eq!(p.server.state(), State::Closed { complete: false });
        assert_eq!(p.server.poll_timeout(&s), None);
    }

    #[test]
    fn close_timeout_on_virtual_time() {
        let mut p = Pair::new();
        let s = p.settings;
        let t0 = p.now;
        p.server.close(1000, "", t0 + 10 * MS, &mut p.to_client);
        assert_eq!(p.server.poll_timeout(&s), Some(t0 + 60 * MS));
        assert_eq!(
            p.server.handle_timeout(t0 + 59 * MS, &s, &mut p.to_client),
            None
        );
        assert_eq!(
            p.server.handle_timeout(t0 + 60 * MS, &s, &mut p.to_client),
            Some(Timeout::Close)
        );
        let no_ping = Settings {
            ping_interval: None,
            ..s
        };
        let idle = Connection::server(t0, None);
        assert_eq!(idle.poll_timeout(&no_ping), None, "no ping, no timer");
    }

    #[test]
    fn compressed_messages_both_ways_in_the_server_role() {
        use crate::http::extensions;
        let cfg = deflate::DeflateConfig::default();
        let params = deflate::negotiate(&cfg, &extensions::parse(["permessage-deflate"]))
            .0
            .unwrap();
        let mut p = Pair::new();
        p.server = Connection::server(p.now, Some(params));
        let text = "compress me ".repeat(50);
        p.server
            .send(true, text.as_bytes(), &mut p.shared, &mut p.to_client);
        assert_eq!(
            p.to_client[0],
            0x81 | frame::RSV1,
            "compressed (RFC 7692 §6)"
        );
        assert!(p.to_client.len() < text.len() / 4);
        // The same bytes, masked, come back as a client would send them.
        let mut back = Vec::new();
        let h = frame::parse_header(&p.to_client).unwrap().unwrap();
        frame::write_masked_frame(
            &mut back,
            p.to_client[0],
            &p.to_client[h.header_len..],
            [7, 7, 7, 7],
        );
        p.to_server = back;
        p.to_client.clear();
        assert_eq!(p.deliver(true), vec![Seen::Text(text)]);
        assert_eq!(p.server.deflate().unwrap().stats.messages_in, 1);
    }
}
