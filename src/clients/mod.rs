//! Sans-IO codecs for what the reactor dials or accepts beside WebSocket.
//!
//! Nothing here opens a socket, reads a clock, blocks or draws a random
//! number: each module takes bytes (and `now`, and randomness, where it
//! needs them) and hands back events, the bytes to write and the next
//! deadline. The reactor owns the sockets and drives these state machines
//! from its one thread, the same way it drives [`crate::ws`].
//!
//! - [`resp`]: the RESP2 wire format (Redis replies in, commands out).
//! - [`redis`]: one Redis connection's protocol state: pipelined commands or
//!   pub/sub, AUTH/SELECT on connect, re-subscription after an outage, and the
//!   reconnect back-off.
//! - [`http`]: an HTTP/1.1 client connection (requests out, responses in,
//!   keep-alive, timeouts, limits) and the per-origin pool policy.
//! - [`zmtp`]: ZMTP 3.x (ZeroMQ) for the accepting PULL side of PUSH/PULL:
//!   greeting, NULL handshake, multi-part messages, PING/PONG, limits.

pub mod http;
pub mod redis;
pub mod resp;
pub mod zmtp;
