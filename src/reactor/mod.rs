//! The event loop: one `mio::Poll` on one thread owns every source, each
//! behind a token: listeners (each serving its own app), client
//! connections, outbound connections to Redis and HTTP origins (driven by
//! the sans-IO drivers of `clients`), the inbox other threads write to,
//! and the signal pipe.
//!
//! Each turn: wait for readiness (or the next deadline), read every
//! readable socket until `WouldBlock` (bounded per turn for fairness), run
//! the protocol and the app over the bytes, apply what apps decided and
//! deliver what came back (completions go to the app that asked), fire due
//! timers, then write each connection's queued output once. WRITABLE
//! interest is registered only while output is pending.

mod buf;
mod bus;
mod bus_link;
mod core;
mod dispatch;
mod handshake;
mod inbox;
mod io;
mod lifecycle;
mod outbound;
mod proxy;
mod sink;
#[doc(hidden)]
pub mod stream;
mod timers;
mod zmq;

#[doc(hidden)]
pub mod harness;

pub use self::inbox::{Inbox, InboxClosed};
pub use self::lifecycle::SHUTDOWN_REASON;
pub use self::outbound::HttpError;

use self::buf::READ_BUFFER;
use self::core::Core;
use self::outbound::RedisService;
use crate::app::{Application, RedisId};
use crate::clients::redis::RedisUrl;
use crate::config::Config;
use crate::metrics::Metrics;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io as stdio;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Tokens: client connections are their slab key; outbound sockets start
/// at `OUT_BASE`; listeners and the two special sources sit at the top.
const OUT_BASE: usize = usize::MAX / 2;
const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const LISTENER_BASE: usize = usize::MAX - 1024;
/// ZeroMQ listeners, below the WebSocket ones.
const ZMQ_LISTENER_BASE: usize = LISTENER_BASE - zmq::MAX_ZMQ_LISTENERS;
/// Accepted ZeroMQ peers, by key, between the outbound sockets and the
/// listeners.
const ZMQ_BASE: usize = OUT_BASE + usize::MAX / 4;

/// Reads per connection per turn before others get their go.
const READS_PER_TURN: usize = 16;
/// Accepts per turn before connections get their go.
const ACCEPTS_PER_TURN: usize = 256;
/// Pause after an accept error such as EMFILE, so it cannot spin the CPU.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Rounds of "apply decisions, deliver completions" per turn before the
/// rest waits for the next turn (which then does not sleep).
const SETTLE_ROUNDS: usize = 64;

/// Stops a running [`Server`] from any thread: it stops accepting, sends
/// close 1001 to every client, waits up to the close timeout, and returns.
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Requests a graceful shutdown.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the reactor for shutdown: {e}");
        }
    }
}

/// A listening socket and the app that serves what it accepts.
struct Listener {
    sock: Option<TcpListener>,
    addr: SocketAddr,
    /// Retry accepting at this time (after EMFILE, or a full turn).
    again_at: Option<Instant>,
    /// The root app serving it (an index into `Server::apps`).
    app: usize,
    /// Bound with `SO_REUSEPORT`: at shutdown, new connections are left
    /// to the other sockets on the port (see `lifecycle.rs`).
    reuse_port: bool,
    /// Connections accepted here speak TLS (with `Server::tls`).
    tls: bool,
    /// Connections start with a PROXY protocol header.
    proxy_protocol: bool,
}

/// The TLS certificate in use and where it was loaded from (SIGHUP loads
/// it again).
struct TlsState {
    files: crate::tls::TlsFiles,
    config: Arc<rustls::ServerConfig>,
}

