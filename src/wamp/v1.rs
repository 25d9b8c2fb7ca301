//! The WAMP v1 wire format as Ratchet and AutobahnJS 0.8 speak it: JSON
//! arrays whose first element is the message type. Decoding is sans I/O
//! and total: every input gives a message or a [`DecodeError`].

use serde_json::Value;
use std::fmt;

/// Message type ids of WAMP v1.
pub mod type_id {
    /// Server → client, on open.
    pub const WELCOME: u64 = 0;
    /// Client → server: define a CURIE prefix.
    pub const PREFIX: u64 = 1;
    /// Client → server: remote procedure call.
    pub const CALL: u64 = 2;
    /// Server → client: call succeeded.
    pub const CALLRESULT: u64 = 3;
    /// Server → client: call failed.
    pub const CALLERROR: u64 = 4;
    /// Client → server.
    pub const SUBSCRIBE: u64 = 5;
    /// Client → server.
    pub const UNSUBSCRIBE: u64 = 6;
    /// Client → server.
    pub const PUBLISH: u64 = 7;
    /// Server → client.
    pub const EVENT: u64 = 8;
}

/// Longest URI or CURIE accepted (topic, procedure, prefix target).
pub const MAX_URI_LEN: usize = 2048;

/// Who a PUBLISH excludes, as sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Exclude {
    /// No exclusion element, or `false`, or `null` (AutobahnPython 0.8
    /// sends `[7, topic, event, null]` for a plain publish; Ratchet reads
    /// `null` as `false`).
    Nobody,
    /// `excludeMe = true`.
    Me,
    /// Explicit exclude list of session ids, with an eligible list
    /// (`None` when the message had no fifth element).
    Lists {
        /// Session ids that must not receive the event.
        exclude: Vec<String>,
        /// Session ids that may receive it; see [`crate::wamp`] for the
        /// meaning of an empty list.
        eligible: Option<Vec<String>>,
    },
}

/// A message from a client. URIs are as sent (CURIEs not yet expanded).
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// `[1, prefix, uri]`
    Prefix {
        /// The CURIE prefix.
        prefix: String,
        /// What it stands for.
        uri: String,
    },
    /// `[2, callId, procUri, args…]`
    Call {
        /// Client-chosen call id.
        call_id: String,
        /// Procedure URI or CURIE.
        proc_uri: String,
        /// Arguments (possibly none).
        args: Vec<Value>,
    },
    /// `[5, topicUri]`
    Subscribe {
        /// Topic URI or CURIE.
        topic: String,
    },
    /// `[6, topicUri]`
    Unsubscribe {
        /// Topic URI or CURIE.
        topic: String,
    },
    /// `[7, topicUri, event(, excludeMe | , exclude, eligible)]`
    Publish {
        /// Topic URI or CURIE.
        topic: String,
        /// The event payload.
        event: Value,
        /// Exclusions.
        exclude: Exclude,
    },
}

