//! The bodies of the HTTP API's triggers: `POST /apps/{id}/events` and
//! `POST /apps/{id}/batch_events`.

use super::channel::Channel;
use super::protocol::is_socket_id;
use serde_json::{Map, Value};
use std::fmt;

/// Limits on triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Channels one event may name (100 in Pusher's API).
    pub max_channels: usize,
    /// Bytes of `data` per event (10 KiB in Pusher's API).
    pub max_data: usize,
    /// Events in one batch (10 in Pusher's API).
    pub max_batch: usize,
    /// Bytes of an event name.
    pub max_name: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_channels: 100,
            max_data: 10 * 1024,
            max_batch: 10,
            max_name: 200,
        }
    }
}

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The event name.
    pub name: String,
    /// The payload, as the text clients receive.
    pub data: String,
    /// The channels, each checked.
    pub channels: Vec<String>,
    /// Not to this connection (`toOthers()` in Laravel).
    pub socket_id: Option<String>,
    /// What to answer about the channels (`user_count`,
    /// `subscription_count`), comma-separated.
    pub info: Option<String>,
}

/// Why a trigger is refused, with the HTTP status to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// 400 or 413.
    pub status: u16,
    /// What is wrong, for the body of the answer.
    pub reason: String,
}

impl ApiError {
    fn bad(reason: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for ApiError {}

fn event_of(map: &Map<String, Value>, limits: &Limits, batch: bool) -> Result<Trigger, ApiError> {
    let name = match map.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(ApiError::bad("name is required (a string)")),
    };
    if name.len() > limits.max_name {
        return Err(ApiError::bad(format!(
            "the event name is longer than {} bytes",
            limits.max_name
        )));
    }
    // The SDKs send data as a JSON-encoded string; anything else is
    // passed on as its JSON text.
    let data = match map.get("data") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => return Err(ApiError::bad("data is required")),
    };
    if data.len() > limits.max_data {
        return Err(ApiError {
            status: 413,
            reason: format!(
                "data of {} bytes is more than the {} allowed",
                data.len(),
                limits.max_data
            ),
        });
    }
    let channels: Vec<String> = match (map.get("channels"), map.get("channel")) {
        (Some(Value::Array(list)), None) if !batch => list
            .iter()
            .map(|c| c.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("channels must be a list of strings"))?,
        (None, Some(Value::String(c))) => vec![c.clone()],
        (Some(_), Some(_)) => return Err(ApiError::bad("give channel or channels, not both")),
        _ if batch => return Err(ApiError::bad("each batch event needs channel (a string)")),
        _ => {
            return Err(ApiError::bad(
                "channels (a list) or channel (a string) is required",
            ));
        }
    };
    if channels.is_empty() {
        return Err(ApiError::bad("channels is empty"));
    }
    if channels.len() > limits.max_channels {
        return Err(ApiError::bad(format!(
            "{} channels, more than the {} allowed",
            channels.len(),
            limits.max_channels
        )));
    }
    for c in &channels {
        Channel::parse(c).map_err(|e| ApiError::bad(format!("channel {c:?}: {e}")))?;
    }
    let socket_id = match map.get("socket_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_socket_id(s) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::bad(
                "socket_id is not a socket id (digits.digits)",
            ));
        }
    };
    let info = match map.get("info") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::bad("info must be a string")),
    };
    Ok(Trigger {
        name,
        data,
        channels,
        socket_id,
        info,
    })
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("the body is not a JSON object")),
        Err(e) => Err(ApiError::bad(format!("the body is not JSON: {e}"))),
    }
}

/// Parses the body of `POST /apps/{id}/events`.
pub fn parse_trigger(body: &[u8], limits: &Limits) -> Result<Trigger, ApiError> {
    event_of(&object(body)?, limits, false)
}

