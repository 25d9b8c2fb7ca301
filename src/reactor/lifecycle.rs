//! Time- and signal-driven parts of the loop: the periodic deadline sweep
//! (handshake, ping/pong and close timeouts) and graceful shutdown.

use super::Server;
use super::core::Phase;
use super::dispatch::notify_close;
use crate::config::Config;
use crate::ws::close;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The reason of the close 1001 every client gets when the server stops
/// (SIGTERM, SIGINT, [`super::ShutdownHandle`]). It asks clients to
/// reconnect without waiting: after a restart, or with a sibling process
/// on the same port (`--reuse-port`), a server is there to take them.
pub const SHUTDOWN_REASON: &str = "server restarting, reconnect now";

/// How long a `SO_REUSEPORT` listener goes on accepting the handshakes
/// under way, new SYNs dropped, before it closes: above most round trips.
const LISTENER_LINGER: Duration = Duration::from_millis(250);

/// A classic BPF socket filter that drops TCP segments with SYN set and
/// ACK clear (new connections) and keeps everything else. A TCP socket's
/// filter sees the packet from the TCP header; byte 13 holds the flags.
fn drop_new_syns() -> [socket2::SockFilter; 5] {
    use socket2::SockFilter;
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SYN: u32 = 0x02;
    const ACK: u32 = 0x10;
    [
        SockFilter::new(LD_B_ABS, 0, 0, 13),
        SockFilter::new(AND_K, 0, 0, SYN | ACK),
        // SYN alone: to the drop; else over it.
        SockFilter::new(JEQ_K, 0, 1, SYN),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
    ]
}

/// While shutting down, how long a connection that has sent nothing is
/// kept: enough for a client accepted from the queue to send its request.
const SILENT_GRACE: Duration = Duration::from_secs(1);

impl Server {
    /// Periodic check of every connection's deadlines (see `Core::sweep`).
    pub(super) fn sweep(&mut self) {
        self.next_sweep = self.core.now + sweep_interval(&self.core.cfg);
        for key in self.core.sweep() {
            self.remove(key);
        }
    }

