//! One outbound connection's protocol state (quinn-proto style: `handle_*`
//! for inputs, `transmit`/`poll_timeout` for outputs).

use super::body::Body;
use super::response::{self, Framing, Head};
use super::{ClientError, Limits, Origin, Request, Response, Timeouts};
use crate::http::head::{HeadError, HeadLimits, HeadScanner};
use std::time::Instant;

/// The HTTP/1.1 state of one TCP connection to an origin, with no socket.
///
/// The reactor drives it:
///
/// 1. [`new`](Self::new) when it starts the TCP connect, then
///    [`start`](Self::start) a request (before or after the connect is
///    done) and [`connected`](Self::connected) once the connect finished.
/// 2. While [`transmit`](Self::transmit) is not empty: write it to the
///    socket, then [`advance`](Self::advance) by what was written. The bytes
///    are the connection's own (the body is the caller's `Vec`, moved in),
///    so nothing is copied on the way to `write(2)`. Head and body are two
///    slices: keep writing until `transmit()` is empty or `WouldBlock`.
/// 3. Every byte read goes to [`handle_input`](Self::handle_input), which
///    always takes all of it (so the reactor's shared read buffer is free
///    again after the call; an unfinished head or chunk line is kept here,
///    bounded by [`Limits`]). It returns `Ok(Some(response))` once the final
///    response is complete.
/// 4. End of stream goes to [`handle_eof`](Self::handle_eof), a reset or
///    other socket error to [`handle_reset`](Self::handle_reset).
/// 5. The poll timeout includes [`poll_timeout`](Self::poll_timeout); when
///    it passes, call [`handle_timeout`](Self::handle_timeout).
/// 6. After a response, [`reusable`](Self::reusable) says whether the
///    connection may carry the next request; any error leaves it spent.
#[derive(Debug)]
pub struct ClientConn {
    origin: Origin,
    timeouts: Timeouts,
    limits: Limits,
    state: State,
    /// Set until [`Self::connected`].
    connect_deadline: Option<Instant>,
    /// Set while a request is in flight on a connected socket.
    response_deadline: Option<Instant>,
    /// Requests started on this connection.
    started: u64,
    /// Some byte of a response arrived for the request in flight.
    seen: bool,
    /// Outgoing head, then body; `sent` counts across both.
    out_head: Vec<u8>,
    out_body: Vec<u8>,
    sent: usize,
}

/// Where the exchange is.
#[derive(Debug)]
enum State {
    /// No request in flight; may start one.
    Ready,
    /// Reading a response head (after any number of 1xx).
    Head {
        buf: Vec<u8>,
        scanner: HeadScanner,
        head_request: bool,
    },
    /// Reading the body of the final response.
    Body {
        response: Response,
        body: Body,
        keep_alive: bool,
    },
    /// May carry no more requests: `Connection: close`, a close-delimited
    /// body, an error, the end of the stream.
    Spent,
}

impl ClientConn {
    /// A connection to `origin` whose TCP connect starts at `now`.
    pub fn new(origin: Origin, timeouts: Timeouts, limits: Limits, now: Instant) -> Self {
        ClientConn {
            origin,
            timeouts,
            limits,
            state: State::Ready,
            connect_deadline: Some(now + timeouts.connect),
            response_deadline: None,
            started: 0,
            seen: false,
            out_head: Vec::new(),
            out_body: Vec::new(),
            sent: 0,
        }
    }

    /// The origin this connection goes to.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The TCP connect finished at `now`: bytes may flow, and the response
    /// timeout of a request already started runs from here.
    pub fn connected(&mut self, now: Instant) {
        if self.connect_deadline.take().is_some() && self.in_flight() {
            self.response_deadline = Some(now + self.timeouts.response);
        }
    }

    /// Starts `request` at `now`. One request at a time: no pipelining.
    pub fn start(&mut self, request: Request, now: Instant) -> Result<(), ClientError> {
        match self.state {
            State::Ready => {}
            State::Spent => return Err(ClientError::NotReusable),
            _ => return Err(ClientError::Busy),
        }
        self.out_head.clear();
        request.encode_head(self.origin.authority(), &mut self.out_head);
        self.state = State::Head {
            buf: Vec::new(),
            scanner: HeadScanner::default(),
            head_request: request.method() == "HEAD",
        };
        self.out_body = request.into_body();
        self.sent = 0;
        self.started += 1;
        self.seen = false;
        if self.connect_deadline.is_none() {
            self.response_deadline = Some(now + self.timeouts.response);
        }
        Ok(())
    }

