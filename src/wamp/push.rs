//! Pushes from the PHP backend: one JSON format, whichever way it comes
//! in (HTTP, Redis, ZeroMQ). Sans-IO: bytes in, [`Push`]es or a reason
//! out.
//!
//! A push is an object
//! - `{"topic": URI, "data": any, "exclude"?: [session id…], "eligible"?: [session id…]}`:
//!   a WAMP EVENT on `topic` with `data`, to its subscribers, minus
//!   `exclude`, and only `eligible` if given (WAMP session ids, as in a
//!   WAMP v1 PUBLISH);
//! - `{"user": ID, "topic": URI, "data": any}`: the same, only to the
//!   connections of that user (an id from the session or from connect
//!   authorisation; a JSON string or integer).
//!
//! A JSON array of pushes is a batch. Fields not named here are ignored.
//! In raw mode ([`Format::Raw`], `--push-topic-field NAME`, for code
//! written for Ratchet's push tutorial) the whole object is the event and
//! its field `NAME` names the topic.

use serde_json::Value;
use std::fmt;

/// Longest topic URI accepted.
pub const MAX_TOPIC_LEN: usize = 2048;
/// Most pushes in one batch.
pub const MAX_BATCH: usize = 10_000;

/// How pushes are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"topic", "data", …}` objects.
    Envelope,
    /// The whole object is the event; this field names its topic.
    Raw(String),
}

/// One push, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    /// The topic URI.
    pub topic: String,
    /// The event.
    pub data: Value,
    /// Only this user's connections, if set.
    pub user: Option<String>,
    /// WAMP session ids not to deliver to.
    pub exclude: Vec<String>,
    /// If set, only these WAMP session ids.
    pub eligible: Option<Vec<String>>,
}

/// Why a push was refused (the HTTP endpoint answers 400 with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushError {
    /// Which push of a batch, if the input was a batch.
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "push {i} of the batch: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for PushError {}

