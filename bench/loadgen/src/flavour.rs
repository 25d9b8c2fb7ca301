//! The wire "flavour" of fan-out: how a client joins a topic, publishes, and
//! recognises a delivery. The payload (publisher id, sequence number, send
//! time) is the same ASCII string in every flavour.

/// How publish/subscribe looks on the wire.
pub trait Flavour {
    /// Name for reports.
    fn name(&self) -> &'static str;
    /// Request path to connect to.
    fn path(&self) -> &str;
    /// Subprotocol to ask for, if any.
    fn subprotocol(&self) -> Option<&str>;
    /// Text messages a subscriber sends once open (e.g. a SUBSCRIBE).
    fn subscribe(&self, out: &mut Vec<Vec<u8>>);
    /// Text messages a publisher sends once open.
    fn publisher_hello(&self, _out: &mut Vec<Vec<u8>>) {}
    /// Wraps a payload into the message to publish.
    fn publish(&self, payload: &[u8], msg: &mut Vec<u8>);
    /// The payload of a delivered event; None for anything else (welcome
    /// messages, acknowledgements).
    fn delivery<'a>(&self, msg: &'a [u8]) -> Option<&'a [u8]>;
}

/// sprocket's `/chat` and the peers' equivalents: a message is relayed as is
/// to every other client on the path.
pub struct Chat {
    pub path: String,
}

impl Flavour for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn subprotocol(&self) -> Option<&str> {
        None
    }
    fn subscribe(&self, _: &mut Vec<Vec<u8>>) {}
    fn publish(&self, payload: &[u8], msg: &mut Vec<u8>) {
        msg.extend_from_slice(payload);
    }
    fn delivery<'a>(&self, msg: &'a [u8]) -> Option<&'a [u8]> {
        Some(msg)
    }
}

/// WAMP v1 (subprotocol `wamp`): SUBSCRIBE `[5,topic]`, PUBLISH
/// `[7,topic,event]`, EVENT `[8,topic,event]`; the event is the payload as a
/// JSON string (it is plain ASCII without quotes or backslashes). The
/// server's WELCOME `[0,…]` and anything else is ignored.
pub struct WampV1 {
    pub path: String,
    pub topic: String,
}

impl WampV1 {
    fn topic_json(&self) -> String {
        let mut s = String::new();
        crate::report::quote(&mut s, &self.topic);
        s
    }
}

impl Flavour for WampV1 {
    fn name(&self) -> &'static str {
        "wamp1"
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn subprotocol(&self) -> Option<&str> {
        Some("wamp")
    }
    fn subscribe(&self, out: &mut Vec<Vec<u8>>) {
        out.push(format!("[5,{}]", self.topic_json()).into_bytes());
    }
    fn publish(&self, payload: &[u8], msg: &mut Vec<u8>) {
        msg.extend_from_slice(b"[7,");
        msg.extend_from_slice(self.topic_json().as_bytes());
        msg.extend_from_slice(b",\"");
        msg.extend_from_slice(payload);
        msg.extend_from_slice(b"\"]");
    }
    fn delivery<'a>(&self, msg: &'a [u8]) -> Option<&'a [u8]> {
        // [8,"topic","payload"] with optional spaces after commas.
        let rest = msg.strip_prefix(b"[8,")?;
        let rest = trim_start(rest);
        let rest = rest.strip_prefix(b"\"")?;
        let close = rest.iter().position(|&b| b == b'"')?;
        let rest = trim_start(rest[close + 1..].strip_prefix(b",")?);
        let rest = rest.strip_prefix(b"\"")?;
        let end = rest.iter().position(|&b| b == b'"')?;
        Some(&rest[..end])
    }
}

/// GRIP (Pushpin's publish format): subscribers are connections on a path
/// whose backend subscribes them to a channel when they open; messages
/// are published over HTTP (`--publish-url`), one item per message:
/// `{"channel":C,"formats":{"ws-message":{"content":PAYLOAD}}}`, items of
/// one request joined as the `items` array. A delivery is the content as is.
pub struct Grip {
    pub path: String,
    pub channel: String,
}

impl Flavour for Grip {
    fn name(&self) -> &'static str {
        "grip"
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn subprotocol(&self) -> Option<&str> {
        None
    }
    fn subscribe(&self, _: &mut Vec<Vec<u8>>) {}
    fn publish(&self, payload: &[u8], msg: &mut Vec<u8>) {
        let mut ch = String::new();
        crate::report::quote(&mut ch, &self.channel);
        msg.extend_from_slice(b"{\"channel\":");
        msg.extend_from_slice(ch.as_bytes());
        msg.extend_from_slice(b",\"formats\":{\"ws-message\":{\"content\":\"");
        msg.extend_from_slice(payload);
        msg.extend_from_slice(b"\"}}}");
    }
    fn delivery<'a>(&self, msg: &'a [u8]) -> Option<&'a [u8]> {
        Some(msg)
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamp1_round_trip() {
        let f = WampV1 {
            path: "/".into(),
            topic: "http://example.com/t".into(),
        };
        let mut subs = Vec::new();
        f.subscribe(&mut subs);
        assert_eq!(subs, vec![br#"[5,"http://example.com/t"]"#.to_vec()]);
        let mut m = Vec::new();
        f.publish(b"abc", &mut m);
        assert_eq!(m, br#"[7,"http://example.com/t","abc"]"#.to_vec());
        assert_eq!(
            f.delivery(br#"[8, "http://example.com/t", "abc"]"#),
            Some(&b"abc"[..])
        );
        assert_eq!(f.delivery(br#"[0,"sid",1,"x"]"#), None);
    }

    #[test]
    fn grip_item() {
        let f = Grip {
            path: "/g".into(),
            channel: "c1".into(),
        };
        let mut m = Vec::new();
        f.publish(b"abc", &mut m);
        assert_eq!(
            m,
            br#"{"channel":"c1","formats":{"ws-message":{"content":"abc"}}}"#.to_vec()
        );
        assert_eq!(f.delivery(b"abc"), Some(&b"abc"[..]));
    }
}