    /// The next bytes to write: empty before the connect finished and when
    /// everything is written.
    pub fn transmit(&self) -> &[u8] {
        if self.connect_deadline.is_some() {
            return &[];
        }
        match self.out_head.get(self.sent..) {
            Some(rest) if !rest.is_empty() => rest,
            _ => self
                .out_body
                .get(self.sent - self.out_head.len()..)
                .unwrap_or(&[]),
        }
    }

    /// `n` bytes of [`transmit`](Self::transmit) were written (at most its length).
    pub fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.transmit().len(), "advance past transmit");
        self.sent += n.min(self.transmit().len());
    }

    /// A request is in flight: started, its final response not complete.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, State::Head { .. } | State::Body { .. })
    }

    /// The connection may carry the next request (RFC 9112 §9.3).
    pub fn reusable(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    /// The request in flight (or the last one) is not the connection's first.
    pub fn reused(&self) -> bool {
        self.started > 1
    }

    /// Some response byte arrived for the request in flight (or the last one).
    pub fn response_bytes_seen(&self) -> bool {
        self.seen
    }

    /// Bytes held for the response in progress: the unfinished head, or the
    /// body so far (an unfinished chunk line is at most 4 KiB more). Never
    /// more than [`Limits::max_head`] while in the head, nor
    /// [`Limits::max_body`] in the body.
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Head { buf, .. } => buf.len(),
            State::Body { response, .. } => response.body.len(),
            State::Ready | State::Spent => 0,
        }
    }

    /// The earliest deadline, if any: connect, or the response in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.connect_deadline.or(self.response_deadline)
    }

    /// Checks the deadlines against `now`; a passed one spends the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.connect_deadline.is_some_and(|d| now >= d) {
            return Err(self.fail(ClientError::ConnectTimeout));
        }
        if self.response_deadline.is_some_and(|d| now >= d) {
            let seen = self.seen;
            return Err(self.fail(ClientError::ResponseTimeout {
                response_bytes_seen: seen,
            }));
        }
        Ok(())
    }

    /// The server closed its side. A close-delimited body is complete; a
    /// response cut short is [`ClientError::Closed`]; an idle connection
    /// just ends.
    pub fn handle_eof(&mut self) -> Result<Option<Response>, ClientError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            // RFC 9112 §6.3 rule 8: the close ends the body.
            State::Body {
                response,
                body: Body::Close,
                ..
            } => {
                self.finish_exchange();
                Ok(Some(response))
            }
            State::Head { .. } | State::Body { .. } => Err(self.closed()),
            State::Ready | State::Spent => {
                self.finish_exchange();
                Ok(None)
            }
        }
    }

    /// The socket failed (reset, connect refused, …): an exchange in flight
    /// is lost, even a close-delimited one (it may be truncated).
    pub fn handle_reset(&mut self) -> Result<(), ClientError> {
        let in_flight = self.in_flight();
        self.state = State::Spent;
        if in_flight {
            return Err(self.closed());
        }
        self.finish_exchange();
        Ok(())
    }

    /// Takes every byte of `input` (read from the socket). Returns the final
    /// response once it is complete.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<Option<Response>, ClientError> {
        if input.is_empty() {
            return Ok(None);
        }
        if !self.in_flight() {
            // RFC 9112 §9.3.2 has no place for bytes with no request out.
            return Err(self.fail(ClientError::Unsolicited));
        }
        self.seen = true;
        let mut rest = input;
        loop {
            let step = match self.state {
                State::Head { .. } => self.feed_head(rest),
                State::Body { .. } => self.feed_body(rest),
                State::Ready | State::Spent => return Ok(None),
            };
            match step {
                Err(e) => return Err(self.fail(e)),
                Ok((used, None)) => {
                    rest = &rest[used..];
                    if rest.is_empty() {
                        return Ok(None);
                    }
                }
                Ok((used, Some(response))) => {
                    // Bytes after the response answer nothing we asked: the
                    // response stands, the connection does not.
                    if used < rest.len() {
                        self.state = State::Spent;
                    }
                    return Ok(Some(response));
                }
            }
        }
    }

    /// Head state: collects the head, then moves to the body (or finishes).
    fn feed_head(&mut self, input: &[u8]) -> Result<(usize, Option<Response>), ClientError> {
        let State::Head {
            buf,
            scanner,
            head_request,
        } = &mut self.state
        else {
            return Ok((0, None));
        };
        let head_limits = HeadLimits {
            max_head: self.limits.max_head,
            max_headers: self.limits.max_headers,
        };
        // Never more than the head limit is held; what turns out to follow
        // the head is handed back as unused.
        let take = input
            .len()
            .min(self.limits.max_head.saturating_sub(buf.len()));
        let before = buf.len();
        buf.extend_from_slice(&input[..take]);
        let len = match scanner.scan(buf, &head_limits) {
            Ok(Some(len)) => len,
            Ok(None) => return Ok((take, None)),
            Err(HeadError::TooLarge) => return Err(ClientError::HeadTooLarge),
            Err(_) => return Err(ClientError::BadLineEnding),
        };
        let used = len - before;
        let head_request = *head_request;
        match response::parse(&buf[..len], &self.limits, head_request)? {
            Head::Interim => {
                buf.clear();
                *scanner = HeadScanner::default();
                Ok((used, None))
            }
            Head::Final {
                response,
                framing,
                keep_alive,
            } => self
                .begin_body(response, framing, keep_alive)
                .map(|r| (used, r)),
        }
    }

    /// Moves to the body state, or completes a response without a body.
    fn begin_body(
        &mut self,
        mut response: Response,
        framing: Framing,
        keep_alive: bool,
    ) -> Result<Option<Response>, ClientError> {
        let body = match framing {
            Framing::None | Framing::Length(0) => {
                return Ok(Some(self.complete(response, keep_alive)));
            }
            Framing::Length(n) if n > self.limits.max_body as u64 => {
                return Err(ClientError::TooLarge);
            }
            Framing::Length(n) => {
                // Declared, within the cap; reserve a little, grow as it comes.
                response.body.reserve((n as usize).min(64 * 1024));
                Body::Length { remaining: n }
            }
            Framing::Chunked => Body::chunked(self.limits.max_head),
            Framing::Close => Body::Close,
        };
        self.state = State::Body {
            response,
            body,
            keep_alive,
        };
        Ok(None)
    }

    /// Body state: feeds the body decoder.
    fn feed_body(&mut self, input: &[u8]) -> Result<(usize, Option<Response>), ClientError> {
        let State::Body { response, body, .. } = &mut self.state else {
            return Ok((0, None));
        };
        let (used, done) = body.feed(input, &mut response.body, self.limits.max_body)?;
        if !done {
            return Ok((used, None));
        }
        let State::Body {
            response,
            keep_alive,
            ..
        } = std::mem::replace(&mut self.state, State::Spent)
        else {
            return Ok((used, None));
        };
        Ok((used, Some(self.complete(response, keep_alive))))
    }

    /// The final response is complete: the connection is ready for the next
    /// request only if the server keeps it and all of ours was sent (a server
    /// that answered early may not have read the rest).
    fn complete(&mut self, response: Response, keep_alive: bool) -> Response {
        let all_sent = self.sent == self.out_head.len() + self.out_body.len();
        self.state = if keep_alive && all_sent {
            State::Ready
        } else {
            State::Spent
        };
        self.finish_exchange();
        response
    }

    /// Drops what is left to send and the response deadline.
    fn finish_exchange(&mut self) {
        self.response_deadline = None;
        self.connect_deadline = None;
        self.out_head = Vec::new();
        self.out_body = Vec::new();
        self.sent = 0;
    }

    fn closed(&mut self) -> ClientError {
        let seen = self.seen;
        self.fail(ClientError::Closed {
            response_bytes_seen: seen,
        })
    }

    /// Spends the connection on `e`.
    fn fail(&mut self, e: ClientError) -> ClientError {
        self.state = State::Spent;
        self.finish_exchange();
        e
    }
}
