//! The Pusher Channels protocol (version 7), sans-IO: what Laravel Echo,
//! pusher-js and the Pusher server SDKs speak.
//!
//! - [`protocol`]: the JSON messages on the WebSocket, both ways.
//! - [`channel`]: channel names, their kinds (public, private, encrypted,
//!   presence, each with a cache variant) and the limits on them.
//! - [`auth`]: the HMAC-SHA256 signatures of channel authorisation, user
//!   sign-in, the HTTP API and webhooks, checked in constant time.
//! - [`api`]: the bodies of the HTTP API's event triggers.
//! - [`cluster`]: what processes sharing apps through Redis keep there,
//!   the Lua scripts that change and read it, and their replies.
//!
//! Nothing here does I/O or keeps connection state; the application that
//! serves `/app/{key}` (and the HTTP API) builds on these.

pub mod api;
pub mod auth;
pub mod channel;
pub mod cluster;
pub mod protocol;

/// The error codes a server closes with or reports in `pusher:error`, and
/// what each tells a client to do: 4000-4099 do not reconnect, 4100-4199
/// reconnect after a back-off, 4200-4299 reconnect at once, 4300-4399 are
/// reports on one message.
pub mod code {
    /// The application does not exist (unknown key).
    pub const APP_UNKNOWN: u16 = 4001;
    /// The application is disabled.
    pub const APP_DISABLED: u16 = 4003;
    /// The application is over its connection quota.
    pub const OVER_QUOTA: u16 = 4004;
    /// The path is not `/app/{key}`.
    pub const PATH_NOT_FOUND: u16 = 4005;
    /// The `protocol` query parameter is not a number.
    pub const INVALID_VERSION: u16 = 4006;
    /// The protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// No protocol version was given.
    pub const NO_PROTOCOL: u16 = 4008;
    /// The connection is not authorised (origin, or a terminated user).
    pub const UNAUTHORIZED: u16 = 4009;
    /// Over capacity: try again later.
    pub const OVER_CAPACITY: u16 = 4100;
    /// A generic reason to reconnect at once.
    pub const RECONNECT: u16 = 4200;
    /// No pong answered a ping in time.
    pub const PONG_TIMEOUT: u16 = 4201;
    /// Closed after inactivity.
    pub const INACTIVE: u16 = 4202;
    /// A client event was refused for its rate.
    pub const CLIENT_EVENT_RATE: u16 = 4301;
}

/// The protocol version served.
pub const PROTOCOL: u32 = 7;
