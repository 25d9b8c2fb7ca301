//! What a [`super::RedisConn`] reports: events, and why a command got no
//! reply or a connection became unusable.

use crate::clients::resp::{Reply, RespError};
use std::fmt;

/// A subscription to a channel (`SUBSCRIBE`) or a pattern (`PSUBSCRIBE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubKind {
    /// An exact channel name.
    Channel,
    /// A glob-style pattern.
    Pattern,
}

/// Why a command got no reply from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The connection ended before the reply came; the command may or may
    /// not have run.
    Disconnected,
    /// The connection became unusable (see [`Event::Unusable`]) before the
    /// reply came; the command may or may not have run.
    Unusable,
    /// No connection is up and the held commands are at their bound.
    QueueFull,
    /// Not sent: the command would change the connection's state under the
    /// pipeline (SUBSCRIBE, MONITOR, HELLO, RESET, CLIENT REPLY, AUTH,
    /// SELECT; credentials and database belong in the URL), or has no name.
    Refused,
    /// Not sent: `command` on a pub/sub connection.
    WrongMode,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplyError::Disconnected => "Redis connection lost before the reply",
            ReplyError::Unusable => "Redis connection unusable before the reply",
            ReplyError::QueueFull => "Redis is down and too many commands are waiting",
            ReplyError::Refused => "command refused: it would change the connection's state",
            ReplyError::WrongMode => "command on a pub/sub connection",
        })
    }
}

impl std::error::Error for ReplyError {}

/// Why the current TCP connection must be dropped (and redialled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnusableReason {
    /// The server broke RESP2.
    Protocol(RespError),
    /// `AUTH` failed; the server's text (e.g. `WRONGPASS ...`).
    AuthFailed(String),
    /// `SELECT` failed; the server's text (e.g. `ERR DB index is out of range`).
    SelectFailed(String),
    /// A reply nothing was waiting for, or a pub/sub reply of unknown shape.
    UnexpectedReply,
}

impl fmt::Display for UnusableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnusableReason::Protocol(e) => write!(f, "Redis protocol error: {e}"),
            UnusableReason::AuthFailed(s) => write!(f, "Redis AUTH failed: {s}"),
            UnusableReason::SelectFailed(s) => write!(f, "Redis SELECT failed: {s}"),
            UnusableReason::UnexpectedReply => f.write_str("unexpected reply from Redis"),
        }
    }
}

/// A pub/sub call on a commands connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongMode;

impl fmt::Display for WrongMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pub/sub call on a Redis commands connection")
    }
}

impl std::error::Error for WrongMode {}

/// What a connection has to tell its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The outcome of the command tagged `tag`. A Redis error reply is
    /// `Ok(Reply::Error(_))`; `Err` means there was no reply.
    Reply {
        /// The caller's tag.
        tag: u64,
        /// The server's reply, or why there is none.
        reply: Result<Reply, ReplyError>,
    },
    /// A message published to a subscribed channel.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// The payload, binary-safe.
        payload: Vec<u8>,
    },
    /// A message published to a channel matching a subscribed pattern.
    PMessage {
        /// The pattern it matched.
        pattern: Vec<u8>,
        /// The channel it was published to.
        channel: Vec<u8>,
        /// The payload, binary-safe.
        payload: Vec<u8>,
    },
    /// The server confirmed a subscription.
    Subscribed {
        /// Channel or pattern.
        kind: SubKind,
        /// Its name.
        name: Vec<u8>,
        /// Subscriptions this connection now has (channels and patterns).
        count: i64,
    },
    /// The server confirmed an unsubscription.
    Unsubscribed {
        /// Channel or pattern.
        kind: SubKind,
        /// Its name.
        name: Vec<u8>,
        /// Subscriptions this connection has left.
        count: i64,
    },
    /// Pub/sub: the server refused a (P)SUBSCRIBE or (P)UNSUBSCRIBE, e.g. an
    /// ACL `NOPERM`; the connection stays usable.
    ServerError(String),
    /// The connection must be dropped; everything in flight already failed.
    Unusable(UnusableReason),
}

/// The event for a reply on a pub/sub connection ("Redis Pub/Sub", format of
/// pushed messages): `[kind, name, count]` confirmations, `[message,
/// channel, payload]`, `[pmessage, pattern, channel, payload]`, or an error
/// reply. `None` for anything else.
pub(super) fn push(reply: Reply) -> Option<Event> {
    use Reply::{Bulk, Integer};
    let mut items = match reply {
        Reply::Array(Some(items)) => items,
        Reply::Error(e) => return Some(Event::ServerError(e)),
        _ => return None,
    };
    let take = std::mem::take::<Vec<u8>>;
    let event = match items.as_mut_slice() {
        [Bulk(Some(k)), Bulk(Some(channel)), Bulk(Some(payload))] if k == b"message" => {
            Event::Message {
                channel: take(channel),
                payload: take(payload),
            }
        }
        [
            Bulk(Some(k)),
            Bulk(Some(pattern)),
            Bulk(Some(channel)),
            Bulk(Some(payload)),
        ] if k == b"pmessage" => Event::PMessage {
            pattern: take(pattern),
            channel: take(channel),
            payload: take(payload),
        },
        [Bulk(Some(k)), Bulk(Some(name)), Integer(count)] => {
            let (kind, on) = match k.as_slice() {
                b"subscribe" => (SubKind::Channel, true),
                b"psubscribe" => (SubKind::Pattern, true),
                b"unsubscribe" => (SubKind::Channel, false),
                b"punsubscribe" => (SubKind::Pattern, false),
                _ => return None,
            };
            let (name, count) = (take(name), *count);
            if on {
                Event::Subscribed { kind, name, count }
            } else {
                Event::Unsubscribed { kind, name, count }
            }
        }
        _ => return None,
    };
    Some(event)
}
