//! The client role on raw server bytes: the opening handshake's answer,
//! then frames into `ws::Connection::client`. Input is (chunk sizes,
//! bytes). Whatever the bytes, nothing panics, and chunking does not change
//! what comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::ws::{self, ClientHandshake, Connection, Event, Settings, Shared, WsUrl};
use sprocket_fuzz::{chunks, split_input};
use std::time::Instant;

/// What the client saw, owned: events, then how the stream ended.
fn run(pieces: Vec<&[u8]>) -> Vec<String> {
    let url = WsUrl::parse("ws://127.0.0.1:8080/echo").expect("literal URL");
    let mut request = Vec::new();
    let mut hs = ClientHandshake::start(&url, &["wamp"], [7; 16], &mut request);
    let now = Instant::now();
    let settings = Settings {
        limits: ws::Limits {
            max_frame: 1024,
            max_message: 2048,
        },
        ..Settings::default()
    };
    let mut shared = Shared::new(ws::deflate::DeflateConfig::default());
    let mut conn: Option<Connection> = None;
    let mut input = Vec::new();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        input.extend_from_slice(piece);
        let Some(c) = conn.as_mut() else {
            match hs.handle_input(&input) {
                Ok(None) => continue,
                Ok(Some(ok)) => {
                    assert!(ok.head_len <= input.len());
                    seen.push(format!("accepted {:?}", ok.protocol));
                    input.drain(..ok.head_len);
                    conn = Some(Connection::client(now, 42));
                }
                Err(e) => {
                    seen.push(format!("refused {e}"));
                    return seen;
                }
            }
            // Frames may have come with the head.
            drain(
                conn.as_mut().expect("just set"),
                &mut input,
                &settings,
                &mut shared,
                &mut out,
                &mut seen,
            );
            continue;
        };
        drain(c, &mut input, &settings, &mut shared, &mut out, &mut seen);
    }
    seen
}

fn drain(
    c: &mut Connection,
    input: &mut Vec<u8>,
    settings: &Settings,
    shared: &mut Shared,
    out: &mut Vec<u8>,
    seen: &mut Vec<String>,
) {
    loop {
        let len = input.len();
        let (used, event) = c.handle_input(input, Instant::now(), settings, shared, out);
        assert!(used <= len);
        let event = event.map(|e| match e {
            Event::Text(t) => format!("text {t}"),
            Event::Binary(b) => format!("binary {b:?}"),
            Event::Closed { code, reason } => format!("closed {code} {reason}"),
            Event::Failed(e) => format!("failed {e}"),
            Event::Assembled(a) => format!("assembled {} {:?}", a.text, c.take_message()),
        });
        input.drain(..used);
        match event {
            Some(e) => seen.push(e),
            None => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, bytes) = split_input(data);
    let whole = run(vec![bytes]);
    let chunked = run(chunks(sizes, bytes));
    assert_eq!(whole, chunked);
});
