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
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

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
    /// Close the connection (`"action": "close"`), with this code (1000
    /// if none) and reason.
    Close {
        /// The close code.
        code: Option<u16>,
        /// The reason.
        reason: String,
    },
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
            WsMessage::Close { code, reason } => {
                let mut obj = Map::new();
                obj.insert("action".into(), "close".into());
                if let Some(code) = code {
                    obj.insert("code".into(), (*code).into());
                }
                obj.insert("reason".into(), reason.as_str().into());
                Value::Object(obj).to_string()
            }
        }
    }

    /// What a GRIP connection sends for bus event `data` (JSON text), from
    /// whichever ingress it came: a JSON string is sent as that text, an
    /// object holding only a base64 `"content-bin"` as those bytes, one
    /// holding only `"action": "close"` and a `"code"` and `"reason"`
    /// closes, and anything else goes as its JSON text.
    pub fn from_data(data: &str) -> WsMessage {
        match serde_json::from_str::<Value>(data) {
            Ok(Value::String(s)) => WsMessage::Text(s),
            Ok(Value::Object(obj))
                if obj.get("action").and_then(Value::as_str) == Some("close")
                    && obj
                        .keys()
                        .all(|k| ["action", "code", "reason"].contains(&k.as_str())) =>
            {
                match close_of(&obj) {
                    Ok(m) => m,
                    Err(_) => WsMessage::Text(data.to_owned()),
                }
            }
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

/// `{"action": "close", "code"?: N, "reason"?: TEXT}`.
fn close_of(ws: &Map<String, Value>) -> Result<WsMessage, String> {
    let code = match ws.get("code") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(c @ 1000..=4999) => Some(c as u16),
            _ => return Err("\"code\" is not a close code (1000-4999)".into()),
        },
    };
    let reason = match ws.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) if r.len() <= 123 => r.clone(),
        Some(Value::String(_)) => return Err("\"reason\" is longer than 123 bytes".into()),
        Some(_) => return Err("\"reason\" is not a string".into()),
    };
    Ok(WsMessage::Close { code, reason })
}

fn ws_message(ws: &Map<String, Value>) -> Result<WsMessage, String> {
    match ws.get("action") {
        None | Some(Value::Null) => {}
        Some(Value::String(a)) if a == "send" => {}
        Some(Value::String(a)) if a == "close" => return close_of(ws),
        Some(other) => return Err(format!("\"ws-message\" has an unknown \"action\" {other}")),
    }
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

/// How long a seen item id is remembered, to drop a repeat of it.
pub const ID_TTL: Duration = Duration::from_secs(60);
/// How long an item waits for the one its `prev-id` names.
pub const HOLD: Duration = Duration::from_secs(5);
/// Most ids remembered, and items held, per channel.
pub const MAX_PER_CHANNEL: usize = 1000;

/// Pushpin's use of `id` and `prev-id`, per channel, sans-IO: an item
/// whose `id` was seen on its channel within [`ID_TTL`] is a repeat and
/// dropped; an item whose `prev-id` is not the channel's last id waits
/// (up to [`HOLD`]) for the item it names, so that a publisher's items
/// go out in its order even when its requests overtake each other.
/// An item that waited its time out goes out anyway (logged by the
/// caller): nothing accepted is dropped but repeats.
#[derive(Debug, Default)]
pub struct Sequencer {
    channels: HashMap<String, ChannelSeq>,
}

#[derive(Debug, Default)]
struct ChannelSeq {
    last_id: Option<String>,
    seen: VecDeque<(String, Instant)>,
    held: VecDeque<(Item, Instant)>,
}

/// What became of an offered item.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Deliver these now, in this order (the item, and any it released).
    Deliver(Vec<Item>),
    /// Held until the item its `prev-id` names arrives.
    Held,
    /// A repeat of an item seen within [`ID_TTL`]: dropped.
    Repeat,
}

impl Sequencer {
    /// An empty sequencer.
    pub fn new() -> Self {
        Sequencer::default()
    }

    /// Offers an item published at `now`.
    pub fn offer(&mut self, item: Item, now: Instant) -> Offered {
        let ch = self.channels.entry(item.channel.clone()).or_default();
        ch.forget_before(now);
        if let Some(id) = &item.id
            && (ch.seen.iter().any(|(s, _)| s == id)
                || ch.held.iter().any(|(h, _)| h.id.as_ref() == Some(id)))
        {
            return Offered::Repeat;
        }
        let waits = match (&item.prev_id, &ch.last_id) {
            (Some(prev), Some(last)) => prev != last,
            _ => false,
        };
        if waits && ch.held.len() < MAX_PER_CHANNEL {
            ch.held.push_back((item, now));
            return Offered::Held;
        }
        let mut out = Vec::new();
        ch.take(item, now, &mut out);
        Offered::Deliver(out)
    }

    /// Items whose wait ended by `now`, to deliver in this order; and
    /// forgets what is past [`ID_TTL`].
    pub fn expire(&mut self, now: Instant) -> Vec<Item> {
        let mut out = Vec::new();
        for ch in self.channels.values_mut() {
            while let Some((_, since)) = ch.held.front() {
                if now.duration_since(*since) < HOLD {
                    break;
                }
                let (item, _) = ch.held.pop_front().expect("checked");
                ch.take(item, now, &mut out);
            }
            ch.forget_before(now);
        }
        self.channels
            .retain(|_, ch| !ch.seen.is_empty() || !ch.held.is_empty());
        out
    }

