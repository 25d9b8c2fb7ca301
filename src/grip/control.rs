//! GRIP control messages: what a backend that accepted the `grip`
//! WebSocket extension sends, as a text message `c:{JSON}`, to steer the
//! connection rather than to reach the client. Sans-IO: text in, a
//! [`Control`] or a reason out.

use base64::Engine as _;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// The prefix of a message meant for the client.
pub const MESSAGE_PREFIX: &str = "m:";
/// The prefix of a control message.
pub const CONTROL_PREFIX: &str = "c:";
/// The longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 1024;
/// The shortest keep-alive interval honoured.
pub const MIN_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// What kind of frame a keep-alive sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// A ping (its content is the payload).
    Ping,
    /// A pong.
    Pong,
}

/// When a keep-alive is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// After `timeout` without any other message to the client.
    Idle,
    /// Every `timeout`, whatever else was sent.
    Interval,
}

/// A keep-alive the backend asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// What to send.
    pub content: Vec<u8>,
    /// As what.
    pub kind: FrameKind,
    /// How often (or after how long idle).
    pub timeout: Duration,
    /// Idle or fixed interval.
    pub mode: KeepAliveMode,
}

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Deliver what is published to `channel` to this connection.
    Subscribe(String),
    /// Stop delivering `channel`.
    Unsubscribe(String),
    /// Stop sending this connection's events to the backend; the
    /// connection stays open for publishes.
    Detach,
    /// Start (`Some`) or stop (`None`) a keep-alive.
    KeepAlive(Option<KeepAlive>),
}

/// Why a control message was not understood (logged and skipped; the
/// connection goes on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError(pub String);

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ControlError {}

fn err<T>(why: impl Into<String>) -> Result<T, ControlError> {
    Err(ControlError(why.into()))
}

/// Parses the JSON after `c:`.
pub fn parse(json: &[u8]) -> Result<Control, ControlError> {
    let value: Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => return err(format!("not JSON: {e}")),
    };
    let Some(obj) = value.as_object() else {
        return err("not a JSON object");
    };
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return err("no string \"type\"");
    };
    let channel = || match obj.get("channel").and_then(Value::as_str) {
        Some("") => err("empty \"channel\""),
        Some(c) if c.len() > MAX_CHANNEL_LEN => {
            err(format!("\"channel\" longer than {MAX_CHANNEL_LEN} bytes"))
        }
        Some(c) => Ok(c.to_owned()),
        None => err("no string \"channel\""),
    };
    match kind {
        "subscribe" => channel().map(Control::Subscribe),
        "unsubscribe" => channel().map(Control::Unsubscribe),
        "detach" => Ok(Control::Detach),
        "keep-alive" => keep_alive(obj).map(Control::KeepAlive),
        other => err(format!("unknown type {other:?}")),
    }
}

fn keep_alive(obj: &serde_json::Map<String, Value>) -> Result<Option<KeepAlive>, ControlError> {
    let content = match (obj.get("content"), obj.get("content-bin")) {
        (_, Some(Value::String(b64))) => {
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => bytes,
                Err(e) => return err(format!("\"content-bin\" is not base64: {e}")),
            }
        }
        (_, Some(_)) => return err("\"content-bin\" is not a string"),
        (Some(Value::String(s)), None) => s.clone().into_bytes(),
        (Some(_), None) => return err("\"content\" is not a string"),
        // No content: the keep-alive is switched off.
        (None, None) => return Ok(None),
    };
    let kind = match obj.get("message-type").map(|v| v.as_str()) {
        None | Some(Some("text")) => FrameKind::Text,
        Some(Some("binary")) => FrameKind::Binary,
        Some(Some("ping")) => FrameKind::Ping,
        Some(Some("pong")) => FrameKind::Pong,
        Some(other) => return err(format!("unknown \"message-type\" {other:?}")),
    };
    if matches!(kind, FrameKind::Ping | FrameKind::Pong) && content.len() > 125 {
        return err("a ping or pong keep-alive holds at most 125 bytes");
    }
    let timeout = match obj.get("timeout") {
        None => Duration::from_secs(30),
        Some(v) => match v.as_u64() {
            Some(0) | None => return err("\"timeout\" is not a positive integer of seconds"),
            Some(s) => Duration::from_secs(s.min(24 * 3600)).max(MIN_KEEP_ALIVE),
        },
    };
    let mode = match obj.get("mode").map(|v| v.as_str()) {
        None | Some(Some("idle")) => KeepAliveMode::Idle,
        Some(Some("interval")) => KeepAliveMode::Interval,
        Some(other) => return err(format!("unknown \"mode\" {other:?}")),
    };
    Ok(Some(KeepAlive {
        content,
        kind,
        timeout,
        mode,
    }))
}

