//! sprocket: a single-threaded, mio-based WebSocket server and library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod bus;
pub mod cidr;
pub mod clients;
pub mod config;
pub mod grip;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod pusher;
pub mod reactor;
pub mod session;
pub mod tls;
pub mod wamp;
pub mod ws;

pub use app::{
    Aggregate, Application, Chat, ConnId, ConnMap, ConnSet, Context, Echo, IpBlocklist, Message,
    OriginCheck, Router, TimerId,
};
pub use config::Config;
pub use http::{Reject, Request};
pub use reactor::{Server, ShutdownHandle};
