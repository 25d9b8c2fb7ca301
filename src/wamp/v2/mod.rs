//! WAMP v2 — the Web Application Messaging Protocol as today's clients
//! (AutobahnJS, Autobahn|Python, Crossbar) speak it, over the
//! subprotocols `wamp.2.json` and `wamp.2.msgpack`.
//!
//! [`Message`] is every message of the basic profile plus the advanced
//! profile's CANCEL and INTERRUPT, with the payload as JSON values
//! whatever the serializer (msgpack's binary strings become the JSON
//! serializer's `"\0" + base64` strings, and back). [`codec`] turns bytes
//! into messages and back, without I/O; [`uri`] checks URIs.

pub mod codec;
pub mod uri;

use serde_json::{Map, Value};

/// A WAMP id: a session, request, subscription, registration or
/// publication id, in `1..=2^53`.
pub type Id = u64;
/// A WAMP dictionary (`details`, `options`, `kwargs`).
pub type Dict = Map<String, Value>;
/// A WAMP list (`args`).
pub type List = Vec<Value>;

/// The largest id (2^53: ids must fit a double exactly).
pub const MAX_ID: Id = 1 << 53;

/// Message type codes.
pub mod code {
    #![allow(missing_docs)] // each is the message its name says
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
}

/// Which serialization a session speaks, from its subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `wamp.2.json`: text frames.
    Json,
    /// `wamp.2.msgpack`: binary frames.
    MsgPack,
}

impl Serializer {
    /// The subprotocol naming this serializer.
    pub fn protocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
        }
    }

    /// The serializer a subprotocol names, if it is a WAMP v2 one.
    pub fn from_protocol(protocol: &str) -> Option<Serializer> {
        match protocol {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            _ => None,
        }
    }

    /// Whether this serializer's messages go in binary frames.
    pub fn is_binary(self) -> bool {
        self == Serializer::MsgPack
    }
}

/// One WAMP v2 message. `args` and `kwargs` are `None` when the message
/// left them out; encoding leaves out an empty trailing `kwargs`, and
/// `args` too when both are empty, as the spec asks.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // the fields are the spec's, shown in each variant's doc
pub enum Message {
    /// `[HELLO, Realm|uri, Details|dict]`
    Hello { realm: String, details: Dict },
    /// `[WELCOME, Session|id, Details|dict]`
    Welcome { session: Id, details: Dict },
    /// `[ABORT, Details|dict, Reason|uri]`
    Abort { details: Dict, reason: String },
    /// `[CHALLENGE, AuthMethod|string, Extra|dict]`
    Challenge { method: String, extra: Dict },
    /// `[AUTHENTICATE, Signature|string, Extra|dict]`
    Authenticate { signature: String, extra: Dict },
    /// `[GOODBYE, Details|dict, Reason|uri]`
    Goodbye { details: Dict, reason: String },
    /// `[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict,
    /// Error|uri, Arguments|list, ArgumentsKw|dict]`
    Error {
        request_type: u64,
        request: Id,
        details: Dict,
        error: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    /// `[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list,
    /// ArgumentsKw|dict]`
    Publish {
        request: Id,
        options: Dict,
        topic: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    /// `[PUBLISHED, PUBLISH.Request|id, Publication|id]`
    Published { request: Id, publication: Id },
    /// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`
    Subscribe {
        request: Id,
        options: Dict,
        topic: String,
    },
    /// `[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]`
    Subscribed { request: Id, subscription: Id },
    /// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`
    Unsubscribe { request: Id, subscription: Id },
    /// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]`, or with `Details|dict`
    /// when the router revokes a subscription (request 0).
    Unsubscribed { request: Id, details: Option<Dict> },
    /// `[EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id,
    /// Details|dict, PUBLISH.Arguments|list, PUBLISH.ArgumentsKw|dict]`
    Event {
        subscription: Id,
        publication: Id,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    /// `[CALL, Request|id, Options|dict, Procedure|uri, Arguments|list,
    /// ArgumentsKw|dict]`
    Call {
        request: Id,
        options: Dict,
        procedure: String,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    /// `[CANCEL, CALL.Request|id, Options|dict]`
    Cancel { request: Id, options: Dict },
    /// `[RESULT, CALL.Request|id, Details|dict, YIELD.Arguments|list,
    /// YIELD.ArgumentsKw|dict]`
    Result {
        request: Id,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    /// `[REGISTER, Request|id, Options|dict, Procedure|uri]`
    Register {
        request: Id,
        options: Dict,
        procedure: String,
    },
    /// `[REGISTERED, REGISTER.Request|id, Registration|id]`
    Registered { request: Id, registration: Id },
    /// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`
    Unregister { request: Id, registration: Id },
    /// `[UNREGISTERED, UNREGISTER.Request|id]`, or with `Details|dict`
    /// when the router revokes a registration (request 0).
    Unregistered { request: Id, details: Option<Dict> },
    /// `[INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict,
    /// CALL.Arguments|list, CALL.ArgumentsKw|dict]`
    Invocation {
        request: Id,
        registration: Id,
        details: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
    /// `[INTERRUPT, INVOCATION.Request|id, Options|dict]`
    Interrupt { request: Id, options: Dict },
    /// `[YIELD, INVOCATION.Request|id, Options|dict, Arguments|list,
    /// ArgumentsKw|dict]`
    Yield {
        request: Id,
        options: Dict,
        args: Option<List>,
        kwargs: Option<Dict>,
    },
}

impl Message {
    /// The message's type code.
    pub fn code(&self) -> u64 {
        match self {
            Message::Hello { .. } => code::HELLO,
            Message::Welcome { .. } => code::WELCOME,
            Message::Abort { .. } => code::ABORT,
            Message::Challenge { .. } => code::CHALLENGE,
            Message::Authenticate { .. } => code::AUTHENTICATE,
            Message::Goodbye { .. } => code::GOODBYE,
            Message::Error { .. } => code::ERROR,
            Message::Publish { .. } => code::PUBLISH,
            Message::Published { .. } => code::PUBLISHED,
            Message::Subscribe { .. } => code::SUBSCRIBE,
            Message::Subscribed { .. } => code::SUBSCRIBED,
            Message::Unsubscribe { .. } => code::UNSUBSCRIBE,
            Message::Unsubscribed { .. } => code::UNSUBSCRIBED,
            Message::Event { .. } => code::EVENT,
            Message::Call { .. } => code::CALL,
            Message::Cancel { .. } => code::CANCEL,
            Message::Result { .. } => code::RESULT,
            Message::Register { .. } => code::REGISTER,
            Message::Registered { .. } => code::REGISTERED,
            Message::Unregister { .. } => code::UNREGISTER,
            Message::Unregistered { .. } => code::UNREGISTERED,
            Message::Invocation { .. } => code::INVOCATION,
            Message::Interrupt { .. } => code::INTERRUPT,
            Message::Yield { .. } => code::YIELD,
        }
    }
}
pub mod router;
