//! Outbound HTTP/1.1 as the reactor sees it: a keep-alive pool per origin
//! (`clients::http::Pool`), one `ClientConn` per TCP connection, and the
//! tickets of the requests in flight or queued. Every request ends in
//! exactly one completion: the response, or an [`HttpError`].

use super::{Done, DoneReply};
use crate::app::Ticket;
use crate::clients::http::{
    Checkout, ClientConn, ClientError, Limits, Next, Origin, Pool, PoolConfig, Request, Response,
    Timeouts, is_idempotent, retry_allowed,
};
use slab::Slab;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// Why an HTTP request got no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The origin's host is not an IP address, `localhost` or a name
    /// resolved at start: names are not resolved on the reactor thread.
    Resolve(String),
    /// The TCP connection could not be made.
    Connect(String),
    /// The connection or the response failed (timeouts, limits, bad
    /// responses, a connection closed early).
    Client(ClientError),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Resolve(host) => write!(
                f,
                "cannot resolve {host} on the reactor thread: use an IP address, localhost, or a name resolved at start (Server::resolve_http)"
            ),
            HttpError::Connect(e) => write!(f, "cannot connect: {e}"),
            HttpError::Client(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A request not yet started, and the ticket its response goes to.
pub(crate) struct Pending {
    ticket: Ticket,
    request: Request,
    retried: bool,
}

/// The request a connection carries.
struct InFlight {
    ticket: Ticket,
    method: String,
    /// A copy for the one retry an idempotent request may get (`None`
    /// once retried, or when not idempotent).
    retry: Option<Request>,
}

/// One TCP connection to an origin.
pub(crate) struct HttpLink {
    pub conn: ClientConn,
    pub origin: Origin,
    pub addr: SocketAddr,
    current: Option<InFlight>,
    /// The server's socket for it, once dialled.
    pub sock: Option<usize>,
}

pub(crate) struct HttpService {
    pool: Pool<usize, Pending>,
    /// Host names resolved before the reactor ran (`Server::resolve_http`),
    /// by lower-case name and port.
    hosts: HashMap<(String, u16), SocketAddr>,
    pub links: Slab<HttpLink>,
    /// Sockets of links that are gone, for the server to close.
    pub closed_socks: Vec<usize>,
    timeouts: Timeouts,
    limits: Limits,
}

impl HttpService {
    pub fn new(timeouts: Timeouts, max_body: usize, max_per_origin: usize) -> Self {
        HttpService {
            pool: Pool::new(PoolConfig {
                max_per_origin: max_per_origin.max(1),
                ..PoolConfig::default()
            }),
            hosts: HashMap::new(),
            links: Slab::new(),
            closed_socks: Vec::new(),
            timeouts,
            limits: Limits {
                max_body,
                ..Limits::default()
            },
        }
    }
}

/// The address of an origin whose host needs no name lookup.
fn literal_address(origin: &Origin) -> Option<SocketAddr> {
    let host = origin.host();
    let host = if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        host.trim_start_matches('[').trim_end_matches(']')
    };
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, origin.port()))
}

impl HttpService {
    /// Dials `host:port` at `addr` from now on (a name resolved before the
    /// reactor ran; the request still says `Host: host`).
    pub fn add_host(&mut self, host: &str, port: u16, addr: SocketAddr) {
        self.hosts.insert((host.to_ascii_lowercase(), port), addr);
    }

    /// Where to dial `origin`: its literal address, or a name resolved
    /// beforehand. Names are never looked up on the reactor thread.
    fn address(&self, origin: &Origin) -> Option<SocketAddr> {
        literal_address(origin).or_else(|| {
            let key = (origin.host().to_ascii_lowercase(), origin.port());
            self.hosts.get(&key).copied()
        })
    }

    /// Sends `request` to `origin`: on an idle connection, a new one, or
    /// after the others when the origin is at its connection cap.
    pub fn request(
        &mut self,
        origin: &Origin,
        request: Request,
        ticket: Ticket,
        now: Instant,
        done: &mut Vec<Done>,
    ) {
        if self.address(origin).is_none() {
            let e = HttpError::Resolve(origin.host().to_owned());
            return done.push(Done::new(ticket, DoneReply::Http(Err(e))));
        }
        let pending = Pending {
            ticket,
            request,
            retried: false,
        };
        match self.pool.checkout(origin, pending, now) {
            Checkout::Reuse(key, p) => self.start(key, p, now, done),
            Checkout::Dial(p) => self.dial(origin, p, now, done),
            Checkout::Queued => {}
        }
    }

    fn dial(&mut self, origin: &Origin, p: Pending, now: Instant, done: &mut Vec<Done>) {
        let Some(addr) = self.address(origin) else {
            return;
        };
        let conn = ClientConn::new(origin.clone(), self.timeouts, self.limits, now);
        let key = self.links.insert(HttpLink {
            conn,
            origin: origin.clone(),
            addr,
            current: None,
            sock: None,
        });
        self.start(key, p, now, done);
    }

