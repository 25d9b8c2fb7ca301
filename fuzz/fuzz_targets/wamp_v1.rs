//! The WAMP v1 decoder on arbitrary text: never panics, and whatever it
//! accepts re-encodes into something it decodes the same way (for the
//! message kinds the server also sends, the encoders are exercised too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sprocket::wamp::v1::{self, Exclude, Incoming, MAX_URI_LEN};

fn encode(msg: &Incoming) -> String {
    let v = match msg {
        Incoming::Prefix { prefix, uri } => serde_json::json!([1, prefix, uri]),
        Incoming::Call {
            call_id,
            proc_uri,
            args,
        } => {
            let mut items = vec![
                Value::from(2),
                Value::from(call_id.as_str()),
                Value::from(proc_uri.as_str()),
            ];
            items.extend(args.iter().cloned());
            Value::Array(items)
        }
        Incoming::Subscribe { topic } => serde_json::json!([5, topic]),
        Incoming::Unsubscribe { topic } => serde_json::json!([6, topic]),
        Incoming::Publish {
            topic,
            event,
            exclude,
        } => match exclude {
            Exclude::Nobody => serde_json::json!([7, topic, event]),
            Exclude::Me => serde_json::json!([7, topic, event, true]),
            Exclude::Lists {
                exclude,
                eligible: None,
            } => serde_json::json!([7, topic, event, exclude]),
            Exclude::Lists {
                exclude,
                eligible: Some(el),
            } => serde_json::json!([7, topic, event, exclude, el]),
        },
    };
    v.to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = v1::decode(text) {
        let uris: Vec<&str> = match &msg {
            Incoming::Prefix { prefix, uri } => vec![prefix, uri],
            Incoming::Call { proc_uri, .. } => vec![proc_uri],
            Incoming::Subscribe { topic }
            | Incoming::Unsubscribe { topic }
            | Incoming::Publish { topic, .. } => vec![topic],
        };
        assert!(uris.iter().all(|u| !u.is_empty() && u.len() <= MAX_URI_LEN));
        assert_eq!(v1::decode(&encode(&msg)).as_ref(), Ok(&msg), "round trip");
        if let Incoming::Publish { topic, event, .. } = &msg {
            let ev: Value = serde_json::from_str(&v1::event(topic, event)).unwrap();
            assert_eq!(ev[0], 8);
            assert_eq!(&ev[2], event);
        }
    }
});
