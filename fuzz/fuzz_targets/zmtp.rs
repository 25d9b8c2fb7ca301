//! The ZMTP PULL side on arbitrary peer bytes: the input is (chunk sizes,
//! mode, wire). Mode 0 feeds the wire as is; 1 puts a valid ZMTP 3.1 NULL
//! greeting in front of it; 2 a greeting and a PUSH READY, so that the
//! fuzzer reaches frames and commands without finding the handshake first.
//!
//! Invariants: no panic; the same events and the same output whether the
//! bytes arrive whole or in any chunking (with our output written after
//! every chunk, or only at the end); at most one Ready, before any
//! Message; nothing after an Error; every message within the limits;
//! output stays within max_transmit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::clients::zmtp::{Event, GREETING, Settings, ZmtpConn, ZmtpError};
use sprocket_fuzz::{chunks, split_input};

// Small, so that inputs of libFuzzer's default size reach every limit.
const SETTINGS: Settings = Settings {
    max_frame: 64,
    max_message: 128,
    max_parts: 4,
    max_command: 64,
    max_transmit: 160,
};

const READY_PUSH: &[u8] = b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH";

/// Feeds the chunks; returns the events and everything written. With
/// `write_each`, output is taken after every chunk (a reactor that keeps
/// up); otherwise it piles up until the end (a peer that does not read).
fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, write_each: bool) -> (Vec<Event>, Vec<u8>) {
    let mut conn = ZmtpConn::server(SETTINGS);
    let mut events = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        conn.handle_input(chunk);
        events.extend(std::iter::from_fn(|| conn.poll_event()));
        if write_each {
            out.extend_from_slice(conn.transmit());
            let n = conn.transmit().len();
            conn.advance_transmit(n);
        }
    }
    out.extend_from_slice(conn.transmit());
    check(&events, &conn);
    (events, out)
}

fn check(events: &[Event], conn: &ZmtpConn) {
    let mut ready = false;
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Ready { .. } => {
                assert!(!ready, "one Ready");
                ready = true;
            }
            Event::Message(m) => {
                assert!(ready, "no message before Ready");
                assert!(m.size() <= SETTINGS.max_message);
                assert!(m.part_count() <= SETTINGS.max_parts);
                assert!(m.parts().all(|p| p.len() <= SETTINGS.max_frame));
                assert_eq!(m.parts().map(<[u8]>::len).sum::<usize>(), m.size());
            }
            Event::Error(e) => {
                assert_eq!(i, events.len() - 1, "nothing after an error: {e}");
                assert!(conn.is_failed());
            }
        }
    }
    assert_eq!(ready && !conn.is_failed(), conn.is_ready());
}

fuzz_target!(|input: &[u8]| {
    let (sizes, rest) = split_input(input);
    let Some((&mode, wire)) = rest.split_first() else {
        return;
    };
    let mut stream = Vec::new();
    if mode % 3 >= 1 {
        stream.extend_from_slice(&GREETING);
    }
    if mode % 3 == 2 {
        stream.extend_from_slice(READY_PUSH);
    }
    stream.extend_from_slice(wire);

    // Nothing written until the end: the pending output at every PING is
    // the same however the input is cut, so everything must match.
    let whole = feed([&stream[..]], false);
    let chunked = chunks(sizes, &stream);
    assert_eq!(
        whole,
        feed(chunked.iter().copied(), false),
        "whole vs chunked"
    );
    // Output written after every chunk: the same, unless the unwritten
    // output hit max_transmit above (written often, it never holds more).
    let backlog = matches!(
        whole.0.last(),
        Some(Event::Error(ZmtpError::TransmitBacklog))
    );
    if !backlog {
        assert_eq!(
            whole,
            feed(chunked.iter().copied(), true),
            "written as it goes"
        );
    }
    // Our output is the greeting, then READY or an ERROR, then PONGs only.
    assert!(whole.1.starts_with(&GREETING));
});