    /// When [`Sequencer::expire`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.channels
            .values()
            .filter_map(|ch| {
                let held = ch.held.front().map(|(_, t)| *t + HOLD);
                let seen = ch.seen.front().map(|(_, t)| *t + ID_TTL);
                held.into_iter().chain(seen).min()
            })
            .min()
    }

    /// Items held now, over every channel.
    pub fn held(&self) -> usize {
        self.channels.values().map(|ch| ch.held.len()).sum()
    }
}

impl ChannelSeq {
    fn forget_before(&mut self, now: Instant) {
        while let Some((_, t)) = self.seen.front() {
            if now.duration_since(*t) < ID_TTL {
                break;
            }
            self.seen.pop_front();
        }
    }

    /// Delivers `item`, then every held item that now follows.
    fn take(&mut self, item: Item, now: Instant, out: &mut Vec<Item>) {
        let mut next = Some(item);
        while let Some(item) = next.take() {
            self.last_id = item.id.clone();
            if let Some(id) = &item.id {
                if self.seen.len() == MAX_PER_CHANNEL {
                    self.seen.pop_front();
                }
                self.seen.push_back((id.clone(), now));
            }
            out.push(item);
            if let Some(last) = &self.last_id
                && let Some(i) = self
                    .held
                    .iter()
                    .position(|(h, _)| h.prev_id.as_ref() == Some(last))
            {
                next = self.held.remove(i).map(|(h, _)| h);
            }
        }
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
            {"channel":"typed","ws-message":{"content":"t2","type":"binary"}},
            {"channel":"kick","ws-message":{"action":"close","code":4005,"reason":"kicked"}}
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
        assert_eq!(
            items[4].message,
            Some(WsMessage::Close {
                code: Some(4005),
                reason: "kicked".into()
            })
        );
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
            WsMessage::Close {
                code: Some(4005),
                reason: "kicked".into(),
            },
            WsMessage::Close {
                code: None,
                reason: String::new(),
            },
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

    fn item(id: Option<&str>, prev: Option<&str>) -> Item {
        Item {
            channel: "c".into(),
            id: id.map(Into::into),
            prev_id: prev.map(Into::into),
            message: Some(WsMessage::Text(id.unwrap_or("-").into())),
        }
    }

    fn ids(items: &[Item]) -> Vec<&str> {
        items
            .iter()
            .map(|i| i.id.as_deref().unwrap_or("-"))
            .collect()
    }

    #[test]
    fn repeats_drop_and_prev_ids_order() {
        let t0 = Instant::now();
        let mut s = Sequencer::new();
        let Offered::Deliver(d) = s.offer(item(Some("1"), None), t0) else {
            panic!()
        };
        assert_eq!(ids(&d), ["1"]);
        assert_eq!(s.offer(item(Some("1"), None), t0), Offered::Repeat);
        // 3 names 2, which has not come: held; 2 releases both.
        assert_eq!(s.offer(item(Some("3"), Some("2")), t0), Offered::Held);
        assert_eq!(s.offer(item(Some("3"), Some("2")), t0), Offered::Repeat);
        assert_eq!(s.held(), 1);
        let Offered::Deliver(d) = s.offer(item(Some("2"), Some("1")), t0) else {
            panic!()
        };
        assert_eq!(ids(&d), ["2", "3"]);
        // Items without ids always go, and break the chain.
        let Offered::Deliver(d) = s.offer(item(None, None), t0) else {
            panic!()
        };
        assert_eq!(ids(&d), ["-"]);
        let Offered::Deliver(d) = s.offer(item(Some("9"), Some("8")), t0) else {
            panic!("an unknown last id holds nothing")
        };
        assert_eq!(ids(&d), ["9"]);
    }

    #[test]
    fn held_items_go_after_their_wait_and_ids_are_forgotten() {
        let t0 = Instant::now();
        let mut s = Sequencer::new();
        s.offer(item(Some("1"), None), t0);
        assert_eq!(s.offer(item(Some("4"), Some("3")), t0), Offered::Held);
        assert_eq!(s.next_deadline(), Some(t0 + HOLD));
        assert!(s.expire(t0 + HOLD - Duration::from_millis(1)).is_empty());
        assert_eq!(ids(&s.expire(t0 + HOLD)), ["4"]);
        assert_eq!(s.held(), 0);
        // Past the TTL an id may come again; the channel is forgotten.
        assert_eq!(s.next_deadline(), Some(t0 + ID_TTL));
        assert!(s.expire(t0 + ID_TTL).is_empty());
        // "4" was seen when it went out, at t0 + HOLD.
        assert_eq!(s.next_deadline(), Some(t0 + HOLD + ID_TTL));
        assert!(s.expire(t0 + HOLD + ID_TTL).is_empty());
        assert_eq!(s.next_deadline(), None);
        assert!(matches!(
            s.offer(item(Some("1"), None), t0 + ID_TTL),
            Offered::Deliver(_)
        ));
    }
}