    pub(super) fn take_signals(&mut self) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        let mut stop = false;
        for signal in signals.pending() {
            if signal == signal_hook::consts::SIGHUP {
                self.reload_tls();
            } else {
                stop = true;
            }
        }
        if !stop {
            return;
        }
        if self.shutdown_deadline.is_some() || self.close_listeners_at.is_some() {
            log::warn!("second signal: stopping now");
            self.shutdown_deadline = Some(self.core.now);
            if self.close_listeners_at.is_some() {
                self.close_listeners_at = Some(self.core.now);
            }
        } else {
            log::info!("signal received: shutting down");
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// SIGHUP: loads the TLS certificate and key again from the same
    /// files. New connections get the new ones; open connections keep
    /// theirs and stay open. On failure the old certificate stays.
    ///
    /// This reads two small local files on the reactor thread: a brief
    /// blocking read, once per operator's SIGHUP, as other servers do it;
    /// nothing else here blocks.
    fn reload_tls(&mut self) {
        let Some(state) = &mut self.tls else {
            log::info!("SIGHUP ignored: nothing to reload (no TLS certificate in use)");
            return;
        };
        match state.files.load() {
            Ok(config) => {
                state.config = config;
                log::info!(
                    "TLS certificate reloaded from {} and {}",
                    state.files.cert.display(),
                    state.files.key.display()
                );
            }
            Err(e) => log::error!("TLS reload failed, keeping the old certificate: {e}"),
        }
    }

    /// Starts a graceful shutdown: stops accepting, then starts the close
    /// handshake with every client.
    ///
    /// A listener bound with `SO_REUSEPORT` may have a successor on the
    /// same port. Closing it would reset what it still queues (the kernel
    /// does not hand those to a sibling socket), and connections that
    /// reach it meanwhile would be lost too. So it first gets a socket
    /// filter that drops new SYNs (their clients send them again a second
    /// later, when this socket is gone and the kernel picks a sibling), goes
    /// on accepting for `LISTENER_LINGER` so that handshakes already under
    /// way complete, and only then closes. Clients get their close 1001
    /// after that, so that their reconnects reach the successor.
    pub(super) fn begin_shutdown(&mut self) {
        let now = self.core.now;
        if let Some(n) = &self.notifier {
            n.notify(&crate::notify::stopping("draining connections"));
        }
        let mut linger = false;
        for listener in &self.listeners {
            let Some(sock) = listener.sock.as_ref().filter(|_| listener.reuse_port) else {
                continue;
            };
            match socket2::SockRef::from(sock).attach_filter(&drop_new_syns()) {
                Ok(()) => linger = true,
                Err(e) => log::warn!(
                    "{}: cannot filter new connections away ({e}); closing at once",
                    listener.addr
                ),
            }
        }
        if linger {
            log::info!(
                "shutting down: new connections left to the other listeners on the port; closing ours in {LISTENER_LINGER:?}"
            );
            self.close_listeners_at = Some(now + LISTENER_LINGER);
        } else {
            self.close_listeners();
        }
    }

    /// Accepts what the listeners still queue, closes them, and closes
    /// every WebSocket with 1001.
    pub(super) fn close_listeners(&mut self) {
        self.close_listeners_at = None;
        for index in 0..self.listeners.len() {
            if let Some(sock) = self.listeners[index].sock.as_mut() {
                let _ = self.poll.registry().deregister(sock);
            }
            self.accept_backlog(index);
            // Dropped right after the queue came up empty.
            self.listeners[index].sock = None;
        }
        // The apps' goodbyes go before the 1001s, to the connections
        // accepted just now too.
        self.shutdown_apps();
        log::info!(
            "shutting down: closing {} connection(s) with {} \"{SHUTDOWN_REASON}\"",
            self.core.conns.len(),
            close::GOING_AWAY
        );
        let deadline = self.core.now + self.core.cfg.close_timeout;
        self.shutdown_deadline.get_or_insert(deadline);
        self.drain_turn();
        self.flush_held(true);
        self.after_events();
    }

    /// Accepts everything in listener `index`'s queue, until `WouldBlock`
    /// or an error such as EMFILE.
    fn accept_backlog(&mut self, index: usize) {
        loop {
            self.listeners[index].again_at = None;
            self.accept(index);
            // `accept` leaves `again_at` unset on WouldBlock, sets it to
            // now when its per-turn budget ran out, later after an error.
            match self.listeners[index].again_at {
                Some(t) if t <= self.core.now => continue,
                _ => break,
            }
        }
        self.listeners[index].again_at = None;
    }

    /// Each turn while shutting down: every WebSocket still open (those
    /// whose handshake completed since) gets close 1001, and connections
    /// with no request under way go: idle keep-alive ones, and those
    /// silent for `SILENT_GRACE` since they were accepted (browsers open
    /// sockets ahead of need). A client just accepted has that long to
    /// send its request.
    pub(super) fn drain_turn(&mut self) {
        let now = self.core.now;
        let idle: Vec<usize> = self
            .core
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.phase, Phase::Handshake(_))
                    && c.input.is_empty()
                    && (c.served || now.saturating_duration_since(c.since) >= SILENT_GRACE)
            })
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.remove(key);
        }
        self.core.close_all(close::GOING_AWAY, SHUTDOWN_REASON);
        self.flush_dirty();
    }

    pub(super) fn finish_shutdown(&mut self) {
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            // Still not a WebSocket when time ran out: it just goes.
            if !matches!(
                self.core.conns[key].phase,
                Phase::WebSocket | Phase::Done { .. }
            ) {
                self.remove(key);
                continue;
            }
            let app = &mut *self.apps[self.core.conns[key].app()];
            notify_close(
                &mut self.core,
                app,
                key,
                close::ABNORMAL,
                "server shut down",
            );
            self.remove(key);
        }
        log::info!("shutdown complete");
    }
}

/// How often deadlines are checked: a quarter of the shortest timeout,
/// between 10 ms and 1 s.
fn sweep_interval(cfg: &Config) -> Duration {
    let shortest = [
        Some(cfg.handshake_timeout),
        Some(cfg.close_timeout),
        cfg.ping_interval,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(Duration::from_secs(1));
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}
