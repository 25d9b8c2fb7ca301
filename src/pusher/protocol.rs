//! The WebSocket messages of protocol 7: JSON objects with `event`, `data`
//! and, for channel events, `channel`.
//!
//! A client sends `data` as an object; the server sends the `data` of its
//! own events (`pusher:*`, `pusher_internal:*`) as a string holding JSON,
//! as the protocol has it, and the data of app events as the string the
//! app triggered with.

use serde_json::{Map, Value, json};
use std::fmt;

/// What a client sent.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    /// `pusher:ping`: answer `pusher:pong`.
    Ping,
    /// `pusher:pong`, the answer to our ping.
    Pong,
    /// `pusher:subscribe`.
    Subscribe {
        /// The channel.
        channel: String,
        /// `key:signature` for channels that need it.
        auth: Option<String>,
        /// Presence: the member's JSON (`user_id`, `user_info`), as
        /// signed.
        channel_data: Option<String>,
    },
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
    /// `pusher:signin`: user authentication.
    Signin {
        /// `key:signature`.
        auth: String,
        /// The user's JSON (`id` and more), as signed.
        user_data: String,
    },
    /// A `client-*` event for the other subscribers of `channel`.
    ClientEvent {
        /// The event name, `client-` included.
        event: String,
        /// The channel.
        channel: String,
        /// The payload, as sent.
        data: Value,
    },
    /// Any other event: ignored by the protocol.
    Other {
        /// Its name.
        event: String,
    },
}

/// Why a client's message is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object.
    NotJson,
    /// No `event` string.
    NoEvent,
    /// A field the event needs is absent or of the wrong type.
    Field {
        /// The event.
        event: &'static str,
        /// The field.
        field: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotJson => f.write_str("the message is not a JSON object"),
            DecodeError::NoEvent => f.write_str("the message has no event name"),
            DecodeError::Field { event, field } => {
                write!(f, "{event} needs {field} as a string")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `data` as an object: given as one, or (older clients) as a string
/// holding one.
fn data_object(msg: &Map<String, Value>) -> Map<String, Value> {
    match msg.get("data") {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

impl ClientMessage {
    /// Decodes one text message.
    pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            return Err(DecodeError::NotJson);
        };
        let event = msg
            .get("event")
            .and_then(Value::as_str)
            .ok_or(DecodeError::NoEvent)?;
        let need = |map: &Map<String, Value>, event: &'static str, field: &'static str| {
            string(map, field).ok_or(DecodeError::Field { event, field })
        };
        Ok(match event {
            "pusher:ping" => ClientMessage::Ping,
            "pusher:pong" => ClientMessage::Pong,
            "pusher:subscribe" => {
                let data = data_object(&msg);
                ClientMessage::Subscribe {
                    channel: need(&data, "pusher:subscribe", "channel")?,
                    auth: string(&data, "auth"),
                    channel_data: string(&data, "channel_data"),
                }
            }
            "pusher:unsubscribe" => ClientMessage::Unsubscribe {
                channel: need(&data_object(&msg), "pusher:unsubscribe", "channel")?,
            },
            "pusher:signin" => {
                let data = data_object(&msg);
                ClientMessage::Signin {
                    auth: need(&data, "pusher:signin", "auth")?,
                    user_data: need(&data, "pusher:signin", "user_data")?,
                }
            }
            e if e.starts_with("client-") => ClientMessage::ClientEvent {
                event: e.to_owned(),
                channel: need(&msg, "client event", "channel")?,
                data: msg.get("data").cloned().unwrap_or(Value::Null),
            },
            e => ClientMessage::Other {
                event: e.to_owned(),
            },
        })
    }
}

/// A presence member, from a subscription's `channel_data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// `user_id`, a string or a number given as its decimal text.
    pub user_id: String,
    /// `user_info`, any JSON (null when absent).
    pub user_info: Value,
}

impl Member {
    /// Parses `channel_data`.
    pub fn parse(channel_data: &str) -> Result<Member, &'static str> {
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(channel_data) else {
            return Err("channel_data is not a JSON object");
        };
        let user_id = match map.get("user_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err("channel_data has no user_id (a string or a number)"),
        };
        Ok(Member {
            user_id,
            user_info: map.get("user_info").cloned().unwrap_or(Value::Null),
        })
    }
}

