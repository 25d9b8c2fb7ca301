//! The event loop: one `mio::Poll` on one thread owns the listener and
//! every client socket, kept in a slab whose keys are the poll tokens.
//!
//! Each turn: wait for readiness (or the next timer), read every readable
//! socket until `WouldBlock` (bounded per turn for fairness), run the
//! protocol and the app over the bytes, fire due timers, then write each
//! connection's queued output once. WRITABLE interest is registered only
//! while output is pending.

mod buf;
mod core;
mod dispatch;
mod lifecycle;
mod timers;

#[doc(hidden)]
pub mod harness;

use self::buf::READ_BUFFER;
use self::core::{Conn, Core, Phase};
use crate::app::{Application, ConnError, ConnId};
use crate::config::Config;
use crate::http::response;
use crate::metrics::Metrics;
use crate::ws::close;
use dispatch::{call, ingest_own, ingest_shared, next_doomed, notify_close};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

/// Reads per connection per turn before others get their go.
const READS_PER_TURN: usize = 16;
/// Accepts per turn before connections get their go.
const ACCEPTS_PER_TURN: usize = 256;
/// Pause after an accept error such as EMFILE, so it cannot spin the CPU.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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

/// A WebSocket server: one reactor serving one application.
pub struct Server<A> {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    app: A,
    core: Core,
    rbuf: Vec<u8>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// Connections that still had input when their read budget ran out.
    again: Vec<usize>,
    accept_again_at: Option<Instant>,
    next_sweep: Instant,
    shutdown_deadline: Option<Instant>,
    last_accept_error_log: Option<Instant>,
    next_generation: u32,
    /// Client sockets, by slab key (beside `core.conns`, which holds only
    /// protocol state).
    socks: Vec<Option<TcpStream>>,
    /// Connections per client address, when that is limited.
    per_ip: std::collections::HashMap<std::net::IpAddr, u32>,
}