/// What is wrong with a client message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON.
    NotJson,
    /// JSON, but not an array starting with an integer type id.
    NotAMessage,
    /// A type id a client may not send.
    UnknownType(u64),
    /// A CALL that is malformed after its call id: it can be answered
    /// with CALLERROR.
    BadCall {
        /// The call id, to answer.
        call_id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Wrong number or types of elements.
    Malformed {
        /// The message type.
        type_id: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotJson => f.write_str("message is not JSON"),
            DecodeError::NotAMessage => {
                f.write_str("message is not an array starting with a type id")
            }
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::BadCall { reason, .. } => write!(f, "malformed CALL: {reason}"),
            DecodeError::Malformed { type_id, reason } => {
                write!(f, "malformed message of type {type_id}: {reason}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

fn uri(v: Option<&Value>, type_id: u64, what: &'static str) -> Result<String, DecodeError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_URI_LEN => Ok(s.clone()),
        _ => Err(DecodeError::Malformed {
            type_id,
            reason: what,
        }),
    }
}

fn id_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Decodes one text message from a client.
pub fn decode(text: &str) -> Result<Incoming, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|_| DecodeError::NotJson)?;
    let Value::Array(items) = value else {
        return Err(DecodeError::NotAMessage);
    };
    let type_id = items
        .first()
        .and_then(Value::as_u64)
        .ok_or(DecodeError::NotAMessage)?;
    let arity = |n: usize| items.len() == n;
    let bad = |reason| DecodeError::Malformed { type_id, reason };
    match type_id {
        type_id::PREFIX => {
            if !arity(3) {
                return Err(bad("PREFIX takes [1, prefix, uri]"));
            }
            let prefix = uri(items.get(1), type_id, "prefix must be a non-empty string")?;
            if prefix.contains(':') {
                return Err(bad("prefix must not contain ':'"));
            }
            let uri = uri(
                items.get(2),
                type_id,
                "prefix URI must be a non-empty string of at most 2048 bytes",
            )?;
            Ok(Incoming::Prefix { prefix, uri })
        }
        type_id::CALL => {
            let call_id = match items.get(1) {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_URI_LEN => s.clone(),
                _ => return Err(bad("CALL needs a string call id")),
            };
            let proc_uri = match items.get(2) {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_URI_LEN => s.clone(),
                _ => {
                    return Err(DecodeError::BadCall {
                        call_id,
                        reason: "procedure URI must be a non-empty string of at most 2048 bytes",
                    });
                }
            };
            let args = items.into_iter().skip(3).collect();
            Ok(Incoming::Call {
                call_id,
                proc_uri,
                args,
            })
        }
        type_id::SUBSCRIBE | type_id::UNSUBSCRIBE => {
            if !arity(2) {
                return Err(bad("takes [type, topicUri]"));
            }
            let topic = uri(
                items.get(1),
                type_id,
                "topic URI must be a non-empty string of at most 2048 bytes",
            )?;
            Ok(if type_id == type_id::SUBSCRIBE {
                Incoming::Subscribe { topic }
            } else {
                Incoming::Unsubscribe { topic }
            })
        }
        type_id::PUBLISH => {
            if !(3..=5).contains(&items.len()) {
                return Err(bad("PUBLISH takes 3 to 5 elements"));
            }
            let topic = uri(
                items.get(1),
                type_id,
                "topic URI must be a non-empty string of at most 2048 bytes",
            )?;
            let exclude = match (items.get(3), items.get(4)) {
                (None, _) | (Some(Value::Bool(false) | Value::Null), None) => Exclude::Nobody,
                (Some(Value::Bool(true)), None) => Exclude::Me,
                (Some(ex), el) => Exclude::Lists {
                    exclude: id_list(ex)
                        .ok_or(bad("exclude must be a boolean or a list of session ids"))?,
                    eligible: match el {
                        None => None,
                        Some(el) => {
                            Some(id_list(el).ok_or(bad("eligible must be a list of session ids"))?)
                        }
                    },
                },
            };
            let mut items = items;
            let event = items.swap_remove(2);
            Ok(Incoming::Publish {
                topic,
                event,
                exclude,
            })
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

/// `[0, sessionId, 1, serverIdent]`
pub fn welcome(session_id: &str, server_ident: &str) -> String {
    Value::from(vec![
        Value::from(type_id::WELCOME),
        Value::from(session_id),
        Value::from(1),
        Value::from(server_ident),
    ])
    .to_string()
}

/// `[3, callId, result]`
pub fn call_result(call_id: &str, result: &Value) -> String {
    format!("[3,{},{}]", Value::from(call_id), result)
}

/// `[4, callId, errorUri, errorDesc(, errorDetails)]`
pub fn call_error(call_id: &str, error_uri: &str, desc: &str, details: Option<&Value>) -> String {
    let head = format!(
        "[4,{},{},{}",
        Value::from(call_id),
        Value::from(error_uri),
        Value::from(desc)
    );
    match details {
        Some(d) => format!("{head},{d}]"),
        None => format!("{head}]"),
    }
}

/// `[8, topicUri, event]`
pub fn event(topic: &str, event: &Value) -> String {
    format!("[8,{},{}]", Value::from(topic), event)
}

/// EVENT with a payload that is already JSON text (from the bus).
pub fn event_raw(topic: &str, event_json: &str) -> String {
    format!("[8,{},{event_json}]", Value::from(topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_every_client_message() {
        assert_eq!(
            decode(r#"[1,"calc","http://example.com/simple/calc#"]"#),
            Ok(Incoming::Prefix {
                prefix: "calc".into(),
                uri: "http://example.com/simple/calc#".into()
            })
        );
        assert_eq!(
            decode(r#"[2,"7DK6TdN4wLiUJgNM","calc:square",23]"#),
            Ok(Incoming::Call {
                call_id: "7DK6TdN4wLiUJgNM".into(),
                proc_uri: "calc:square".into(),
                args: vec![json!(23)]
            })
        );
        assert_eq!(
            decode(r#"[2,"id","http://x/none"]"#),
            Ok(Incoming::Call {
                call_id: "id".into(),
                proc_uri: "http://x/none".into(),
                args: vec![]
            })
        );
        assert_eq!(
            decode(r#"[5,"event:a"]"#),
            Ok(Incoming::Subscribe {
                topic: "event:a".into()
            })
        );
        assert_eq!(
            decode(r#"[6,"event:a"]"#),
            Ok(Incoming::Unsubscribe {
                topic: "event:a".into()
            })
        );
        let publish = |s| match decode(s) {
            Ok(Incoming::Publish { exclude, event, .. }) => (event, exclude),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            publish(r#"[7,"t",{"a":1}]"#),
            (json!({"a":1}), Exclude::Nobody)
        );
        assert_eq!(publish(r#"[7,"t","x",true]"#).1, Exclude::Me);
        assert_eq!(publish(r#"[7,"t","x",false]"#).1, Exclude::Nobody);
        // AutobahnPython 0.8's plain publish().
        assert_eq!(publish(r#"[7,"t","x",null]"#).1, Exclude::Nobody);
        assert_eq!(
            publish(r#"[7,"t",null,["s1"],["s2","s3"]]"#).1,
            Exclude::Lists {
                exclude: vec!["s1".into()],
                eligible: Some(vec!["s2".into(), "s3".into()])
            }
        );
        assert_eq!(
            publish(r#"[7,"t",null,[]]"#).1,
            Exclude::Lists {
                exclude: vec![],
                eligible: None
            }
        );
    }

    #[test]
    fn malformed_messages() {
        assert_eq!(decode("nope"), Err(DecodeError::NotJson));
        assert_eq!(decode("{}"), Err(DecodeError::NotAMessage));
        assert_eq!(decode("[]"), Err(DecodeError::NotAMessage));
        assert_eq!(decode(r#"["5","t"]"#), Err(DecodeError::NotAMessage));
        assert_eq!(decode("[8,\"t\",1]"), Err(DecodeError::UnknownType(8)));
        assert_eq!(decode("[99]"), Err(DecodeError::UnknownType(99)));
        assert!(matches!(
            decode(r#"[5]"#),
            Err(DecodeError::Malformed { type_id: 5, .. })
        ));
        assert!(matches!(
            decode(r#"[5,"a","b"]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[5,3]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[5,""]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(&format!(r#"[5,"{}"]"#, "a".repeat(2049))),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[1,"a:b","http://x"]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[7,"t"]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[7,"t",1,"me"]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[7,"t",1,[],[3]]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(r#"[2,5,"p"]"#),
            Err(DecodeError::Malformed { .. })
        ));
        assert_eq!(
            decode(r#"[2,"c1",{}]"#),
            Err(DecodeError::BadCall {
                call_id: "c1".into(),
                reason: "procedure URI must be a non-empty string of at most 2048 bytes"
            })
        );
    }

    #[test]
    fn numbers_survive_relaying() {
        // Found by fuzzing: without correctly rounded float parsing, an
        // event's number changed in its last digit on the way through.
        let text = r#"[7,"t",{"n":1111111111000000000643096715069792073920739}]"#;
        let Ok(Incoming::Publish { topic, event, .. }) = decode(text) else {
            panic!()
        };
        let relayed: Value = serde_json::from_str(&super::event(&topic, &event)).unwrap();
        assert_eq!(relayed[2], event);
    }

    #[test]
    fn encodes_server_messages() {
        assert_eq!(
            welcome("abc", "sprocket/0.1.0"),
            r#"[0,"abc",1,"sprocket/0.1.0"]"#
        );
        assert_eq!(call_result("c\"1", &json!([1, 2])), r#"[3,"c\"1",[1,2]]"#);
        assert_eq!(
            call_error("c1", "urn:x", "bad", None),
            r#"[4,"c1","urn:x","bad"]"#
        );
        assert_eq!(
            call_error("c1", "urn:x", "bad", Some(&json!({"k":1}))),
            r#"[4,"c1","urn:x","bad",{"k":1}]"#
        );
        assert_eq!(event("http://t", &json!("hi")), r#"[8,"http://t","hi"]"#);
    }
}
