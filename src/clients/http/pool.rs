//! The per-origin connection policy, sans I/O: which connection a request
//! goes on, when to dial, who waits, when an idle connection is closed, and
//! whether a failed request may be sent again.
//!
//! The pool holds no sockets and no [`super::ClientConn`]s: the reactor
//! gives it keys (`C`, e.g. a slab key) for its connections and values (`R`)
//! for its requests, and the pool answers with decisions. The contract:
//!
//! - [`Pool::checkout`] for a new request: [`Checkout::Reuse`] an idle
//!   connection, [`Checkout::Dial`] a new one (it already counts against the
//!   cap), or [`Checkout::Queued`] (the pool keeps `R` in a FIFO).
//! - After a response on a connection that is still
//!   [`reusable`](super::ClientConn::reusable): [`Pool::release`]. Else, and
//!   whenever a connection ends (error, EOF, failed connect, or closed
//!   because not reusable), [`Pool::closed`] — exactly once per connection.
//!   Both may hand a waiting request on ([`Next`]).
//! - The poll timeout includes [`Pool::poll_timeout`]; then
//!   [`Pool::handle_timeout`] returns idle connections past their idle
//!   timeout, already forgotten: the reactor just closes them.
//! - A request that failed: if [`retry_allowed`] and it was not retried
//!   before (the reactor keeps that flag in `R`), [`Pool::retry`] it once.
//!
//! Invariant: an origin never has idle connections and waiting requests at
//! once (a waiting request takes a released connection; a new request takes
//! an idle one).

use super::Origin;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Pool limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most connections per origin: dialing, busy and idle together (≥ 1).
    pub max_per_origin: usize,
    /// How long a connection may sit idle; keep it below the backend's own
    /// keep-alive timeout (Apache's default is 5 s) so that the server
    /// rarely closes one just as a request goes out on it.
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_per_origin: 8,
            idle_timeout: Duration::from_secs(4),
        }
    }
}

/// Where a new request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Checkout<C, R> {
    /// Start it on this idle connection.
    Reuse(C, R),
    /// Dial a new connection for it.
    Dial(R),
    /// At the cap: it waits in the origin's FIFO.
    Queued,
}

/// What to do after a connection was released or closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<C, R> {
    /// Nothing waits (a released connection is now idle).
    Nothing,
    /// Start this waiting request on the released connection.
    Start(C, R),
    /// Dial a new connection for this waiting request.
    Dial(R),
}

/// One origin's connections and queue.
#[derive(Debug)]
struct Slot<C, R> {
    /// Connections counted against the cap.
    open: usize,
    /// Idle connections with their expiry, oldest first.
    idle: Vec<(C, Instant)>,
    waiting: VecDeque<R>,
}

/// The per-origin pool policy.
#[derive(Debug)]
pub struct Pool<C, R> {
    config: PoolConfig,
    origins: HashMap<Origin, Slot<C, R>>,
    /// Idle connections past their timeout, no longer counted, with their
    /// expiry: to hand to the reactor from [`Pool::handle_timeout`].
    expired: Vec<(C, Instant)>,
}

impl<C: Copy, R> Slot<C, R> {
    /// Moves idle connections expired at `now` to `expired`; they stop
    /// counting against the cap.
    fn sweep(&mut self, now: Instant, expired: &mut Vec<(C, Instant)>) {
        // Idled in time order with one timeout: the expired are a prefix.
        let n = self.idle.partition_point(|&(_, t)| t <= now);
        expired.extend(self.idle.drain(..n));
        self.open -= n;
    }
}

