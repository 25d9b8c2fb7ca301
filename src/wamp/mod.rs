//! WAMP v1 — RPC and publish/subscribe over WebSocket, as Ratchet's
//! `WampServer` and AutobahnJS 0.8 speak it (subprotocol `wamp`).
//!
//! Where the WAMP v1 spec, Ratchet and AutobahnPython 0.8 disagree,
//! sprocket does what Ratchet does, because it replaces Ratchet:
//! - a PUBLISH without `excludeMe` reaches the publisher too (if
//!   subscribed);
//! - an empty `eligible` list means *everybody*, not nobody.
//!
//! CURIEs expand as the WAMP v1 spec and AutobahnJS define them (prefix URI
//! followed by the rest, e.g. `calc:square` with `calc` =
//! `http://example.com/calc#` is `http://example.com/calc#square`). Ratchet
//! inserts an extra `#`, which breaks with AutobahnJS's own expansion.
//! See `docs/wamp.md`.

mod broker;
pub mod push;
mod server;
pub mod v1;
pub mod v2;

pub use broker::{Broker, CallError, ERROR_BACKEND, ERROR_BUSY, ERROR_NO_SUCH_PROCEDURE, Forward};
pub use server::{
    Call, DEFAULT_REALM, ERROR_INVALID_CALL, MAX_PREFIXES, MAX_SUBSCRIPTIONS, META_GAP,
    META_POSITION, META_PREFIX, Subscribe, WampApp, WampContext, WampServer,
};
