//! Time- and signal-driven parts of the loop: the periodic deadline sweep
//! (handshake, ping/pong and close timeouts) and graceful shutdown.

use super::Server;
use super::core::Phase;
use super::dispatch::notify_close;
use crate::config::Config;
use crate::ws::close;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
        if self.shutdown_deadline.is_some() {
            log::warn!("second signal: stopping now");
            self.shutdown_deadline = Some(self.core.now);
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

    /// Stops accepting and starts the close handshake with every client.
    pub(super) fn begin_shutdown(&mut self) {
        let now = self.core.now;
        for listener in &mut self.listeners {
            if let Some(mut sock) = listener.sock.take() {
                let _ = self.poll.registry().deregister(&mut sock);
            }
        }
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        log::info!("shutting down: closing {} connection(s)", keys.len());
        for key in keys {
            // Not yet a WebSocket (a head, a body, a decision pending): go.
            if !matches!(
                self.core.conns[key].phase,
                Phase::WebSocket | Phase::Done { .. }
            ) {
                self.remove(key);
            }
        }
        self.core
            .close_all(close::GOING_AWAY, "server shutting down");
        self.flush_held(true);
        self.shutdown_deadline = Some(now + self.core.cfg.close_timeout);
        self.after_events();
    }

    pub(super) fn finish_shutdown(&mut self) {
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
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