impl<C: Copy + Eq, R> Pool<C, R> {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            config,
            origins: HashMap::new(),
            expired: Vec::new(),
        }
    }

    fn slot(&mut self, origin: &Origin) -> (&mut Slot<C, R>, &mut Vec<(C, Instant)>) {
        let slot = self.origins.entry(origin.clone()).or_insert_with(|| Slot {
            open: 0,
            idle: Vec::new(),
            waiting: VecDeque::new(),
        });
        (slot, &mut self.expired)
    }

    /// A new request for `origin` at `now`. The most recently idled
    /// connection is reused first (the least likely to have been closed).
    pub fn checkout(&mut self, origin: &Origin, request: R, now: Instant) -> Checkout<C, R> {
        let cap = self.config.max_per_origin.max(1);
        let (slot, expired) = self.slot(origin);
        // Past their idle timeout, not reused even if not yet swept.
        slot.sweep(now, expired);
        if let Some((conn, _)) = slot.idle.pop() {
            return Checkout::Reuse(conn, request);
        }
        if slot.open < cap {
            slot.open += 1;
            Checkout::Dial(request)
        } else {
            slot.waiting.push_back(request);
            Checkout::Queued
        }
    }

    /// Sends a failed request again (see [`retry_allowed`]): never on an
    /// idle connection (the one that failed was idle, so its peers may be
    /// stale too) but on a new one, or first in line for the next released
    /// one.
    pub fn retry(&mut self, origin: &Origin, request: R) -> Checkout<C, R> {
        let cap = self.config.max_per_origin.max(1);
        let (slot, _) = self.slot(origin);
        if slot.open < cap {
            slot.open += 1;
            Checkout::Dial(request)
        } else {
            slot.waiting.push_front(request);
            Checkout::Queued
        }
    }

    /// `conn` finished a response at `now` and is still reusable: it goes to
    /// the first waiting request, or idles.
    pub fn release(&mut self, origin: &Origin, conn: C, now: Instant) -> Next<C, R> {
        let idle_timeout = self.config.idle_timeout;
        let (slot, _) = self.slot(origin);
        if let Some(request) = slot.waiting.pop_front() {
            return Next::Start(conn, request);
        }
        slot.idle.push((conn, now + idle_timeout));
        Next::Nothing
    }

    /// `conn` ended (or is being closed): it no longer counts against the
    /// cap, so the first waiting request may dial.
    pub fn closed(&mut self, origin: &Origin, conn: C) -> Next<C, R> {
        if let Some(i) = self.expired.iter().position(|(c, _)| *c == conn) {
            // Already uncounted when it expired.
            self.expired.swap_remove(i);
            return Next::Nothing;
        }
        let Some(slot) = self.origins.get_mut(origin) else {
            return Next::Nothing;
        };
        slot.idle.retain(|(c, _)| *c != conn);
        slot.open = slot.open.saturating_sub(1);
        let next = match slot.waiting.pop_front() {
            Some(request) => {
                slot.open += 1;
                Next::Dial(request)
            }
            None => Next::Nothing,
        };
        self.forget_if_empty(origin);
        next
    }

    fn forget_if_empty(&mut self, origin: &Origin) {
        if self
            .origins
            .get(origin)
            .is_some_and(|s| s.open == 0 && s.waiting.is_empty())
        {
            self.origins.remove(origin);
        }
    }

    /// The earliest idle expiry (in the past while expired connections
    /// wait to be handed out).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.origins
            .values()
            .flat_map(|s| s.idle.first().map(|(_, t)| *t))
            .chain(self.expired.iter().map(|(_, t)| *t))
            .min()
    }

    /// Idle connections whose idle timeout has passed at `now`, removed from
    /// the pool (no [`closed`](Self::closed) call for them): close them.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<C> {
        for slot in self.origins.values_mut() {
            slot.sweep(now, &mut self.expired);
        }
        self.origins
            .retain(|_, s| s.open > 0 || !s.waiting.is_empty());
        self.expired.drain(..).map(|(c, _)| c).collect()
    }

    /// Connections counted for `origin` (dialing, busy, idle).
    pub fn open(&self, origin: &Origin) -> usize {
        self.origins.get(origin).map_or(0, |s| s.open)
    }

    /// Idle connections of `origin`.
    pub fn idle(&self, origin: &Origin) -> usize {
        self.origins.get(origin).map_or(0, |s| s.idle.len())
    }

    /// Requests waiting for `origin`.
    pub fn waiting(&self, origin: &Origin) -> usize {
        self.origins.get(origin).map_or(0, |s| s.waiting.len())
    }
}

/// RFC 9110 §9.2.2: methods whose repetition has the effect of one request.
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Whether a failed request may be sent once more: only an idempotent one
/// (RFC 9110 §9.2.2, RFC 9112 §9.3.1), only when it failed on a reused
/// connection before any response byte arrived — the server closed an idle
/// keep-alive connection as the request went out. A request is retried at
/// most once.
pub fn retry_allowed(method: &str, reused: bool, response_bytes_seen: bool) -> bool {
    is_idempotent(method) && reused && !response_bytes_seen
}