/// Parses a push or a batch; every push is checked before any is
/// returned, so a batch is taken whole or not at all.
pub fn parse(bytes: &[u8], format: &Format) -> Result<Vec<Push>, PushError> {
    let top = |reason: String| PushError {
        index: None,
        reason,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| top(format!("not JSON: {e}")))?;
    match value {
        Value::Array(items) => {
            if items.len() > MAX_BATCH {
                return Err(top(format!(
                    "a batch of {} pushes is over the limit of {MAX_BATCH}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    one(item, format).map_err(|reason| PushError {
                        index: Some(i),
                        reason,
                    })
                })
                .collect()
        }
        item @ Value::Object(_) => Ok(vec![one(item, format).map_err(top)?]),
        other => Err(top(format!(
            "a push is a JSON object or an array of them, not {}",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn topic_of(v: Option<&Value>, field: &str) -> Result<String, String> {
    match v {
        None => Err(format!("{field:?} is missing")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("{field:?} is empty")),
        Some(Value::String(s)) if s.len() > MAX_TOPIC_LEN => {
            Err(format!("{field:?} is longer than {MAX_TOPIC_LEN} bytes"))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "{field:?} must be a string (a topic URI), not {}",
            kind(other)
        )),
    }
}

fn ids(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "{field:?} holds WAMP session ids (strings), not {}",
                    kind(other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!(
            "{field:?} must be an array of session ids, not {}",
            kind(other)
        )),
    }
}

fn one(item: Value, format: &Format) -> Result<Push, String> {
    let Value::Object(mut obj) = item else {
        return Err(format!("a push is a JSON object, not {}", kind(&item)));
    };
    match format {
        Format::Raw(field) => {
            let topic = topic_of(obj.get(field), field)?;
            Ok(Push {
                topic,
                data: Value::Object(obj),
                user: None,
                exclude: Vec::new(),
                eligible: None,
            })
        }
        Format::Envelope => {
            let topic = topic_of(obj.get("topic"), "topic")?;
            let user = match obj.get("user") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                Some(other) => {
                    return Err(format!(
                        "\"user\" must be a user id (a non-empty string or an integer), not {}",
                        if other.is_string() {
                            "an empty string"
                        } else {
                            kind(other)
                        }
                    ));
                }
            };
            let exclude = ids(obj.get("exclude"), "exclude")?.unwrap_or_default();
            let eligible = ids(obj.get("eligible"), "eligible")?;
            let data = obj
                .remove("data")
                .ok_or_else(|| "\"data\" is missing (use null for an empty event)".to_owned())?;
            Ok(Push {
                topic,
                data,
                user,
                exclude,
                eligible,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(s: &str) -> Result<Vec<Push>, PushError> {
        parse(s.as_bytes(), &Format::Envelope)
    }

    #[test]
    fn pushes_and_batches() {
        let p = env(
            r#"{"topic":"urn:news","data":{"a":1},"exclude":["s1"],"eligible":["s2","s3"],"x":1}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            vec![Push {
                topic: "urn:news".into(),
                data: json!({"a": 1}),
                user: None,
                exclude: vec!["s1".into()],
                eligible: Some(vec!["s2".into(), "s3".into()]),
            }]
        );
        let p =
            env(r#"[{"user":42,"topic":"t","data":null},{"user":"ann","topic":"u","data":[1]}]"#)
                .unwrap();
        assert_eq!(p[0].user.as_deref(), Some("42"));
        assert_eq!(p[0].data, Value::Null);
        assert_eq!(p[1].user.as_deref(), Some("ann"));
        assert_eq!(env("[]").unwrap(), vec![]);
    }

    #[test]
    fn raw_mode_takes_the_whole_object() {
        let f = Format::Raw("category".into());
        let p = parse(br#"{"category":"kittens","title":"x","when":1}"#, &f).unwrap();
        assert_eq!(p[0].topic, "kittens");
        assert_eq!(
            p[0].data,
            json!({"category":"kittens","title":"x","when":1})
        );
        let e = parse(br#"{"title":"x"}"#, &f).unwrap_err();
        assert_eq!(e.reason, "\"category\" is missing");
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("nope", "not JSON"),
            (
                "42",
                "a push is a JSON object or an array of them, not a number",
            ),
            (r#"{"data":1}"#, "\"topic\" is missing"),
            (r#"{"topic":5,"data":1}"#, "\"topic\" must be a string"),
            (r#"{"topic":"","data":1}"#, "\"topic\" is empty"),
            (r#"{"topic":"t"}"#, "\"data\" is missing"),
            (
                r#"{"topic":"t","data":1,"exclude":"s"}"#,
                "\"exclude\" must be an array",
            ),
            (
                r#"{"topic":"t","data":1,"eligible":[1]}"#,
                "\"eligible\" holds WAMP session ids",
            ),
            (
                r#"{"topic":"t","data":1,"user":true}"#,
                "\"user\" must be a user id",
            ),
            (r#"{"topic":"t","data":1,"user":""}"#, "not an empty string"),
            (
                r#"{"topic":"t","data":1,"user":1.5}"#,
                "\"user\" must be a user id",
            ),
        ];
        for (input, why) in cases {
            let e = env(input).unwrap_err();
            assert!(e.to_string().contains(why), "{input}: {e}");
            assert_eq!(e.index, None);
        }
        let e = env(r#"[{"topic":"t","data":1},{"topic":"t"}]"#).unwrap_err();
        assert_eq!(e.index, Some(1));
        assert_eq!(
            e.to_string(),
            "push 1 of the batch: \"data\" is missing (use null for an empty event)"
        );
        let e = env(&format!(
            r#"{{"topic":"{}","data":1}}"#,
            "t".repeat(MAX_TOPIC_LEN + 1)
        ))
        .unwrap_err();
        assert!(e.reason.contains("longer than"), "{e}");
        let e = env("[1]").unwrap_err();
        assert_eq!(e.reason, "a push is a JSON object, not a number");
    }
}
