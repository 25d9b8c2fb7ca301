//! GRIP publish bodies and control messages (`sprocket::grip::publish`,
//! `sprocket::grip::control`): the same bytes go to both, and neither
//! panics. A parsed item has a channel within the limits, and its message
//! survives the bus (`from_data(to_data(m)) == m`); a parsed control
//! message has a channel within the limits and a keep-alive within its
//! bounds. Any UTF-8 input is also taken as bus event data from another
//! ingress: `from_data` never panics, and what it gives survives the bus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::grip::control::{self, Control, FrameKind, MIN_KEEP_ALIVE};
use sprocket::grip::publish::{self, MAX_CHANNEL_LEN, WsMessage};
use std::time::Duration;

fn channel_ok(c: &str) {
    assert!(
        !c.is_empty() && c.len() <= MAX_CHANNEL_LEN,
        "{} bytes",
        c.len()
    );
}

fn survives_the_bus(m: &WsMessage) {
    let data = m.to_data();
    let _: serde_json::Value = serde_json::from_str(&data).expect("bus data is JSON");
    assert_eq!(&WsMessage::from_data(&data), m);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = publish::parse(data) {
        assert!(items.len() <= publish::MAX_ITEMS);
        for item in &items {
            channel_ok(&item.channel);
            if let Some(m) = &item.message {
                survives_the_bus(m);
            }
        }
    }

    match control::parse(data) {
        Ok(Control::Subscribe(c) | Control::Unsubscribe(c)) => channel_ok(&c),
        Ok(Control::KeepAlive(Some(k))) => {
            assert!(k.timeout >= MIN_KEEP_ALIVE && k.timeout <= Duration::from_secs(24 * 3600));
            if matches!(k.kind, FrameKind::Ping | FrameKind::Pong) {
                assert!(k.content.len() <= 125);
            }
        }
        Ok(Control::KeepAlive(None) | Control::Detach) | Err(_) => {}
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let m = WsMessage::from_data(text);
        if let WsMessage::Text(t) = &m {
            // Either the JSON string's value, or the data as it came.
            assert!(
                t == text
                    || serde_json::from_str::<serde_json::Value>(text)
                        .is_ok_and(|v| v.as_str() == Some(t))
            );
        }
        survives_the_bus(&m);
    }
});