impl<A: Application> Server<A> {
    /// Binds `config.listen` and prepares to serve `app`.
    pub fn bind(config: Config, app: A) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let now = Instant::now();
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            app,
            core: Core::new(config),
            rbuf: vec![0; READ_BUFFER],
            signals: None,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            again: Vec::new(),
            accept_again_at: None,
            next_sweep: now,
            shutdown_deadline: None,
            last_accept_error_log: None,
            next_generation: 0,
            per_ip: std::collections::HashMap::new(),
            socks: Vec::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
    pub fn handle_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// The application, e.g. to inspect it after `run` returns.
    pub fn app(&self) -> &A {
        &self.app
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
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            self.core.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    SIGNALS => self.take_signals(),
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
            if self.stop.load(Ordering::SeqCst) && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            if let Some(deadline) = self.shutdown_deadline
                && (self.core.conns.is_empty() || self.core.now >= deadline)
            {
                self.finish_shutdown();
                return Ok(());
            }
        }
    }

    /// Everything after the readiness events of one turn.
    fn after_events(&mut self) {
        for key in std::mem::take(&mut self.again) {
            self.read(key);
        }
        if self.accept_again_at.is_some_and(|t| t <= self.core.now) {
            self.accept_again_at = None;
            self.accept();
        }
        self.fire_timers();
        if self.core.now >= self.next_sweep {
            self.sweep();
        }
        self.bury_doomed();
        let mut dirty = std::mem::take(&mut self.core.dirty);
        for &key in &dirty {
            if let Some(conn) = self.core.conns.get_mut(key) {
                conn.dirty = false;
            }
            self.flush(key);
        }
        dirty.clear();
        // Flushing can discover dead peers, whose on_close may queue output.
        self.bury_doomed();
        if self.core.dirty.is_empty() {
            self.core.dirty = dirty;
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.again.is_empty() || !self.core.dirty.is_empty() {
            return Duration::ZERO;
        }
        let mut wake = self.next_sweep;
        for t in [
            self.core.timers.next_deadline(),
            self.accept_again_at,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(t);
        }
        wake.saturating_duration_since(Instant::now())
    }

    fn accept(&mut self) {
        if self.accept_again_at.is_some() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((sock, peer)) => {
                    self.core.metrics.connections_accepted += 1;
                    self.admit(sock, peer)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.core.metrics.accept_errors += 1;
                    // EMFILE, ENFILE, ENOBUFS...: the pending client stays in
                    // the backlog; try again shortly instead of spinning.
                    let now = self.core.now;
                    if self
                        .last_accept_error_log
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        log::warn!("accept failed: {e}; retrying in {ACCEPT_BACKOFF:?}");
                        self.last_accept_error_log = Some(now);
                    }
                    self.accept_again_at = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // More may be waiting; edge-triggered readiness won't tell us again.
        self.accept_again_at = Some(self.core.now);
    }

    fn admit(&mut self, mut sock: TcpStream, peer: SocketAddr) {
        let per_ip = self.core.cfg.max_connections_per_ip;
        if per_ip != 0 && self.per_ip.get(&peer.ip()).copied().unwrap_or(0) as usize >= per_ip {
            log::warn!("{peer} refused: {per_ip} connections from this address already");
            self.core.metrics.connections_over_limit += 1;
            Metrics::bump(&mut self.core.metrics.http_responses, 429);
            let mut out = Vec::new();
            response::write_plain(
                &mut out,
                429,
                &[],
                "too many connections from your address\n",
            );
            let _ = sock.write(&out); // best effort on a fresh socket
            return;
        }
        if self.core.conns.len() >= self.core.cfg.max_connections {
            log::warn!(
                "{peer} refused: connection limit {} reached",
                self.core.cfg.max_connections
            );
            self.core.metrics.connections_over_limit += 1;
            Metrics::bump(&mut self.core.metrics.http_responses, 503);
            let mut out = Vec::new();
            response::write_plain(
                &mut out,
                503,
                &[("Retry-After", "5")],
                "connection limit reached\n",
            );
            let _ = sock.write(&out); // best effort on a fresh socket
            return;
        }
        let _ = sock.set_nodelay(true);
        if let Some(idle) = self.core.cfg.tcp_keepalive {
            // Finds peers that vanished without a FIN (power loss, NAT
            // timeout) even when the WebSocket ping is off.
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(idle / 4);
            if let Err(e) = socket2::SockRef::from(&sock).set_tcp_keepalive(&keepalive) {
                log::debug!("{peer}: cannot enable TCP keepalive: {e}");
            }
        }
        let entry = self.core.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut sock, Token(key), Interest::READABLE)
        {
            log::error!("{peer}: cannot register socket: {e}");
            return;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let id = ConnId::new(key as u32, self.next_generation);
        entry.insert(Conn::new(peer, id, self.core.now));
        if self.socks.len() <= key {
            self.socks.resize_with(key + 1, || None);
        }
        self.socks[key] = Some(sock);
        if per_ip != 0 {
            *self.per_ip.entry(peer.ip()).or_default() += 1;
        }
        log::debug!("{id} {peer} connected");
    }

    /// Reads until `WouldBlock` (or the turn's budget), feeding each chunk
    /// through the protocol. Input goes into the shared buffer unless the
    /// connection already holds a partial frame, which then grows in place.
    fn read(&mut self, key: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.core.conns.get_mut(key) else {
                return;
            };
            let Some(sock) = self.socks.get_mut(key).and_then(Option::as_mut) else {
                return;
            };
            let own = !conn.input.is_empty();
            let result = if own {
                sock.read(conn.input.spare())
            } else {
                sock.read(&mut self.rbuf)
            };
            let n = match result {
                Ok(0) => return self.gone(key, "peer closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.input.release_if_empty(&mut self.core.in_pool);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.gone(key, &e.to_string()),
            };
            self.core.metrics.socket_bytes_read += n as u64;
            if own {
                ingest_own(&mut self.core, &mut self.app, key, n);
            } else {
                ingest_shared(&mut self.core, &mut self.app, key, &mut self.rbuf[..n]);
            }
        }
        self.again.push(key);
    }

    /// Writes queued output until done or `WouldBlock`, then adjusts the
    /// WRITABLE interest and, once a closed connection's output is out,
    /// shuts our side down.
    fn flush(&mut self, key: usize) {
        let (Some(conn), Some(Some(sock))) =
            (self.core.conns.get_mut(key), self.socks.get_mut(key))
        else {
            return;
        };
        while conn.out_pos < conn.out.len() {
            match sock.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return self.gone(key, "write returned 0"),
                Ok(n) => {
                    conn.out_pos += n;
                    self.core.metrics.socket_bytes_written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.gone(key, &e.to_string()),
            }
        }
        let pending = conn.out_pos < conn.out.len();
        if pending && conn.ws_open() && conn.pending_out() > self.core.cfg.max_outbound {
            log::warn!(
                "{} {}: disconnecting slow consumer ({} bytes unsent after writing, limit {})",
                conn.id,
                conn.peer,
                conn.pending_out(),
                self.core.cfg.max_outbound
            );
            return self.core.doom(key, ConnError::SlowConsumer);
        }
        if !pending && conn.out.capacity() != 0 {
            let mut out = std::mem::take(&mut conn.out);
            out.clear();
            conn.out_pos = 0;
            self.core.shared.buffers.give(out);
        }
        if !pending && let Phase::Done { complete } = conn.phase {
            if complete {
                return self.remove(key);
            }
            // After a refusal or a failed connection the peer may still be
            // sending; closing now could reset the connection and destroy
            // our last words. Shut our side and drain until it closes.
            if !conn.write_shut {
                conn.write_shut = true;
                let _ = sock.shutdown(Shutdown::Write);
            }
        }
        if pending != conn.writable {
            conn.writable = pending;
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self.poll.registry().reregister(sock, Token(key), interest) {
                log::error!("{}: reregister failed: {e}", conn.id);
            }
        }
    }

    /// The TCP connection is over (EOF or error): tell the app if it still
    /// thinks the connection open, and drop it.
    fn gone(&mut self, key: usize, why: &str) {
        if let Some(conn) = self.core.conns.get(key)
            && !matches!(conn.phase, Phase::Done { .. })
        {
            log::debug!("{} {}: connection lost: {why}", conn.id, conn.peer);
        }
        notify_close(&mut self.core, &mut self.app, key, close::ABNORMAL, "");
        self.remove(key);
    }

    fn remove(&mut self, key: usize) {
        if !self.core.conns.contains(key) {
            return;
        }
        let mut conn = self.core.conns.remove(key);
        if let Some(mut sock) = self.socks.get_mut(key).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut sock);
        }
        if let std::collections::hash_map::Entry::Occupied(mut count) =
            self.per_ip.entry(conn.peer.ip())
        {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        let mut out = conn.out;
        out.clear();
        self.core.shared.buffers.give(out);
        conn.input.release_if_empty(&mut self.core.in_pool);
    }

    fn bury_doomed(&mut self) {
        while let Some(key) = next_doomed(&mut self.core, &mut self.app) {
            self.remove(key);
        }
    }

    fn fire_timers(&mut self) {
        while let Some(timer) = self.core.timers.pop_due(self.core.now) {
            self.core.metrics.timers_fired += 1;
            if !call(&mut self.core, &mut self.app, "on_timer", |a, ctx| {
                a.on_timer(ctx, timer)
            }) {
                log::error!("timer {} dropped after its callback panicked", timer.0);
                self.core.timers.cancel(timer);
            }
        }
    }
}
