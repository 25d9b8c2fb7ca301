//! Counters behind `GET /metrics`, rendered in the Prometheus text format.
//! Plain integers owned by the reactor: no atomics, no globals.

use std::collections::BTreeMap;
use std::fmt::Write;

/// What the server counts. Every field is a monotonic counter unless its
/// doc says gauge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// Connections refused at accept because of the connection limit.
    pub connections_over_limit: u64,
    /// PROXY protocol headers read (`--proxy-protocol`).
    pub proxy_headers_ok: u64,
    /// Connections closed for a missing or malformed PROXY header.
    pub proxy_headers_bad: u64,
    /// Requests whose client address came from `Forwarded` /
    /// `X-Forwarded-For` of a trusted proxy.
    pub forwarded_used: u64,
    /// Requests with forwarding headers from a peer that is not a trusted
    /// proxy (the headers were ignored).
    pub forwarded_ignored: u64,
    /// Requests from a trusted proxy carrying the forwarding header that
    /// `--forwarded-header` does not name (that header was ignored).
    pub forwarded_other_ignored: u64,
    /// `accept` failures (EMFILE and the like).
    pub accept_errors: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS connections that failed below HTTP (a bad ClientHello, an
    /// alert from the client, no common version or cipher).
    pub tls_handshake_failures: u64,
    /// Plain-HTTP clients on a TLS port (answered 400).
    pub tls_plain_http: u64,
    /// Opening handshakes that ended in 101.
    pub handshakes_ok: u64,
    /// HTTP answers other than 101, by status (refusals, pages, health).
    pub http_responses: BTreeMap<u16, u64>,
    /// Complete messages received.
    pub messages_in: u64,
    /// Payload bytes of messages received.
    pub message_bytes_in: u64,
    /// Messages queued to clients (a broadcast counts once per recipient).
    pub messages_out: u64,
    /// Payload bytes of messages queued to clients.
    pub message_bytes_out: u64,
    /// Bytes read from sockets.
    pub socket_bytes_read: u64,
    /// Bytes written to sockets.
    pub socket_bytes_written: u64,
    /// Connections the app saw close, by the code reported to `on_close`.
    pub closes: BTreeMap<u16, u64>,
    /// Connections cut off as slow consumers.
    pub slow_consumers: u64,
    /// Connections dropped because no pong came.
    pub ping_timeouts: u64,
    /// Connections dropped because the close handshake timed out.
    pub close_timeouts: u64,
    /// Opening handshakes that timed out.
    pub handshake_timeouts: u64,
    /// Application callbacks that panicked (contained).
    pub panics: u64,
    /// Timer callbacks run.
    pub timers_fired: u64,
    /// Handshakes and HTTP requests whose app did not decide in time (503).
    pub decision_timeouts: u64,
    /// HTTP requests sent to backends.
    pub http_requests_out: u64,
    /// Backend HTTP requests that got no response (connect, timeout, ...).
    pub http_request_errors: u64,
    /// Redis commands sent.
    pub redis_commands: u64,
    /// Redis connections lost or refused (each one is retried).
    pub redis_connection_failures: u64,
    /// Redis pub/sub messages received.
    pub redis_messages: u64,
    /// Events published on the in-process bus.
    pub bus_events: u64,
    /// Gaps the Redis bus saw in other processes' numbers.
    pub bus_gaps: u64,
    /// Events lost in those gaps.
    pub bus_missed: u64,
    /// What apps count by outcome ([`Metrics::count`]): family → outcome
    /// → count, e.g. `session_reads` → `timeout`.
    pub outcomes: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// The help line of each family apps count, as `/metrics` shows it.
fn family_help(family: &str) -> &'static str {
    match family {
        "session_reads" => {
            "PHP session reads by outcome (ok, no_cookie, not_found, malformed, locked, timeout, unavailable)."
        }
        "session_writes" => {
            "PHP session writes by outcome (ok, not_found, malformed, unwritable, locked, timeout, unavailable)."
        }
        "push_http" => "Pushes to POST /publish by outcome.",
        "push_redis" => "Pushes from the Redis push channel by outcome.",
        "push_zmq" => "Pushes over ZeroMQ by outcome.",
        "zmq_peers" => {
            "ZeroMQ PUSH peers accepted, refused, and closed (gone after a clean start)."
        }
        "zmq_messages" => "ZeroMQ messages received, and those no app took.",
        "backend_auth" => "Connect authorisation by the backend, by outcome.",
        "backend_rpc" => "WAMP calls forwarded to the RPC backend, by outcome.",
        "backend_subscribe" => "WAMP subscriptions asked of the backend, by outcome.",
        "bus_publishes" => {
            "Events sent to the Redis bus: ok, retried (lost with its connection, sent again), failed (Redis did not take it: other processes miss it), too_large."
        }
        "bus_messages" => {
            "Messages from the Redis bus: delivered, own, duplicate, not_wanted, malformed, foreign."
        }
        "bus_probes" => {
            "Liveness probes of the Redis bus: ok, timeout (the pub/sub connection was replaced)."
        }
        "bus_redis" => "Redis restarts the bus noticed (a new run_id).",
        "bus_repairs" => {
            "Reads of durable topics' streams to repair what this process missed: ok, failed."
        }
        "bus_lost" => "Durable topics whose stream was lost (a new epoch) or could not be read.",
        "bus_outages" => {
            "Returns of the bus's Redis subscription after an outage, announced to subscribers."
        }
        "pusher_connections" => {
            "Pusher connections: ok, unknown_app (4001), bad_protocol (4006-4008)."
        }
        "pusher_subscriptions" => "Pusher channel subscriptions: ok, refused.",
        "pusher_client_events" => "Pusher client events: ok, refused.",
        "pusher_signins" => "Pusher user sign-ins: ok, refused.",
        "pusher_api" => "Pusher HTTP API requests: ok, refused, unauthorized.",
        "pusher_events" => "Pusher events triggered through the HTTP API, per channel.",
        "pusher_cache" => "Pusher cache channel subscriptions that found no event.",
        "pusher_pong_timeouts" => "Pusher connections closed with 4201 for a missed pong.",
        "pusher_messages" => "Pusher client messages that were not valid.",
        "pusher_webhooks" => {
            "Pusher webhook requests: ok, retried, dropped (after 5 minutes of failures, or too many out)."
        }
        "wamp2_sessions" => "WAMP v2 sessions that joined a realm.",
        "wamp2_aborts" => {
            "WAMP v2 sessions aborted: protocol_violation, other (no such realm ...)."
        }
        "wamp2_messages" => "WAMP v2 messages that could not be decoded.",
        "wamp2_subscriptions" => "WAMP v2 subscriptions: ok, refused.",
        "wamp2_publishes" => "WAMP v2 publishes: ok, refused.",
        "wamp2_registrations" => "WAMP v2 registrations: ok, refused.",
        "wamp2_calls" => {
            "WAMP v2 calls: routed (to a callee), app (to the route's procedures or the RPC backend), meta, refused, timeout."
        }
        "wamp2_cancels" => "WAMP v2 call cancels by mode: skip, kill, killnowait.",
        _ => "Application events by outcome.",
    }
}