    fn start(&mut self, key: usize, p: Pending, now: Instant, done: &mut Vec<Done>) {
        let link = &mut self.links[key];
        let method = p.request.method().to_owned();
        let retry = (!p.retried && is_idempotent(&method)).then(|| p.request.clone());
        match link.conn.start(p.request, now) {
            Ok(()) => {
                link.current = Some(InFlight {
                    ticket: p.ticket,
                    method,
                    retry,
                })
            }
            Err(e) => {
                done.push(Done::new(
                    p.ticket,
                    DoneReply::Http(Err(HttpError::Client(e))),
                ));
                self.close(key, true, now, done);
            }
        }
    }

    /// A response (or its failure) on link `key`.
    pub fn finished(
        &mut self,
        key: usize,
        result: Result<Response, HttpError>,
        now: Instant,
        done: &mut Vec<Done>,
    ) -> bool {
        let Some(link) = self.links.get_mut(key) else {
            return false;
        };
        let Some(p) = link.current.take() else {
            return false;
        };
        match result {
            Ok(response) => {
                done.push(Done::new(p.ticket, DoneReply::Http(Ok(response))));
                if link.conn.reusable() {
                    let origin = link.origin.clone();
                    if let Next::Start(k, next) = self.pool.release(&origin, key, now) {
                        self.start(k, next, now, done);
                    }
                    return true;
                }
                self.close(key, true, now, done);
                false
            }
            Err(e) => {
                let reused = link.conn.reused();
                let seen = link.conn.response_bytes_seen();
                let origin = link.origin.clone();
                self.close(key, true, now, done);
                if let Some(request) = p.retry.filter(|_| retry_allowed(&p.method, reused, seen)) {
                    log::debug!(
                        "{}: {} failed on a reused connection ({e}); retrying once",
                        origin.authority(),
                        p.method
                    );
                    let p = Pending {
                        ticket: p.ticket,
                        request,
                        retried: true,
                    };
                    match self.pool.retry(&origin, p) {
                        Checkout::Dial(p) => self.dial(&origin, p, now, done),
                        Checkout::Reuse(k, p) => self.start(k, p, now, done),
                        Checkout::Queued => {}
                    }
                } else {
                    done.push(Done::new(p.ticket, DoneReply::Http(Err(e))));
                }
                false
            }
        }
    }

    /// Forgets link `key` and queues its socket for closing; with
    /// `tell_pool`, a request waiting for a connection to the origin gets
    /// one (the pool already forgot links it expired itself).
    fn close(&mut self, key: usize, tell_pool: bool, now: Instant, done: &mut Vec<Done>) {
        if !self.links.contains(key) {
            return;
        }
        let link = self.links.remove(key);
        self.closed_socks.extend(link.sock);
        if let Some(p) = link.current {
            done.push(Done::new(
                p.ticket,
                DoneReply::Http(Err(HttpError::Client(ClientError::Closed {
                    response_bytes_seen: false,
                }))),
            ));
        }
        if !tell_pool {
            return;
        }
        match self.pool.closed(&link.origin, key) {
            Next::Dial(p) => self.dial(&link.origin, p, now, done),
            Next::Start(k, p) => self.start(k, p, now, done),
            Next::Nothing => {}
        }
    }

    /// Link `key`'s socket is gone: fail or retry its request.
    pub fn lost(&mut self, key: usize, error: HttpError, now: Instant, done: &mut Vec<Done>) {
        if self.links.get(key).is_some_and(|l| l.current.is_some()) {
            self.finished(key, Err(error), now, done);
        } else {
            self.close(key, true, now, done);
        }
    }

    /// Some link waits to be dialled (the server does it at its next turn).
    pub fn wants_dial(&self) -> bool {
        self.links.iter().any(|(_, l)| l.sock.is_none())
    }

    /// The earliest deadline of any link or of the pool's idle timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter_map(|(_, l)| l.conn.poll_timeout())
            .chain(self.pool.poll_timeout())
            .min()
    }

    /// Runs the timers due at `now` (response and connect timeouts, idle
    /// connections past their time).
    pub fn handle_timeouts(&mut self, now: Instant, done: &mut Vec<Done>) {
        for key in self.pool.handle_timeout(now) {
            self.close(key, false, now, done);
        }
        let due: Vec<usize> = self
            .links
            .iter()
            .filter(|(_, l)| l.conn.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k)
            .collect();
        for key in due {
            if let Err(e) = self.links[key].conn.handle_timeout(now) {
                self.lost(key, HttpError::Client(e), now, done);
            }
        }
    }
}