/// A WebSocket server: one reactor, one or more listeners, each serving
/// its own application.
pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    /// The app of each listener, by listener index.
    apps: Vec<Box<dyn Application>>,
    /// `on_start` was called.
    started: bool,
    /// Whether the apps were told of the shutdown (`on_shutdown`).
    stopping: bool,
    core: Core,
    rbuf: Vec<u8>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    inbox: Receiver<inbox::Item>,
    /// Connections that still had input when their read budget ran out.
    again: Vec<usize>,
    next_sweep: Instant,
    shutdown_deadline: Option<Instant>,
    /// Shutting down, listeners still open until then (see `lifecycle.rs`).
    close_listeners_at: Option<Instant>,
    last_accept_error_log: Option<Instant>,
    next_generation: u32,
    /// Client sockets, by slab key (beside `core.conns`, which holds only
    /// protocol state).
    socks: Vec<Option<stream::Stream>>,
    /// The certificate for TLS listeners; new connections take the current
    /// one, existing connections keep theirs.
    tls: Option<TlsState>,
    /// Outbound sockets (Redis, HTTP), by key (token `OUT_BASE + key`).
    out: Slab<outbound::io::OutSock>,
    /// Jitter for reconnect back-off (xorshift64).
    rng: u64,
    /// ZeroMQ PULL listeners and their accepted peers (token
    /// `ZMQ_BASE + key`), a read buffer for them, and listeners to accept
    /// on again.
    zmq_listeners: Vec<zmq::ZmqListener>,
    zmq_peers: Slab<zmq::ZmqPeer>,
    zmq_buf: Vec<u8>,
    zmq_again: Vec<usize>,
    /// The service manager told of readiness and shutdown, if any.
    notifier: Option<crate::notify::Notifier>,
}