/// Gauges read at render time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Connections held, any phase.
    pub connections: usize,
    /// Connections open as WebSockets.
    pub websockets: usize,
    /// Pending application timers.
    pub timers: usize,
    /// Topics with bus subscribers.
    pub bus_topics: usize,
    /// Redis channels the bus subscribes to or lingers on.
    pub bus_channels: usize,
    /// With the Redis bus: whether its subscription is up.
    pub bus_up: Option<bool>,
    /// (origin, topic) pairs the bus's tracker forgot to make room.
    pub bus_evicted: u64,
}

impl Metrics {
    /// Counts one `outcome` of `family` (rendered as
    /// `sprocket_<family>_total{outcome="…"}`).
    pub fn count(&mut self, family: &'static str, outcome: &'static str) {
        *self
            .outcomes
            .entry(family)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }

    /// Counts one more under `key`.
    pub fn bump(map: &mut BTreeMap<u16, u64>, key: u16) {
        *map.entry(key).or_default() += 1;
    }

    /// The Prometheus text exposition (version 0.0.4) of everything.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP sprocket_{name} {help}\n# TYPE sprocket_{name} {kind}\nsprocket_{name} {value}"
            );
        };
        one(
            "connections",
            "gauge",
            "Connections held, in any phase.",
            gauges.connections as u64,
        );
        one(
            "websockets_open",
            "gauge",
            "Connections open as WebSockets.",
            gauges.websockets as u64,
        );
        one(
            "timers",
            "gauge",
            "Pending application timers.",
            gauges.timers as u64,
        );
        one(
            "bus_topics",
            "gauge",
            "Topics some app subscribed to on the in-process bus.",
            gauges.bus_topics as u64,
        );
        one(
            "bus_channels",
            "gauge",
            "Topic channels the Redis bus subscribes to (or lingers on after the last subscriber left).",
            gauges.bus_channels as u64,
        );
        one(
            "bus_tracker_evicted_total",
            "counter",
            "Publisher/topic pairs the Redis bus stopped tracking to stay within its bound (their next gap goes unseen).",
            gauges.bus_evicted,
        );
        if let Some(up) = gauges.bus_up {
            one(
                "bus_up",
                "gauge",
                "1 while the Redis bus's subscription is up (other processes' events arrive), else 0.",
                u64::from(up),
            );
        }
        one(
            "connections_accepted_total",
            "counter",
            "TCP connections accepted.",
            self.connections_accepted,
        );
        one(
            "connections_over_limit_total",
            "counter",
            "Connections refused with 503 at the connection limit.",
            self.connections_over_limit,
        );
        one(
            "tls_handshakes_total",
            "counter",
            "TLS handshakes completed.",
            self.tls_handshakes,
        );
        one(
            "tls_handshake_failures_total",
            "counter",
            "TLS connections that failed in the handshake or a record (the alert was sent).",
            self.tls_handshake_failures,
        );
        one(
            "tls_plain_http_total",
            "counter",
            "Plain-HTTP requests on a TLS port, answered 400.",
            self.tls_plain_http,
        );
        one(
            "proxy_headers_ok_total",
            "counter",
            "PROXY protocol headers read.",
            self.proxy_headers_ok,
        );
        one(
            "proxy_headers_bad_total",
            "counter",
            "Connections closed for a missing or malformed PROXY protocol header.",
            self.proxy_headers_bad,
        );
        one(
            "forwarded_used_total",
            "counter",
            "Requests whose client address came from a trusted proxy's Forwarded or X-Forwarded-For.",
            self.forwarded_used,
        );
        one(
            "forwarded_ignored_total",
            "counter",
            "Requests with forwarding headers from an untrusted peer (ignored).",
            self.forwarded_ignored,
        );
        one(
            "forwarded_other_header_ignored_total",
            "counter",
            "Requests from a trusted proxy with the forwarding header --forwarded-header does not name (ignored).",
            self.forwarded_other_ignored,
        );
        one(
            "accept_errors_total",
            "counter",
            "Failed accept calls (e.g. EMFILE).",
            self.accept_errors,
        );
        one(
            "handshakes_total",
            "counter",
            "Opening handshakes answered with 101.",
            self.handshakes_ok,
        );
        one(
            "messages_received_total",
            "counter",
            "Complete messages received.",
            self.messages_in,
        );
        one(
            "message_bytes_received_total",
            "counter",
            "Payload bytes of messages received.",
            self.message_bytes_in,
        );
        one(
            "messages_sent_total",
            "counter",
            "Messages queued to clients (per recipient).",
            self.messages_out,
        );
        one(
            "message_bytes_sent_total",
            "counter",
            "Payload bytes of messages queued to clients.",
            self.message_bytes_out,
        );
        one(
            "socket_bytes_read_total",
            "counter",
            "Bytes read from client sockets.",
            self.socket_bytes_read,
        );
        one(
            "socket_bytes_written_total",
            "counter",
            "Bytes written to client sockets.",
            self.socket_bytes_written,
        );
        one(
            "slow_consumers_total",
            "counter",
            "Connections cut off for exceeding the outbound buffer limit.",
            self.slow_consumers,
        );
        one(
            "ping_timeouts_total",
            "counter",
            "Connections dropped because no pong came.",
            self.ping_timeouts,
        );
        one(
            "close_timeouts_total",
            "counter",
            "Connections dropped because the close handshake timed out.",
            self.close_timeouts,
        );
        one(
            "handshake_timeouts_total",
            "counter",
            "Opening handshakes that timed out.",
            self.handshake_timeouts,
        );
        one(
            "panics_total",
            "counter",
            "Application callbacks that panicked (contained).",
            self.panics,
        );
        one(
            "timers_fired_total",
            "counter",
            "Timer callbacks run.",
            self.timers_fired,
        );
        one(
            "decision_timeouts_total",
            "counter",
            "Handshakes and HTTP requests whose app did not decide in time (503).",
            self.decision_timeouts,
        );
        one(
            "backend_http_requests_total",
            "counter",
            "HTTP requests sent to backends.",
            self.http_requests_out,
        );
        one(
            "backend_http_errors_total",
            "counter",
            "Backend HTTP requests that got no response (connect, timeout, bad response).",
            self.http_request_errors,
        );
        one(
            "redis_commands_total",
            "counter",
            "Redis commands sent.",
            self.redis_commands,
        );
        one(
            "redis_connection_failures_total",
            "counter",
            "Redis connections lost or refused (each one is retried with back-off).",
            self.redis_connection_failures,
        );
        one(
            "redis_messages_total",
            "counter",
            "Redis pub/sub messages received.",
            self.redis_messages,
        );
        one(
            "bus_events_total",
            "counter",
            "Events delivered through the topic bus (published here or, with the Redis bus, by other processes).",
            self.bus_events,
        );
        one(
            "bus_gaps_total",
            "counter",
            "Gaps the Redis bus saw in another process's event numbers on a topic.",
            self.bus_gaps,
        );
        one(
            "bus_missed_total",
            "counter",
            "Events of other processes lost in those gaps.",
            self.bus_missed,
        );
        let mut labelled = |name: &str, help: &str, label: &str, map: &BTreeMap<u16, u64>| {
            let _ = writeln!(
                out,
                "# HELP sprocket_{name} {help}\n# TYPE sprocket_{name} counter"
            );
            for (k, v) in map {
                let _ = writeln!(out, "sprocket_{name}{{{label}=\"{k}\"}} {v}");
            }
        };
        labelled(
            "http_responses_total",
            "Plain HTTP answers (refusals, pages, health) by status.",
            "status",
            &self.http_responses,
        );
        labelled(
            "closes_total",
            "Closed WebSocket connections by close code.",
            "code",
            &self.closes,
        );
        for (family, outcomes) in &self.outcomes {
            let _ = writeln!(
                out,
                "# HELP sprocket_{family}_total {}\n# TYPE sprocket_{family}_total counter",
                family_help(family)
            );
            for (outcome, n) in outcomes {
                let _ = writeln!(out, "sprocket_{family}_total{{outcome=\"{outcome}\"}} {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut m = Metrics {
            messages_in: 7,
            ..Metrics::default()
        };
        Metrics::bump(&mut m.closes, 1000);
        Metrics::bump(&mut m.closes, 1000);
        Metrics::bump(&mut m.http_responses, 404);
        m.count("session_reads", "ok");
        m.count("session_reads", "ok");
        m.count("session_reads", "timeout");
        let text = m.render(Gauges {
            connections: 3,
            websockets: 2,
            timers: 1,
            bus_topics: 4,
            bus_channels: 2,
            bus_up: Some(false),
            bus_evicted: 0,
        });
        assert!(text.contains(
            "# TYPE sprocket_messages_received_total counter\nsprocket_messages_received_total 7\n"
        ));
        assert!(text.contains("sprocket_closes_total{code=\"1000\"} 2\n"));
        assert!(text.contains("sprocket_http_responses_total{status=\"404\"} 1\n"));
        assert!(text.contains("sprocket_websockets_open 2\n"));
        assert!(text.contains("sprocket_bus_topics 4\n"));
        assert!(text.contains("sprocket_bus_channels 2\n"));
        assert!(text.contains("sprocket_bus_up 0\n"));
        assert!(text.contains(
            "# TYPE sprocket_session_reads_total counter\nsprocket_session_reads_total{outcome=\"ok\"} 2\nsprocket_session_reads_total{outcome=\"timeout\"} 1\n"
        ));
        // Every sample line is `name{labels} value` with a numeric value.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }
}