/// The `id` of a sign-in's `user_data`.
pub fn signed_in_user(user_data: &str) -> Result<String, &'static str> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(user_data) else {
        return Err("user_data is not a JSON object");
    };
    match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err("user_data has no id"),
    }
}

/// Whether `text` is a socket id as the protocol writes them
/// (`^\d+\.\d+$`).
pub fn is_socket_id(text: &str) -> bool {
    text.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// A server event on no channel, `data` sent as a JSON string.
fn event(name: &str, data: &Value) -> String {
    json!({"event": name, "data": data.to_string()}).to_string()
}

/// A server event on `channel` whose `data` is the string `data`.
fn channel_event(name: &str, channel: &str, data: &str) -> String {
    json!({"event": name, "channel": channel, "data": data}).to_string()
}

/// `pusher:connection_established`.
pub fn connection_established(socket_id: &str, activity_timeout: u64) -> String {
    event(
        "pusher:connection_established",
        &json!({"socket_id": socket_id, "activity_timeout": activity_timeout}),
    )
}

/// `pusher:error` with a code (`None`: a report that closes nothing).
pub fn error(code: Option<u16>, message: &str) -> String {
    json!({"event": "pusher:error", "data": {"code": code, "message": message}}).to_string()
}

/// `pusher:ping`.
pub fn ping() -> String {
    event("pusher:ping", &json!({}))
}

/// `pusher:pong`.
pub fn pong() -> String {
    event("pusher:pong", &json!({}))
}

/// `pusher_internal:subscription_succeeded`, for a channel that is not a
/// presence channel.
pub fn subscription_succeeded(channel: &str) -> String {
    channel_event("pusher_internal:subscription_succeeded", channel, "{}")
}

/// `pusher_internal:subscription_succeeded` of a presence channel: its
/// members (`ids` in order, `hash` id → info, `count`).
pub fn presence_succeeded<'a>(
    channel: &str,
    members: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> String {
    let mut ids = Vec::new();
    let mut hash = Map::new();
    for (id, info) in members {
        ids.push(Value::String(id.to_owned()));
        hash.insert(id.to_owned(), info.clone());
    }
    let data = json!({"presence": {"count": ids.len(), "ids": ids, "hash": hash}});
    channel_event(
        "pusher_internal:subscription_succeeded",
        channel,
        &data.to_string(),
    )
}

/// `pusher:subscription_error`: what `.error()` of Laravel Echo and
/// pusher-js's `subscription_error` binding receive.
pub fn subscription_error(channel: &str, kind: &str, message: &str, status: u16) -> String {
    json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": kind, "error": message, "status": status},
    })
    .to_string()
}

/// `pusher_internal:member_added`.
pub fn member_added(channel: &str, user_id: &str, user_info: &Value) -> String {
    let data = json!({"user_id": user_id, "user_info": user_info});
    channel_event("pusher_internal:member_added", channel, &data.to_string())
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    let data = json!({"user_id": user_id});
    channel_event("pusher_internal:member_removed", channel, &data.to_string())
}

/// An app event (from the HTTP API) on `channel`, `data` as triggered.
pub fn channel_message(channel: &str, name: &str, data: &str) -> String {
    channel_event(name, channel, data)
}

/// A client event passed on to the other subscribers, with the sender's
/// `user_id` on presence channels.
pub fn client_event(channel: &str, name: &str, data: &Value, user_id: Option<&str>) -> String {
    let mut msg = json!({"event": name, "channel": channel, "data": data});
    if let Some(user) = user_id {
        msg["user_id"] = Value::String(user.to_owned());
    }
    msg.to_string()
}

/// `pusher:cache_miss`: a cache channel has no event to replay.
pub fn cache_miss(channel: &str) -> String {
    json!({"event": "pusher:cache_miss", "channel": channel}).to_string()
}