/// Reads the `Sec-WebSocket-Extensions` of a backend's answer to OPEN:
/// `Some(message prefix)` when it accepts `grip` (`m:` unless it names
/// another with `message-prefix`, which may be quoted and may be empty),
/// `None` when it does not.
pub fn accepted_grip(header: &str) -> Option<String> {
    header.split(',').find_map(|ext| {
        let mut parts = ext.split(';');
        if parts.next()?.trim() != super::EXTENSION {
            return None;
        }
        let mut prefix = MESSAGE_PREFIX.to_owned();
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim() == "message-prefix" {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                prefix = value.to_owned();
            }
        }
        Some(prefix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_detach() {
        assert_eq!(
            parse(br#"{"type":"subscribe","channel":"posts"}"#),
            Ok(Control::Subscribe("posts".into()))
        );
        assert_eq!(
            parse(br#"{"type":"unsubscribe","channel":"posts","extra":1}"#),
            Ok(Control::Unsubscribe("posts".into()))
        );
        assert_eq!(parse(br#"{"type":"detach"}"#), Ok(Control::Detach));
    }

    #[test]
    fn keep_alives() {
        assert_eq!(
            parse(br#"{"type":"keep-alive","content":"{}","timeout":20}"#),
            Ok(Control::KeepAlive(Some(KeepAlive {
                content: b"{}".to_vec(),
                kind: FrameKind::Text,
                timeout: Duration::from_secs(20),
                mode: KeepAliveMode::Idle,
            })))
        );
        assert_eq!(
            parse(
                br#"{"type":"keep-alive","content-bin":"AAH/","message-type":"ping","timeout":5,"mode":"interval"}"#
            ),
            Ok(Control::KeepAlive(Some(KeepAlive {
                content: vec![0, 1, 255],
                kind: FrameKind::Ping,
                timeout: Duration::from_secs(5),
                mode: KeepAliveMode::Interval,
            })))
        );
        assert_eq!(
            parse(br#"{"type":"keep-alive"}"#),
            Ok(Control::KeepAlive(None))
        );
    }

    #[test]
    fn refusals_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"channel":"x"}"#, "no string \"type\""),
            (br#"{"type":"subscribe"}"#, "no string \"channel\""),
            (br#"{"type":"subscribe","channel":""}"#, "empty"),
            (br#"{"type":"fly"}"#, "unknown type"),
            (br#"{"type":"keep-alive","content":1}"#, "not a string"),
            (br#"{"type":"keep-alive","content-bin":"!!"}"#, "not base64"),
            (
                br#"{"type":"keep-alive","content":"x","timeout":0}"#,
                "positive",
            ),
            (
                br#"{"type":"keep-alive","content":"x","mode":"often"}"#,
                "mode",
            ),
            (
                br#"{"type":"keep-alive","content":"x","message-type":"close"}"#,
                "message-type",
            ),
        ];
        for (input, want) in cases {
            let e = parse(input).unwrap_err();
            assert!(
                e.0.contains(want),
                "{e} for {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "c".repeat(1025));
        assert!(parse(long.as_bytes()).is_err());
    }

    #[test]
    fn the_grip_extension_and_its_prefix() {
        assert_eq!(accepted_grip("grip"), Some("m:".into()));
        assert_eq!(
            accepted_grip(" grip ; message-prefix=\"\""),
            Some(String::new())
        );
        assert_eq!(
            accepted_grip("permessage-deflate, grip; message-prefix=msg:"),
            Some("msg:".into())
        );
        assert_eq!(accepted_grip("gripper"), None);
        assert_eq!(accepted_grip(""), None);
    }
}
