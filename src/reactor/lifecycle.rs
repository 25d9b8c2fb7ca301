//! Time- and signal-driven parts of the loop: the periodic deadline sweep
//! (handshake, ping/pong and close timeouts) and graceful shutdown.

use super::Server;
use super::core::Phase;
use super::dispatch::notify_close;
use crate::app::{Application, ConnError};
use crate::config::Config;
use crate::http::response;
use crate::metrics::Metrics;
use crate::ws::close;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl<A: Application> Server<A> {
    /// Periodic check of every connection's deadlines: handshake timeout,
    /// idle ping and pong timeout, close timeout.
    pub(super) fn sweep(&mut self) {
        let now = self.core.now;
        let cfg = &self.core.cfg;
        let (handshake, close_t, ping) =
            (cfg.handshake_timeout, cfg.close_timeout, cfg.ping_interval);
        self.next_sweep = now + sweep_interval(cfg);
        let mut actions = Vec::new();
        for (key, conn) in self.core.conns.iter_mut() {
            let in_phase = now.saturating_duration_since(conn.since);
            match conn.phase {
                Phase::Handshake(_) if in_phase >= handshake => {
                    actions.push((key, Sweep::HandshakeTimeout))
                }
                Phase::Open => {
                    let Some(interval) = ping else { continue };
                    let idle = now.saturating_duration_since(conn.last_heard);
                    if conn.ping_outstanding && idle >= interval * 2 {
                        actions.push((key, Sweep::Doom(ConnError::PingTimeout)));
                    } else if !conn.ping_outstanding && idle >= interval {
                        conn.ping_outstanding = true;
                        actions.push((key, Sweep::Ping));
                    }
                }
                Phase::CloseSent if in_phase >= close_t => {
                    actions.push((key, Sweep::Doom(ConnError::CloseTimeout)))
                }
                Phase::Closed if in_phase >= close_t => actions.push((key, Sweep::Remove)),
                _ => {}
            }
        }
        for (key, action) in actions {
            match action {
                Sweep::HandshakeTimeout => {
                    log::info!("{}: handshake timeout", self.core.conns[key].peer);
                    self.core.metrics.handshake_timeouts += 1;
                    Metrics::bump(&mut self.core.metrics.http_responses, 408);
                    let mut out = Vec::new();
                    response::write_plain(&mut out, 408, &[], "handshake timeout\n");
                    self.core.push_out(key, &out);
                    self.core.conns[key].set_phase(Phase::Closed, now);
                }
                Sweep::Ping => self.core.push_frame(key, crate::ws::OpCode::Ping, b""),
                Sweep::Doom(why) => self.core.doom(key, why),
                Sweep::Remove => self.remove(key),
            }
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
    pub(super) fn begin_shutdown(&mut self) {
        let now = self.core.now;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        log::info!("shutting down: closing {} connection(s)", keys.len());
        for key in keys {
            match self.core.conns[key].phase {
                Phase::Handshake(_) => self.remove(key),
                Phase::Open => {
                    self.core
                        .push_close(key, Some(close::GOING_AWAY), "server shutting down");
                    self.core.conns[key].set_phase(Phase::CloseSent, now);
                }
                _ => {}
            }
        }
        self.shutdown_deadline = Some(now + self.core.cfg.close_timeout);
        self.after_events();
    }

    pub(super) fn finish_shutdown(&mut self) {
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            notify_close(
                &mut self.core,
                &mut self.app,
                key,
                close::ABNORMAL,
                "server shut down",
            );
            self.remove(key);
        }
        log::info!("shutdown complete");
    }
}

enum Sweep {
    HandshakeTimeout,
    Ping,
    Doom(ConnError),
    Remove,
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