/// `pusher:signin_success`.
pub fn signin_success(user_data: &str) -> String {
    event("pusher:signin_success", &json!({"user_data": user_data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_pusher_js_sends() {
        assert_eq!(
            ClientMessage::decode(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::decode(
                r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel":"private-a"}}"#
            ),
            Ok(ClientMessage::Subscribe {
                channel: "private-a".into(),
                auth: Some("k:s".into()),
                channel_data: None,
            })
        );
        assert_eq!(
            ClientMessage::decode(
                r#"{"event":"pusher:subscribe","data":{"channel":"presence-r","auth":"k:s","channel_data":"{\"user_id\":1}"}}"#
            ),
            Ok(ClientMessage::Subscribe {
                channel: "presence-r".into(),
                auth: Some("k:s".into()),
                channel_data: Some(r#"{"user_id":1}"#.into()),
            })
        );
        // An older client's data as a JSON string.
        assert_eq!(
            ClientMessage::decode(r#"{"event":"pusher:unsubscribe","data":"{\"channel\":\"x\"}"}"#),
            Ok(ClientMessage::Unsubscribe {
                channel: "x".into()
            })
        );
        assert_eq!(
            ClientMessage::decode(
                r#"{"event":"client-typing","channel":"private-c","data":{"name":"Ann"}}"#
            ),
            Ok(ClientMessage::ClientEvent {
                event: "client-typing".into(),
                channel: "private-c".into(),
                data: json!({"name": "Ann"}),
            })
        );
        assert_eq!(
            ClientMessage::decode(
                r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"1\"}"}}"#
            ),
            Ok(ClientMessage::Signin {
                auth: "k:s".into(),
                user_data: r#"{"id":"1"}"#.into()
            })
        );
        assert_eq!(
            ClientMessage::decode(r#"{"event":"whatever"}"#),
            Ok(ClientMessage::Other {
                event: "whatever".into()
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        for (text, want) in [
            ("", DecodeError::NotJson),
            ("[1]", DecodeError::NotJson),
            ("{\"event\":1}", DecodeError::NoEvent),
            ("{}", DecodeError::NoEvent),
            (
                r#"{"event":"pusher:subscribe","data":{}}"#,
                DecodeError::Field {
                    event: "pusher:subscribe",
                    field: "channel",
                },
            ),
            (
                r#"{"event":"client-x","data":{}}"#,
                DecodeError::Field {
                    event: "client event",
                    field: "channel",
                },
            ),
            (
                r#"{"event":"pusher:signin","data":{"auth":"a"}}"#,
                DecodeError::Field {
                    event: "pusher:signin",
                    field: "user_data",
                },
            ),
        ] {
            assert_eq!(ClientMessage::decode(text), Err(want), "{text}");
        }
    }

    #[test]
    fn server_events_carry_data_as_a_json_string() {
        let m: Value = serde_json::from_str(&connection_established("12.34", 120)).unwrap();
        assert_eq!(m["event"], "pusher:connection_established");
        let data: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, json!({"socket_id": "12.34", "activity_timeout": 120}));

        let info = json!({"name": "Ann"});
        let m: Value =
            serde_json::from_str(&presence_succeeded("presence-r", [("7", &info)])).unwrap();
        let data: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"presence": {"count": 1, "ids": ["7"], "hash": {"7": {"name": "Ann"}}}})
        );
        let m: Value =
            serde_json::from_str(&subscription_error("private-a", "AuthError", "no", 401)).unwrap();
        assert_eq!(m["data"]["status"], 401);
        assert_eq!(m["channel"], "private-a");
        let m: Value = serde_json::from_str(&client_event(
            "presence-r",
            "client-x",
            &json!(1),
            Some("7"),
        ))
        .unwrap();
        assert_eq!(m["user_id"], "7");
        let m: Value = serde_json::from_str(&channel_message("a", "e", "{\"x\":1}")).unwrap();
        assert_eq!(m["data"], "{\"x\":1}");
    }

    #[test]
    fn members_and_users() {
        assert_eq!(
            Member::parse(r#"{"user_id":10,"user_info":{"n":1}}"#),
            Ok(Member {
                user_id: "10".into(),
                user_info: json!({"n": 1})
            })
        );
        assert_eq!(
            Member::parse(r#"{"user_id":"u"}"#).map(|m| m.user_info),
            Ok(Value::Null)
        );
        assert!(Member::parse(r#"{"user_id":""}"#).is_err());
        assert!(Member::parse(r#"{"user_info":{}}"#).is_err());
        assert!(Member::parse("7").is_err());
        assert_eq!(signed_in_user(r#"{"id":3}"#), Ok("3".into()));
        assert!(signed_in_user(r#"{"name":3}"#).is_err());
    }

    #[test]
    fn socket_ids() {
        assert!(is_socket_id("123.456"));
        for bad in ["", ".", "1.", ".1", "1.2.3", "a.1", "1,2", "-1.2"] {
            assert!(!is_socket_id(bad), "{bad}");
        }
    }
}