/// Parses the body of `POST /apps/{id}/batch_events` (`{"batch": [...]}`,
/// each event on one `channel`).
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<Vec<Trigger>, ApiError> {
    let map = object(body)?;
    let Some(Value::Array(batch)) = map.get("batch") else {
        return Err(ApiError::bad("batch is required (a list of events)"));
    };
    if batch.len() > limits.max_batch {
        return Err(ApiError::bad(format!(
            "{} events in the batch, more than the {} allowed",
            batch.len(),
            limits.max_batch
        )));
    }
    batch
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            Value::Object(m) => event_of(m, limits, true).map_err(|mut err| {
                err.reason = format!("batch event {i}: {}", err.reason);
                err
            }),
            _ => Err(ApiError::bad(format!("batch event {i} is not an object"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(body: &str) -> Result<Trigger, ApiError> {
        parse_trigger(body.as_bytes(), &Limits::default())
    }

    #[test]
    fn what_laravel_sends() {
        // The PHP SDK's trigger for a broadcast toOthers().
        let got = t(r#"{"name":"App\\Events\\OrderShipped","data":"{\"id\":1}","channels":["private-orders.1","orders"],"socket_id":"123.456"}"#).unwrap();
        assert_eq!(got.name, "App\\Events\\OrderShipped");
        assert_eq!(got.data, r#"{"id":1}"#);
        assert_eq!(got.channels, ["private-orders.1", "orders"]);
        assert_eq!(got.socket_id.as_deref(), Some("123.456"));
        let got =
            t(r#"{"name":"e","data":{"x":1},"channel":"a","info":"subscription_count"}"#).unwrap();
        assert_eq!(got.data, r#"{"x":1}"#);
        assert_eq!(got.channels, ["a"]);
        assert_eq!(got.info.as_deref(), Some("subscription_count"));
    }

    #[test]
    fn refusals() {
        let status = |body: &str| t(body).map_err(|e| e.status);
        assert_eq!(status("nope"), Err(400));
        assert_eq!(status("[]"), Err(400));
        assert_eq!(status(r#"{"data":"x","channel":"a"}"#), Err(400));
        assert_eq!(status(r#"{"name":"e","channel":"a"}"#), Err(400));
        assert_eq!(status(r#"{"name":"e","data":"x"}"#), Err(400));
        assert_eq!(status(r#"{"name":"e","data":"x","channels":[]}"#), Err(400));
        assert_eq!(
            status(r#"{"name":"e","data":"x","channels":[1]}"#),
            Err(400)
        );
        assert_eq!(
            status(r#"{"name":"e","data":"x","channel":"a b"}"#),
            Err(400)
        );
        assert_eq!(
            status(r#"{"name":"e","data":"x","channel":"a","channels":["b"]}"#),
            Err(400)
        );
        assert_eq!(
            status(r#"{"name":"e","data":"x","channel":"a","socket_id":"1"}"#),
            Err(400)
        );
        let many: Vec<String> = (0..101).map(|i| format!("\"c{i}\"")).collect();
        let body = format!(
            r#"{{"name":"e","data":"x","channels":[{}]}}"#,
            many.join(",")
        );
        assert_eq!(status(&body), Err(400));
        let big = format!(
            r#"{{"name":"e","data":"{}","channel":"a"}}"#,
            "x".repeat(10 * 1024 + 1)
        );
        assert_eq!(status(&big), Err(413));
        let fits = format!(
            r#"{{"name":"e","data":"{}","channel":"a"}}"#,
            "x".repeat(10 * 1024)
        );
        assert!(t(&fits).is_ok());
    }

    #[test]
    fn batches() {
        let limits = Limits::default();
        let ok = parse_batch(
            br#"{"batch":[{"name":"a","data":"1","channel":"x"},{"name":"b","data":"2","channel":"y","socket_id":"1.2"}]}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].socket_id.as_deref(), Some("1.2"));
        let err = parse_batch(
            br#"{"batch":[{"name":"a","data":"1","channel":"x"},{"name":"b","data":"2"}]}"#,
            &limits,
        )
        .unwrap_err();
        assert!(err.reason.starts_with("batch event 1:"), "{err}");
        let err = parse_batch(
            br#"{"batch":[{"name":"a","data":"1","channels":["x"]}]}"#,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.status, 400);
        let eleven: Vec<&str> = vec![r#"{"name":"a","data":"1","channel":"x"}"#; 11];
        let body = format!(r#"{{"batch":[{}]}}"#, eleven.join(","));
        assert_eq!(
            parse_batch(body.as_bytes(), &limits).unwrap_err().status,
            400
        );
        assert!(parse_batch(b"{}", &limits).is_err());
    }
}
