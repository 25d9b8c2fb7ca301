//! The server's side of client connections: accepting, reading, writing,
//! and handing bytes and completions to the apps. Sockets live here and
//! only here.

use super::core::{Conn, Phase};
use super::dispatch::{self, call, ingest_own, ingest_shared, notify_close};
use super::outbound::Done;
use super::stream::{Stream, TlsFailure, TlsStream};
use super::{ACCEPT_BACKOFF, ACCEPTS_PER_TURN, READS_PER_TURN, Server, handshake};
use crate::app::{ConnError, ConnId};
use crate::http::response;
use crate::metrics::Metrics;
use crate::ws::close;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

impl Server {
    pub(super) fn accept(&mut self, index: usize) {
        if self
            .listeners
            .get(index)
            .is_none_or(|l| l.again_at.is_some())
        {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = self.listeners[index].sock.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((sock, peer)) => {
                    self.core.metrics.connections_accepted += 1;
                    let app = self.listeners[index].app;
                    let listener = &self.listeners[index];
                    let (tls, proxy_protocol) = (listener.tls, listener.proxy_protocol);
                    self.admit(sock, peer, app, tls, proxy_protocol)
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
                    self.listeners[index].again_at = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // More may be waiting; edge-triggered readiness won't tell us again.
        self.listeners[index].again_at = Some(self.core.now);
    }

    /// Refuses a fresh socket at admission, best effort.
    fn refuse_at_door(
        &mut self,
        mut sock: TcpStream,
        status: u16,
        extra: &[(&str, &str)],
        why: &str,
    ) {
        self.core.metrics.connections_over_limit += 1;
        Metrics::bump(&mut self.core.metrics.http_responses, status);
        let mut out = Vec::new();
        response::write_plain(&mut out, status, extra, why);
        let _ = sock.write(&out);
    }

    /// Takes a new connection: limits, socket options, registration, and
    /// its stream (TLS on a TLS listener). With `proxy_protocol` its first
    /// bytes must be a PROXY header, read below TLS.
    fn admit(
        &mut self,
        mut sock: TcpStream,
        peer: SocketAddr,
        app: usize,
        tls: bool,
        proxy_protocol: bool,
    ) {
        let per_ip = self.core.cfg.max_connections_per_ip;
        // A trusted proxy's connections count for the clients they carry,
        // once known (`proxy::resolve_client`).
        let count = self.core.counts_at_accept(peer.ip());
        if count && self.core.ip_full(peer.ip()) {
            log::warn!("{peer} refused: {per_ip} connections from this address already");
            return self.refuse_at_door(sock, 429, &[], "too many connections from your address\n");
        }
        if self.core.conns.len() >= self.core.cfg.max_connections {
            log::warn!(
                "{peer} refused: connection limit {} reached",
                self.core.cfg.max_connections
            );
            return self.refuse_at_door(
                sock,
                503,
                &[("Retry-After", "5")],
                "connection limit reached\n",
            );
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
        if key >= super::OUT_BASE {
            return;
        }
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
        let conn = entry.insert(Conn::new(peer, id, app, self.core.now));
        conn.proxy_pending = proxy_protocol;
        if self.socks.len() <= key {
            self.socks.resize_with(key + 1, || None);
        }
        let stream = match self.tls.as_ref().filter(|_| tls) {
            Some(state) => match TlsStream::new(sock, state.config.clone()) {
                Ok(t) => Stream::Tls(Box::new(t)),
                Err(e) => {
                    log::error!("{peer}: cannot start TLS: {e}");
                    self.core.conns.remove(key);
                    return;
                }
            },
            None => Stream::Plain(sock),
        };
        self.socks[key] = Some(stream);
        if count {
            self.core.count_ip(key);
        }
        log::debug!("{id} {peer} connected");
    }

    /// Reads until `WouldBlock` (or the turn's budget), feeding each chunk
    /// through the protocol. Input goes into the shared buffer unless the
    /// connection already holds a partial frame, which then grows in place.
    /// A connection whose app is deciding is not read: its bytes wait in
    /// the kernel until the decision.
    pub(super) fn read(&mut self, key: usize) {
        if self.core.conns.get(key).is_some_and(|c| c.proxy_pending) && !self.read_proxy_header(key)
        {
            return;
        }
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.core.conns.get_mut(key) else {
                return;
            };
            if matches!(conn.phase, Phase::Deciding(_) | Phase::HttpWaiting(_)) {
                return;
            }
            let Some(sock) = self.socks.get_mut(key).and_then(Option::as_mut) else {
                return;
            };
            let own = !conn.input.is_empty();
            let result = if own {
                sock.read(conn.input.spare())
            } else {
                sock.read(&mut self.rbuf)
            };
            if let Stream::Tls(t) = sock
                && t.take_handshake()
            {
                self.core.metrics.tls_handshakes += 1;
            }
            let n = match result {
                Ok(0) if sock.tls_handshaking() => {
                    // Counted, but logged at debug only: load balancers'
                    // TCP checks do this all day.
                    self.core.metrics.tls_handshake_failures += 1;
                    return self.gone(key, "peer closed the connection in the TLS handshake");
                }
                Ok(0) => return self.gone(key, "peer closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.input.release_if_empty(&mut self.core.in_pool);
                    // Handshake records the socket did not take yet.
                    if sock.wants_write() && !conn.dirty {
                        conn.dirty = true;
                        self.core.dirty.push(key);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.tls_failed(key, e),
            };
            self.core.metrics.socket_bytes_read += n as u64;
            let app = &mut *self.apps[conn.app()];
            if own {
                ingest_own(&mut self.core, app, key, n);
            } else {
                ingest_shared(&mut self.core, app, key, &mut self.rbuf[..n]);
            }
        }
        self.again.push(key);
    }

    /// Writes queued output until done or `WouldBlock`, then adjusts the
    /// WRITABLE interest and, once a closed connection's output is out,
    /// shuts our side down.
    pub(super) fn flush(&mut self, key: usize) {
        let (Some(conn), Some(Some(sock))) =
            (self.core.conns.get_mut(key), self.socks.get_mut(key))
        else {
            return;
        };
        if let Err(e) = sock.write_pending() {
            return self.gone(key, &e.to_string());
        }
        // A TLS handshake that never finished has nobody to read an HTTP
        // answer (a handshake timeout, say): close.
        if matches!(conn.phase, Phase::Done { .. }) && sock.tls_handshaking() {
            return self.remove(key);
        }
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
        let queued = conn.out_pos < conn.out.len();
        let pending = queued || sock.wants_write();
        if queued && conn.ws_open() && conn.pending_out() > self.core.cfg.max_outbound {
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
                sock.shutdown_write();
            }
        }
        if pending != conn.writable {
            conn.writable = pending;
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(sock.tcp_mut(), Token(key), interest)
            {
                log::error!("{}: reregister failed: {e}", conn.id);
            }
        }
    }

    /// Flushes the broadcast targets whose flush was held, once their time
    /// has come (or at once with `all`).
    pub(super) fn flush_held(&mut self, all: bool) {
        if self
            .core
            .held_until
            .is_none_or(|t| t > self.core.now && !all)
        {
            return;
        }
        self.core.held_until = None;
        let mut held = std::mem::take(&mut self.core.held);
        for &key in &held {
            if let Some(conn) = self.core.conns.get_mut(key) {
                conn.held = false;
            }
            self.flush(key);
        }
        // Keep the list's allocation for the next round.
        held.clear();
        if self.core.held.is_empty() {
            self.core.held = held;
        }
    }

    /// Flushes every connection that got output this turn.
    pub(super) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.core.dirty);
        for &key in &dirty {
            if let Some(conn) = self.core.conns.get_mut(key) {
                conn.dirty = false;
            }
            self.flush(key);
        }
        dirty.clear();
        if self.core.dirty.is_empty() {
            self.core.dirty = dirty;
        }
    }

    /// A read failed: below HTTP on a TLS connection (counted and logged
    /// with the peer), or the socket itself.
    fn tls_failed(&mut self, key: usize, e: io::Error) {
        let failure = e.get_ref().and_then(|e| e.downcast_ref::<TlsFailure>());
        if let (Some(failure), Some(conn)) = (failure, self.core.conns.get(key)) {
            match failure {
                TlsFailure::NotTls => {
                    self.core.metrics.tls_plain_http += 1;
                    Metrics::bump(&mut self.core.metrics.http_responses, 400);
                    log::info!("{}: plain HTTP on the TLS port: answered 400", conn.peer);
                }
                TlsFailure::Tls(err) => {
                    self.core.metrics.tls_handshake_failures += 1;
                    log::info!("{}: TLS failed: {err}", conn.peer);
                }
            }
        }
        self.gone(key, &e.to_string())
    }

    /// The TCP connection is over (EOF or error): tell the app if it still
    /// thinks the connection open, and drop it.
    pub(super) fn gone(&mut self, key: usize, why: &str) {
        let Some(conn) = self.core.conns.get(key) else {
            return;
        };
        if !matches!(conn.phase, Phase::Done { .. }) {
            log::debug!("{} {}: connection lost: {why}", conn.id, conn.peer);
        }
        let app = &mut *self.apps[conn.app()];
        notify_close(&mut self.core, app, key, close::ABNORMAL, "");
        self.remove(key);
    }

    pub(super) fn remove(&mut self, key: usize) {
        if !self.core.conns.contains(key) {
            return;
        }
        self.core.uncount_ip(key);
        let mut conn = self.core.remove(key);
        if let Some(mut sock) = self.socks.get_mut(key).and_then(Option::take) {
            if let Stream::Tls(t) = &mut sock
                && !t.is_handshaking()
            {
                t.close_notify();
            }
            let _ = self.poll.registry().deregister(sock.tcp_mut());
        }
        let mut out = conn.out;
        out.clear();
        self.core.shared.buffers.give(out);
        conn.input.release_if_empty(&mut self.core.in_pool);
    }

    /// Drops the connections marked for removal, after telling their apps.
    pub(super) fn bury_doomed(&mut self) {
        while let Some((key, why)) = self.core.doomed.pop() {
            let Some(conn) = self.core.conns.get(key) else {
                continue;
            };
            let app = &mut *self.apps[conn.app()];
            dispatch::doomed(&mut self.core, app, key, why);
            self.remove(key);
        }
    }

    pub(super) fn fire_timers(&mut self) {
        while let Some(timer) = self.core.timers.pop_due(self.core.now) {
            self.core.metrics.timers_fired += 1;
            let root = timer.route().root_index();
            let Some(app) = self.apps.get_mut(root) else {
                continue;
            };
            if !call(&mut self.core, &mut **app, root, "on_timer", |a, ctx| {
                a.on_timer(ctx, timer)
            }) {
                log::error!("timer {} dropped after its callback panicked", timer.id());
                self.core.timers.cancel(timer);
            }
        }
    }

    /// Applies a decision an app made (accept, reject, respond); the
    /// connection then processes what it held back.
    pub(super) fn apply(&mut self, op: super::core::Op) {
        let Some(key) = self.core.key_of(op.conn()) else {
            return;
        };
        let app = &mut *self.apps[self.core.conns[key].app()];
        let Some(key) = handshake::apply(&mut self.core, app, op) else {
            return;
        };
        // Input held while the app decided: what was already read, then
        // the socket (edge-triggered readiness will not repeat itself).
        if let Some(conn) = self.core.conns.get(key)
            && !conn.input.is_empty()
        {
            let app = &mut *self.apps[conn.app()];
            ingest_own(&mut self.core, app, key, 0);
        }
        self.again.push(key);
    }

    /// Hands a completion to the app that holds its ticket.
    pub(super) fn deliver(&mut self, done: Done) {
        if let super::outbound::DoneReply::Http(Err(e)) = &done.reply {
            self.core.metrics.http_request_errors += 1;
            log::debug!("{}: backend request failed: {e}", done.ticket);
        }
        if done.ticket.route() == crate::app::Route::BUS {
            return self.bus_reply(done);
        }
        let root = done.ticket.route().root_index();
        let Some(app) = self.apps.get_mut(root) else {
            return;
        };
        let ticket = done.ticket;
        let core = &mut self.core;
        let mut reply = done.reply;
        let mut receipt = None;
        match &mut reply {
            super::outbound::DoneReply::Bus { receipt: r, .. } => {
                if !core.bus.is_subscribed(ticket) {
                    return; // unsubscribed after the event was queued
                }
                receipt = *r;
            }
            super::outbound::DoneReply::Published(n) => *n = core.bus.take_receipt(ticket),
            _ => {}
        }
        let before = core.metrics.messages_out;
        reply.with_reply(|reply| {
            call(core, &mut **app, root, "on_reply", |a, ctx| {
                a.on_reply(ctx, ticket, reply)
            })
        });
        if let Some(receipt) = receipt {
            let reached = core.metrics.messages_out - before;
            core.bus.add_delivered(receipt, reached as usize);
        }
    }

    /// Values other threads sent through inboxes.
    pub(super) fn take_inbox(&mut self) {
        while let Ok((ticket, value)) = self.inbox.try_recv() {
            self.core
                .outbound
                .done
                .push(Done::new(ticket, super::outbound::DoneReply::Inbox(value)));
        }
    }
}
