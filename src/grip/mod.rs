//! Pushpin's protocols, so that a backend written for Pushpin runs behind
//! sprocket unchanged: WebSocket-over-HTTP (a connection's events POSTed
//! to the backend, its answers applied) and GRIP (the `grip` WebSocket
//! extension's control messages, and publishing to channels). All
//! sans-IO; [`crate::app::GripRoute`] and [`crate::app::GripPublish`]
//! drive them. `docs/grip.md` describes what sprocket does with each.

pub mod control;
pub mod events;
pub mod publish;

/// The content type of WebSocket-over-HTTP bodies.
pub const CONTENT_TYPE: &str = "application/websocket-events";
/// The WebSocket extension a backend names to accept GRIP.
pub const EXTENSION: &str = "grip";
