//! What the reactor dials: Redis servers and HTTP origins. This half is
//! the state apps reach through their context (tickets, queued commands,
//! the pools); the server owns the sockets (`io.rs`) and moves bytes
//! between them and the sans-IO drivers of `clients`.
//!
//! Every driver follows mio's readiness contract, written down once here:
//! readiness is a hint (events may be spurious, and edge-triggered: after
//! one, read or write until `WouldBlock`, retrying on `Interrupted`); a
//! connect is complete when the socket turns writable and `take_error` is
//! empty; interest is derived from the driver's state after every step
//! (WRITABLE only while it has bytes to send), never tracked by hand.

mod http;
pub(crate) mod io;
mod redis;

pub use self::http::HttpError;
pub(crate) use self::http::HttpService;
pub(crate) use self::redis::RedisService;
use crate::app::{Reply, Route, Ticket};
use crate::clients::http::Response;
use crate::clients::redis::ReplyError;
use crate::clients::resp;
use std::any::Any;
use std::time::Instant;

/// Which connection of which service a socket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// The commands connection of Redis server `n`.
    RedisCommands(usize),
    /// The pub/sub connection of Redis server `n`.
    RedisPubSub(usize),
    /// HTTP link `n`.
    Http(usize),
}

impl Link {
    pub fn name(self) -> &'static str {
        match self {
            Link::RedisCommands(_) => "commands",
            Link::RedisPubSub(_) => "pub/sub",
            Link::Http(_) => "http",
        }
    }
}

/// Where a Redis link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Never needed yet.
    Idle,
    /// Not connected; dial at `retry_at`.
    Down { retry_at: Instant },
    /// A connect is in progress.
    Connecting { since: Instant },
    /// Connected.
    Up,
}

/// A completion waiting to be delivered.
pub(crate) struct Done {
    pub ticket: Ticket,
    pub reply: DoneReply,
}

impl Done {
    pub fn new(ticket: Ticket, reply: DoneReply) -> Self {
        Done { ticket, reply }
    }
}

/// An owned [`Reply`], queued until the app's turn.
pub(crate) enum DoneReply {
    Http(Result<Response, HttpError>),
    Redis(Result<resp::Reply, ReplyError>),
    Message {
        channel: Vec<u8>,
        pattern: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Inbox(Box<dyn Any + Send>),
    /// An event on a topic the app subscribed to on the bus; what its
    /// delivery reaches counts towards `receipt`.
    Bus {
        event: std::sync::Arc<crate::bus::Event>,
        receipt: Option<Ticket>,
    },
    /// How many connections a publish reached (filled in at delivery).
    Published(usize),
    /// The answer to `Context::bus_history`.
    History(Result<crate::bus::History, String>),
    /// Redis confirmed a subscription of the bus's (only the bus gets it).
    Subscribed(Vec<u8>),
    /// Events of another process on a subscribed topic were lost.
    Gap {
        topic: std::sync::Arc<str>,
        missed: Option<u64>,
    },
}

impl DoneReply {
    /// Runs `f` with the borrowed form apps see.
    pub fn with_reply<R>(self, f: impl FnOnce(Reply<'_>) -> R) -> R {
        match self {
            DoneReply::Http(r) => f(Reply::Http(r)),
            DoneReply::Redis(r) => f(Reply::Redis(r)),
            DoneReply::Message {
                channel,
                pattern,
                payload,
            } => f(Reply::Message {
                channel: &channel,
                pattern: pattern.as_deref(),
                payload: &payload,
            }),
            DoneReply::Inbox(v) => f(Reply::Inbox(v)),
            DoneReply::Bus { event, .. } => f(Reply::Bus(&event)),
            DoneReply::Published(delivered) => f(Reply::Published { delivered }),
            DoneReply::History(h) => f(Reply::History(h)),
            // Only the bus's own ticket gets these; an app never does.
            DoneReply::Subscribed(name) => f(Reply::Message {
                channel: &name,
                pattern: None,
                payload: b"",
            }),
            DoneReply::Gap { topic, missed } => f(Reply::Gap {
                topic: &topic,
                missed,
            }),
        }
    }
}

/// Everything outbound, without sockets.
pub(crate) struct Outbound {
    next_ticket: u64,
    pub redis: Vec<RedisService>,
    pub http: HttpService,
    /// Completions, delivered in order at the app's next turn.
    pub done: Vec<Done>,
    /// Outbound sockets whose read budget ran out (read again next turn).
    pub pending_reads: Vec<usize>,
}

impl Outbound {
    pub fn new(cfg: &crate::config::Config) -> Self {
        let timeouts = crate::clients::http::Timeouts {
            connect: cfg.backend_connect_timeout,
            response: cfg.backend_timeout,
        };
        Outbound {
            next_ticket: 0,
            redis: Vec::new(),
            http: HttpService::new(timeouts, cfg.max_backend_response, cfg.backend_connections),
            done: Vec::new(),
            pending_reads: Vec::new(),
        }
    }

    pub fn ticket(&mut self, route: Route) -> Ticket {
        self.next_ticket += 1;
        Ticket::new(self.next_ticket, route)
    }

    /// The earliest time any driver needs attention.
    pub fn next_deadline(&self) -> Option<Instant> {
        let redis = self.redis.iter().flat_map(|r| {
            [&r.cmd, &r.sub].into_iter().filter_map(|l| match l.state {
                LinkState::Down { retry_at } => Some(retry_at),
                LinkState::Connecting { since } => Some(since + io::CONNECT_TIMEOUT),
                _ => None,
            })
        });
        redis.chain(self.http.next_deadline()).min()
    }
}
