//! An outbound HTTP/1.1 client (RFC 9112), sans I/O.
//!
//! sprocket POSTs to PHP backends (connect authorisation, RPC forwarding)
//! from its one reactor thread. This module holds the protocol side of that:
//!
//! - [`Url`] splits `http://host[:port]/path?query` into an [`Origin`] and a
//!   request target;
//! - [`Request`] is a validated request that encodes itself;
//! - [`ClientConn`] is one connection's state: it is given the bytes the
//!   reactor read and the time, and gives back the bytes to write, its next
//!   deadline and complete [`Response`]s;
//! - [`Pool`] is the per-origin connection policy: a cap per origin, idle
//!   connections with an idle timeout, a FIFO of waiting requests, and the
//!   one-retry rule ([`retry_allowed`]).
//!
//! The reactor's side of the contract is written down in `docs/http-client.md`
//! and on [`ClientConn`] and [`Pool`].

mod body;
mod conn;
mod pool;
mod request;
mod response;
mod url;

pub use conn::ClientConn;
pub use pool::{Checkout, Next, Pool, PoolConfig, is_idempotent, retry_allowed};
pub use request::{Request, RequestError};
pub use response::Response;
pub use url::{Origin, Url, UrlError};

use std::fmt;
use std::time::Duration;

/// The two deadlines of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From [`ClientConn::new`] to [`ClientConn::connected`].
    pub connect: Duration,
    /// From the moment a started request can be sent (started and connected)
    /// to the last byte of its final response.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(30),
        }
    }
}

/// Bounds on what a server may make a connection hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest response head, status line to the blank line inclusive
    /// (also the bound on a chunked body's trailer section).
    pub max_head: usize,
    /// Most header fields in a response head.
    pub max_headers: usize,
    /// Largest response body; more is [`ClientError::TooLarge`].
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
        }
    }
}

/// Why an exchange failed. After any of these the connection is spent:
/// [`ClientConn::reusable`] is false and the reactor closes the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    // API misuse (the reactor's fault).
    /// [`ClientConn::start`] while a request is in flight (no pipelining).
    Busy,
    /// [`ClientConn::start`] on a connection that may not carry another request.
    NotReusable,

    // Time and the connection.
    /// The TCP connect did not finish within [`Timeouts::connect`].
    ConnectTimeout,
    /// The response did not complete within [`Timeouts::response`].
    ResponseTimeout {
        /// Some byte of a response had arrived.
        response_bytes_seen: bool,
    },
    /// The connection closed (or was reset) before the response completed.
    Closed {
        /// Some byte of a response had arrived.
        response_bytes_seen: bool,
    },
    /// The server sent bytes while no request was waiting for them.
    Unsolicited,

    // The server broke the protocol.
    /// NUL, or CR or LF not as a CRLF pair, in the head (RFC 9112 §2.2).
    BadLineEnding,
    /// A status line that is not `HTTP/1.x NNN reason`.
    BadStatusLine,
    /// A header line that is not `token: value`, or a value not UTF-8.
    BadHeader,
    /// 101 Switching Protocols, which was never asked for (RFC 9110 §15.2.2).
    UnexpectedSwitch,
    /// A Content-Length that is not a decimal number within u64 (RFC 9112 §6.3).
    BadContentLength,
    /// Content-Length values that differ (RFC 9112 §6.3 rule 5).
    ConflictingContentLength,
    /// Content-Length beside Transfer-Encoding (RFC 9112 §6.3 rule 3).
    LengthWithTransferEncoding,
    /// A Transfer-Encoding other than a single `chunked`, or one in an
    /// HTTP/1.0 response (RFC 9112 §6.1).
    UnsupportedTransferEncoding,
    /// A malformed chunk-size line, chunk end, or trailer (RFC 9112 §7.1).
    BadChunk,

    // Limits.
    /// The head is longer than [`Limits::max_head`].
    HeadTooLarge,
    /// More header fields than [`Limits::max_headers`].
    TooManyHeaders,
    /// The body is (or was declared) longer than [`Limits::max_body`].
    TooLarge,
}

impl ClientError {
    /// True when the server broke HTTP/1.1 framing or syntax.
    pub fn is_protocol(self) -> bool {
        use ClientError::*;
        matches!(
            self,
            Unsolicited
                | BadLineEnding
                | BadStatusLine
                | BadHeader
                | UnexpectedSwitch
                | BadContentLength
                | ConflictingContentLength
                | LengthWithTransferEncoding
                | UnsupportedTransferEncoding
                | BadChunk
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClientError::*;
        let seen = |s: bool| {
            if s {
                "after part of the response"
            } else {
                "before any response byte"
            }
        };
        match *self {
            Busy => f.write_str("a request is already in flight on this connection"),
            NotReusable => f.write_str("the connection cannot carry another request"),
            ConnectTimeout => f.write_str("connect timed out"),
            ResponseTimeout {
                response_bytes_seen,
            } => write!(f, "response timed out {}", seen(response_bytes_seen)),
            Closed {
                response_bytes_seen,
            } => write!(f, "connection closed {}", seen(response_bytes_seen)),
            Unsolicited => f.write_str("server sent bytes with no request in flight"),
            BadLineEnding => f.write_str("NUL, bare CR or bare LF in response"),
            BadStatusLine => f.write_str("malformed status line"),
            BadHeader => f.write_str("malformed response header field"),
            UnexpectedSwitch => f.write_str("101 Switching Protocols was not asked for"),
            BadContentLength => f.write_str("invalid Content-Length"),
            ConflictingContentLength => f.write_str("differing Content-Length values"),
            LengthWithTransferEncoding => f.write_str("both Content-Length and Transfer-Encoding"),
            UnsupportedTransferEncoding => f.write_str("unsupported Transfer-Encoding"),
            BadChunk => f.write_str("malformed chunked body"),
            HeadTooLarge => f.write_str("response head too large"),
            TooManyHeaders => f.write_str("too many response header fields"),
            TooLarge => f.write_str("response body over the limit"),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests;
