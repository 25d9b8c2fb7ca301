//! GRIP publishing: the body of `POST /publish/` as Pushpin reads it,
//! `{"items": [{"channel", "id"?, "prev-id"?, "formats": {"ws-message":
//! {"content": TEXT} | {"content-bin": BASE64}}}]}`, and how a message
//! rides on the bus. Sans-IO: bytes in, [`Item`]s or a reason out.
//!
//! The formats may also sit on the item itself (`"ws-message": {…}`
//! beside `"channel"`), as older publishers send them. `http-response`
//! and `http-stream` formats are checked for shape and otherwise ignored
//! (sprocket holds no HTTP streams), so a publisher that sends all three
//! works unchanged. The request is taken whole or refused whole.

use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;

/// The most items one request may hold.
pub const MAX_ITEMS: usize = 10_000;
/// The longest channel name.
pub const MAX_CHANNEL_LEN: usize = super::control::MAX_CHANNEL_LEN;

/// A message for WebSocket connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl WsMessage {
    /// The message as bus event data (JSON text): a text message is a
    /// JSON string, a binary one `{"content-bin": BASE64}`.
    pub fn to_data(&self) -> String {
        match self {
            WsMessage::Text(t) => Value::from(t.as_str()).to_string(),
            WsMessage::Binary(b) => serde_json::json!({
                "content-bin": base64::engine::general_purpose::STANDARD.encode(b)
            })
            .to_string(),
        }
    }

    /// What a GRIP connection sends for bus event `data` (JSON text), from
    /// whichever ingress it came: a JSON string is sent as that text, an
    /// object holding only a base64 `"content-bin"` as those bytes, and
    /// anything else as its JSON text.
    pub fn from_data(data: &str) -> WsMessage {
        match serde_json::from_str::<Value>(data) {
            Ok(Value::String(s)) => WsMessage::Text(s),
            Ok(Value::Object(obj)) if obj.len() == 1 => match obj.get("content-bin") {
                Some(Value::String(b64)) => {
                    match base64::engine::general_purpose::STANDARD.decode(b64) {
                        Ok(bytes) => WsMessage::Binary(bytes),
                        Err(_) => WsMessage::Text(data.to_owned()),
                    }
                }
                _ => WsMessage::Text(data.to_owned()),
            },
            _ => WsMessage::Text(data.to_owned()),
        }
    }
}

/// One publish item, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The channel (a bus topic).
    pub channel: String,
    /// The item's id, if given.
    pub id: Option<String>,
    /// The id of the item before it on the channel, if given.
    pub prev_id: Option<String>,
    /// The WebSocket message, if the item has the `ws-message` format.
    pub message: Option<WsMessage>,
}

/// Why a publish request was refused (answered 400 with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishError {
    /// Which item, if one was at fault.
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "item {i}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for PublishError {}

/// Parses a publish request body.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, PublishError> {
    let whole = |reason: String| PublishError {
        index: None,
        reason,
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| whole(format!("body is not JSON: {e}")))?;
    let Some(items) = value.get("items") else {
        return Err(whole("no \"items\" in the body".into()));
    };
    let Some(items) = items.as_array() else {
        return Err(whole("\"items\" is not an array".into()));
    };
    if items.len() > MAX_ITEMS {
        return Err(whole(format!("more than {MAX_ITEMS} items")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_item(item).map_err(|reason| PublishError {
                index: Some(i),
                reason,
            })
        })
        .collect()
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{key}\" is not a string")),
    }
}

fn parse_item(item: &Value) -> Result<Item, String> {
    let Some(obj) = item.as_object() else {
        return Err("not an object".into());
    };
    let channel = match obj.get("channel") {
        Some(Value::String(c)) if c.is_empty() => return Err("empty \"channel\"".into()),
        Some(Value::String(c)) if c.len() > MAX_CHANNEL_LEN => {
            return Err(format!("\"channel\" longer than {MAX_CHANNEL_LEN} bytes"));
        }
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err("\"channel\" is not a string".into()),
        None => return Err("no \"channel\"".into()),
    };
    let id = optional_string(obj, "id")?;
    let prev_id = optional_string(obj, "prev-id")?;
    let formats = match obj.get("formats") {
        Some(Value::Object(f)) => f,
        Some(_) => return Err("\"formats\" is not an object".into()),
        None => obj,
    };
    let mut any = false;
    for key in ["http-response", "http-stream"] {
        match formats.get(key) {
            Some(Value::Object(_)) => any = true,
            Some(_) => return Err(format!("\"{key}\" is not an object")),
            None => {}
        }
    }
    let message = match formats.get("ws-message") {
        Some(Value::Object(ws)) => Some(ws_message(ws)?),
        Some(_) => return Err("\"ws-message\" is not an object".into()),
        None => None,
    };
    if message.is_none() && !any {
        return Err("no formats specified".into());
    }
    Ok(Item {
        channel,
        id,
        prev_id,
        message,
    })
}

