//! Pushes from the backend (`sprocket::wamp::push`): any bytes, in the
//! envelope format or raw mode (picked by the first byte), never panic; a
//! parsed push has a topic within the limits, and its event's JSON text
//! (what the bus carries) reads back as the same data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::wamp::push::{self, Format, MAX_TOPIC_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let format = if mode & 1 == 0 {
        Format::Envelope
    } else {
        Format::Raw("topic".into())
    };
    let Ok(pushes) = push::parse(input, &format) else {
        return;
    };
    for p in pushes {
        assert!(!p.topic.is_empty() && p.topic.len() <= MAX_TOPIC_LEN);
        let data = p.data.clone();
        let event = sprocket::app::push_event(p);
        let back: serde_json::Value = serde_json::from_str(&event.data).expect("the bus carries JSON");
        assert_eq!(back, data);
    }
});
