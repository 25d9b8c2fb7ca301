//! Sans-IO codecs for what the reactor dials beside WebSocket.
//!
//! Nothing in this layer owns a socket, reads a clock or blocks: each codec
//! takes the bytes the reactor read (and `now`, where time matters) and hands
//! back the bytes to write, the next deadline and what was decoded. The
//! reactor owns the sockets and drives these state machines from its one
//! thread.

pub mod http;