fn ws_message(ws: &Map<String, Value>) -> Result<WsMessage, String> {
    let binary = match ws.get("type") {
        None | Some(Value::Null) => false,
        Some(Value::String(t)) if t == "text" => false,
        Some(Value::String(t)) if t == "binary" => true,
        Some(other) => return Err(format!("\"ws-message\" has an unknown \"type\" {other}")),
    };
    Ok(match ws_content(ws)? {
        WsMessage::Text(t) if binary => WsMessage::Binary(t.into_bytes()),
        m => m,
    })
}

fn ws_content(ws: &Map<String, Value>) -> Result<WsMessage, String> {
    match (ws.get("content-bin"), ws.get("content")) {
        (Some(Value::String(b64)), _) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(WsMessage::Binary)
            .map_err(|e| format!("\"content-bin\" is not base64: {e}")),
        (Some(_), _) => Err("\"content-bin\" is not a string".into()),
        (None, Some(Value::String(t))) => Ok(WsMessage::Text(t.clone())),
        (None, Some(_)) => Err("\"content\" is not a string".into()),
        (None, None) => Err("\"ws-message\" has no \"content\" or \"content-bin\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_text_binary_and_ids() {
        let body = br#"{"items":[
            {"channel":"posts","id":"2","prev-id":"1","formats":{"ws-message":{"content":"hi"}}},
            {"channel":"bin","ws-message":{"content-bin":"AAH/"}},
            {"channel":"web","formats":{"http-stream":{"content":"x"}}},
            {"channel":"typed","ws-message":{"content":"t2","type":"binary"}}
        ]}"#;
        let items = parse(body).unwrap();
        assert_eq!(
            items[0],
            Item {
                channel: "posts".into(),
                id: Some("2".into()),
                prev_id: Some("1".into()),
                message: Some(WsMessage::Text("hi".into())),
            }
        );
        assert_eq!(items[1].message, Some(WsMessage::Binary(vec![0, 1, 255])));
        assert_eq!(items[2].message, None);
        assert_eq!(items[3].message, Some(WsMessage::Binary(b"t2".to_vec())));
    }

    #[test]
    fn refusals_name_the_item() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "body is not JSON"),
            (b"{}", "no \"items\""),
            (br#"{"items":{}}"#, "not an array"),
            (br#"{"items":[1]}"#, "item 0: not an object"),
            (br#"{"items":[{}]}"#, "item 0: no \"channel\""),
            (br#"{"items":[{"channel":""}]}"#, "empty"),
            (br#"{"items":[{"channel":5}]}"#, "not a string"),
            (br#"{"items":[{"channel":"a"}]}"#, "no formats specified"),
            (
                br#"{"items":[{"channel":"a","id":1,"ws-message":{"content":"x"}}]}"#,
                "\"id\"",
            ),
            (
                br#"{"items":[{"channel":"a","formats":[]}]}"#,
                "\"formats\" is not",
            ),
            (
                br#"{"items":[{"channel":"a","ws-message":{}}]}"#,
                "no \"content\"",
            ),
            (
                br#"{"items":[{"channel":"a","ws-message":{"content":3}}]}"#,
                "\"content\" is not",
            ),
            (
                br#"{"items":[{"channel":"a","ws-message":{"content-bin":"%%"}}]}"#,
                "base64",
            ),
            (
                br#"{"items":[{"channel":"a","ws-message":{"content":"x","type":"ping"}}]}"#,
                "unknown \"type\"",
            ),
            (
                br#"{"items":[{"channel":"a","ws-message":{"content":"x"}},{"channel":"b"}]}"#,
                "item 1:",
            ),
        ];
        for (body, want) in cases {
            let e = parse(body).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{e:?} for {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bus_data_round_trips() {
        for m in [
            WsMessage::Text("plain".into()),
            WsMessage::Text("{\"looks\":\"json\"}".into()),
            WsMessage::Binary((0..=255).collect()),
        ] {
            assert_eq!(WsMessage::from_data(&m.to_data()), m);
        }
        // What other ingresses publish: JSON that is not a string goes as
        // its text.
        assert_eq!(
            WsMessage::from_data(r#"{"a":1}"#),
            WsMessage::Text(r#"{"a":1}"#.into())
        );
        assert_eq!(
            WsMessage::from_data(r#"{"content-bin":"!","x":1}"#),
            WsMessage::Text(r#"{"content-bin":"!","x":1}"#.into())
        );
        assert_eq!(
            WsMessage::from_data(r#"{"content-bin":"!"}"#),
            WsMessage::Text(r#"{"content-bin":"!"}"#.into())
        );
    }
}