impl Server {
    /// A server with no listener yet (see [`Server::listen`]).
    pub fn new(config: Config) -> stdio::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = inbox::InboxTx::new(waker.clone());
        let mut core = Core::new(config);
        core.inbox = Some(tx);
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Ok(Server {
            poll,
            listeners: Vec::new(),
            apps: Vec::new(),
            started: false,
            stopping: false,
            core,
            rbuf: vec![0; READ_BUFFER],
            signals: None,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            inbox: rx,
            again: Vec::new(),
            next_sweep: Instant::now(),
            shutdown_deadline: None,
            close_listeners_at: None,
            last_accept_error_log: None,
            zmq_listeners: Vec::new(),
            zmq_peers: Slab::new(),
            zmq_buf: Vec::new(),
            zmq_again: Vec::new(),
            next_generation: 0,
            socks: Vec::new(),
            tls: None,
            out: Slab::new(),
            rng: u64::from_ne_bytes(seed) | 1,
            notifier: None,
        })
    }

    /// Binds `config.listen` and prepares to serve `app` there.
    pub fn bind(config: Config, app: impl Application + 'static) -> stdio::Result<Self> {
        let listen = config.listen;
        let mut server = Server::new(config)?;
        server.listen(listen, app)?;
        Ok(server)
    }

    /// Listens on `addr` too, serving `app` there (an admin listener with
    /// `/health` and `/metrics`, say). Returns the address bound.
    pub fn listen(
        &mut self,
        addr: SocketAddr,
        app: impl Application + 'static,
    ) -> stdio::Result<SocketAddr> {
        let sock = TcpListener::bind(addr)?;
        self.add_listener(sock, app, false)
    }

    /// [`Server::listen`] with `SO_REUSEPORT`: other processes (sprocket
    /// or not) that set it too may listen on the same address, and the
    /// kernel spreads new connections among them. This is how several
    /// processes share one port, and how a new process takes over from an
    /// old one without refusing anybody (`docs/scaling.md`).
    pub fn listen_reuse_port(
        &mut self,
        addr: SocketAddr,
        app: impl Application + 'static,
    ) -> stdio::Result<SocketAddr> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let sock = TcpListener::from_std(socket.into());
        self.add_listener(sock, app, true)
    }

    fn add_listener(
        &mut self,
        mut sock: TcpListener,
        app: impl Application + 'static,
        reuse_port: bool,
    ) -> stdio::Result<SocketAddr> {
        let index = self.listeners.len();
        if index >= 1024 {
            return Err(stdio::Error::other("at most 1024 listeners"));
        }
        let bound = sock.local_addr()?;
        self.poll.registry().register(
            &mut sock,
            Token(LISTENER_BASE + index),
            Interest::READABLE,
        )?;
        let root = self.apps.len();
        if root >= usize::from(u16::MAX) {
            return Err(stdio::Error::other("too many applications"));
        }
        self.listeners.push(Listener {
            sock: Some(sock),
            addr: bound,
            again_at: None,
            app: root,
            reuse_port,
            tls: false,
            proxy_protocol: index == 0 && self.core.cfg.proxy_protocol,
        });
        self.apps.push(Box::new(app));
        self.core.listeners = self.listeners.len();
        Ok(bound)
    }

    /// Adds an app that serves no listener: it gets `on_start`, its
    /// timers and the replies to what it started (Redis subscriptions,
    /// bus subscriptions, outbound requests, inboxes), never a connection.
    /// For ingresses such as [`crate::app::RedisPush`].
    pub fn add_service(&mut self, app: impl Application + 'static) -> stdio::Result<()> {
        if self.apps.len() >= usize::from(u16::MAX) {
            return Err(stdio::Error::other("too many applications"));
        }
        self.apps.push(Box::new(app));
        Ok(())
    }

    /// Registers a Redis server (`redis://[:password@]host:port/db`) apps
    /// can use through `Context::redis` and `Context::redis_subscribe`
    /// with the returned id. The host is resolved now, once; connections
    /// are made when first needed and remade after any outage.
    pub fn add_redis(&mut self, url: &str) -> stdio::Result<RedisId> {
        let url = RedisUrl::parse(url)
            .map_err(|e| stdio::Error::new(stdio::ErrorKind::InvalidInput, e.to_string()))?;
        self.add_redis_url(url)
    }

    /// Resolves the host of an HTTP backend URL now (blocking, before the
    /// reactor runs), so that requests to it can be made: names are never
    /// looked up on the reactor thread. IP addresses and `localhost` need
    /// no call. The first address found is dialled from then on; the
    /// requests keep `Host: name`. Returns that address.
    pub fn resolve_http(&mut self, url: &crate::clients::http::Url) -> stdio::Result<SocketAddr> {
        let origin = url.origin();
        let addr = (
            origin.host().trim_start_matches('[').trim_end_matches(']'),
            origin.port(),
        )
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| stdio::Error::other(format!("{}: no address", origin.host())))?;
        self.core
            .outbound
            .http
            .add_host(origin.host(), origin.port(), addr);
        Ok(addr)
    }

    /// Dials `host:port` at `addr` for HTTP backends, as curl's `--resolve`
    /// does (tests, or names a deployment pins).
    pub fn add_http_host(&mut self, host: &str, port: u16, addr: SocketAddr) {
        self.core.outbound.http.add_host(host, port, addr);
    }

    /// [`Server::add_redis`] with a parsed URL.
    pub fn add_redis_url(&mut self, url: RedisUrl) -> stdio::Result<RedisId> {
        let addr = url
            .addr()
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| stdio::Error::other(format!("{url}: no address")))?;
        let id = RedisId(self.core.outbound.redis.len() as u32);
        self.core.outbound.redis.push(RedisService::new(url, addr));
        Ok(id)
    }

    /// Loads the TLS certificate and key from `files` (PEM) for the
    /// listeners [`Server::serve_tls`] marks. SIGHUP loads them again.
    pub fn use_tls(&mut self, files: crate::tls::TlsFiles) -> Result<(), String> {
        let config = files.load()?;
        self.tls = Some(TlsState { files, config });
        Ok(())
    }

    /// Connections accepted on the listener bound to `addr` speak TLS
    /// (after [`Server::use_tls`]).
    pub fn serve_tls(&mut self, addr: SocketAddr) -> stdio::Result<()> {
        if self.tls.is_none() {
            return Err(stdio::Error::other("no TLS certificate loaded"));
        }
        match self.listeners.iter_mut().find(|l| l.addr == addr) {
            Some(l) => {
                l.tls = true;
                Ok(())
            }
            None => Err(stdio::Error::other(format!("no listener on {addr}"))),
        }
    }

    /// The address of the first listener (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.addr)
    }

    /// The addresses of every listener, in the order they were added.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|l| l.addr).collect()
    }

    /// A handle that stops the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            flag: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Shuts down gracefully on SIGINT or SIGTERM (a second one stops at
    /// once). SIGHUP is logged and otherwise ignored: settings are fixed at
    /// start, and a hang-up must not kill the server.
    pub fn handle_signals(&mut self) -> stdio::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Tells the service manager at `notifier` (systemd's `$NOTIFY_SOCKET`,
    /// see [`crate::notify`]) `READY=1` once [`Server::run`] has started
    /// the apps, every listener bound, and `STOPPING=1` when shutdown
    /// begins.
    pub fn notify_service_manager(&mut self, notifier: crate::notify::Notifier) {
        self.notifier = Some(notifier);
    }

    /// The counters behind `GET /metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// Connections currently held (any phase).
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// Serves until shut down.
    pub fn run(&mut self) -> stdio::Result<()> {
        self.start_apps();
        if let Some(n) = &self.notifier {
            let addrs: Vec<String> = self.local_addrs().iter().map(|a| a.to_string()).collect();
            n.notify(&crate::notify::ready(&format!(
                "listening on {}",
                addrs.join(", ")
            )));
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != stdio::ErrorKind::Interrupted
            {
                return Err(e);
            }
            self.core.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_inbox(),
                    SIGNALS => self.take_signals(),
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    Token(t) if t >= ZMQ_LISTENER_BASE => self.zmq_accept(t - ZMQ_LISTENER_BASE),
                    Token(t) if t >= ZMQ_BASE => self.zmq_ready(
                        t - ZMQ_BASE,
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                    ),
                    Token(t) if t >= OUT_BASE => self.outbound_ready(t - OUT_BASE, event),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key);
                        }
                        if event.is_writable() {
                            self.flush(key);
                        }
                    }
                }
            }
            self.after_events();
            if self.stop.load(Ordering::SeqCst)
                && self.shutdown_deadline.is_none()
                && self.close_listeners_at.is_none()
            {
                self.begin_shutdown();
            }
            if self.close_listeners_at.is_some_and(|t| self.core.now >= t) {
                self.close_listeners();
            }
            if self.shutdown_deadline.is_some() {
                self.drain_turn();
            }
            if let Some(deadline) = self.shutdown_deadline
                && (self.core.conns.is_empty() || self.core.now >= deadline)
            {
                self.finish_shutdown();
                return Ok(());
            }
        }
    }

    /// Calls every root app's `on_start`, once.
    fn start_apps(&mut self) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        self.core.now = Instant::now();
        for (root, app) in self.apps.iter_mut().enumerate() {
            dispatch::call(&mut self.core, &mut **app, root, "on_start", |a, ctx| {
                a.on_start(ctx)
            });
        }
        self.settle();
    }

    /// Tells every root app, once, that every connection is about to be
    /// closed with 1001, so that each may first say goodbye in its own
    /// protocol (`on_shutdown`).
    fn shutdown_apps(&mut self) {
        if std::mem::replace(&mut self.stopping, true) {
            return;
        }
        for (root, app) in self.apps.iter_mut().enumerate() {
            dispatch::call(&mut self.core, &mut **app, root, "on_shutdown", |a, ctx| {
                a.on_shutdown(ctx)
            });
        }
    }

    /// Everything after the readiness events of one turn.
    fn after_events(&mut self) {
        for key in std::mem::take(&mut self.again) {
            self.read(key);
        }
        for i in 0..self.listeners.len() {
            if self.listeners[i]
                .again_at
                .is_some_and(|t| t <= self.core.now)
            {
                self.listeners[i].again_at = None;
                self.accept(i);
            }
        }
        self.zmq_accept_again();
        self.fire_timers();
        if self.core.now >= self.next_sweep {
            self.sweep();
        }
        self.maintain_outbound();
        self.settle();
        self.drive_bus();
        self.bury_doomed();
        self.flush_dirty();
        self.flush_held(false);
        self.flush_outbound();
        // Flushing can discover dead peers, whose on_close may queue output.
        self.settle();
        self.bury_doomed();
        self.flush_dirty();
    }

    /// Applies what apps decided through their contexts and delivers what
    /// came back for them, until nothing is left (or the round budget is
    /// spent: the next turn then does not sleep).
    fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            let ops = std::mem::take(&mut self.core.ops);
            let done = std::mem::take(&mut self.core.outbound.done);
            if ops.is_empty() && done.is_empty() {
                return;
            }
            for op in ops {
                self.apply(op);
            }
            for d in done {
                self.deliver(d);
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let busy = !self.again.is_empty()
            || !self.zmq_again.is_empty()
            || !self.core.dirty.is_empty()
            || !self.core.ops.is_empty()
            || !self.core.outbound.done.is_empty()
            || !self.core.outbound.pending_reads.is_empty()
            || self.core.outbound.http.wants_dial()
            || self.bus_busy();
        if busy {
            return Duration::ZERO;
        }
        let mut wake = self.next_sweep;
        let listeners = self.listeners.iter().filter_map(|l| l.again_at);
        for t in [
            self.core.timers.next_deadline(),
            self.shutdown_deadline,
            self.close_listeners_at,
            self.core.outbound.next_deadline(),
            self.core.held_until,
            self.bus_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(listeners)
        {
            wake = wake.min(t);
        }
        wake.saturating_duration_since(Instant::now())
    }

    /// Next jitter value for back-off.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}
