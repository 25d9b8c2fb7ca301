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
                log::info!("SIGHUP ignored: nothing to reload (settings are fixed at start)");
            } else {
                stop = true;
            }
        }
        if !stop {
            return;
        }
        if self.shutdown_deadline.is_some() {
            log::warn!("second signal: stopping now");
            self.shutdown_deadline = Some(self.core.now);
        } else {
            log::info!("signal received: shutting down");
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Stops accepting and starts the close handshake with every client.
    ///
    /// Connections already in a listener's accept queue are accepted and
    /// served first: closing a listener resets whatever it still queues
    /// (with `SO_REUSEPORT` the kernel does not hand them to a sibling
    /// socket), and a restart must refuse nobody. Requests under way are
    /// answered; WebSocket handshakes under way complete and then get the
    /// same close as everybody (see `drain_turn`).
    pub(super) fn begin_shutdown(&mut self) {
        let now = self.core.now;
        if let Some(n) = &self.notifier {
            n.notify(&crate::notify::stopping("draining connections"));
        }
        for index in 0..self.listeners.len() {
            if let Some(sock) = self.listeners[index].sock.as_mut() {
                let _ = self.poll.registry().deregister(sock);
            }
            self.accept_backlog(index);
            // Dropped right after the queue came up empty: the window in
            // which the kernel could still queue a connection here is the
            // time between two system calls.
            self.listeners[index].sock = None;
        }
        log::info!(
            "shutting down: closing {} connection(s) with {} \"{SHUTDOWN_REASON}\"",
            self.core.conns.len(),
            close::GOING_AWAY
        );
        self.shutdown_deadline = Some(now + self.core.cfg.close_timeout);
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
