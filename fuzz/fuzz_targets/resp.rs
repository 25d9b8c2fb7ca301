//! RESP2 decoding and the Redis connection on raw server bytes: the input is
//! (chunk sizes, wire).
//!
//! Invariants: no panic; `used` is never 0 and never beyond the buffer;
//! every reply respects the limits; the same replies and the same error (or
//! the same leftover) come out whether the bytes arrive whole or chunked,
//! through the stateless `decode` or the resumable `Decoder`. `RedisConn`
//! on the same bytes, in both modes, answers every tag exactly once (a
//! reply, or an error once the connection is unusable or gone). The Pusher
//! cluster's decoders of script replies take every decoded reply without
//! a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::clients::redis::{Event, Mode, RedisConn, RedisUrl, Settings};
use sprocket::clients::resp::{self, Decoder, Limits, Reply, RespError};
use sprocket_fuzz::{chunks, split_input};
use std::time::Instant;

// Small, so that inputs of libFuzzer's default size reach every limit.
const LIMITS: Limits = Limits {
    max_bulk: 256,
    max_elements: 32,
    max_depth: 4,
    max_line: 64,
};

type Outcome = (Vec<Reply>, Result<Vec<u8>, RespError>);

/// Decodes a byte stream the way a connection does: append each chunk, take
/// every complete reply, keep the rest.
fn stream<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, resumable: bool) -> Outcome {
    let mut decoder = Decoder::new();
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let result = if resumable {
                decoder.decode(&buf, &LIMITS)
            } else {
                resp::decode(&buf, &LIMITS)
            };
            match result {
                Err(e) => return (replies, Err(e)),
                Ok(None) => break,
                Ok(Some((reply, used))) => {
                    assert!(
                        (1..=buf.len()).contains(&used),
                        "used {used} of {}",
                        buf.len()
                    );
                    let mut elements = 0;
                    check(&reply, 0, &mut elements);
                    replies.push(reply);
                    buf.drain(..used);
                }
            }
        }
    }
    (replies, Ok(buf))
}

/// A decoded reply stays within the limits.
fn check(reply: &Reply, depth: usize, elements: &mut usize) {
    match reply {
        Reply::Simple(s) | Reply::Error(s) => {
            assert!(!s.contains(['\r', '\n']));
            // U+FFFD replacements may make the text longer than the line.
            assert!(s.chars().count() <= LIMITS.max_line);
        }
        Reply::Integer(_) | Reply::Bulk(None) | Reply::Array(None) => {}
        Reply::Bulk(Some(b)) => assert!(b.len() <= LIMITS.max_bulk),
        Reply::Array(Some(items)) => {
            assert!(items.is_empty() || depth < LIMITS.max_depth);
            *elements += items.len();
            assert!(*elements <= LIMITS.max_elements);
            for item in items {
                check(item, depth + 1, elements);
            }
        }
    }
}

/// What the Pusher cluster makes of a reply: anything but a panic, and a
/// channel list of one pair per two elements.
fn cluster_replies(reply: &Reply) {
    use sprocket::pusher::cluster;
    let _ = cluster::count(reply);
    let _ = cluster::confirmed(reply);
    let _ = cluster::info(reply);
    let _ = cluster::cached(reply);
    let _ = cluster::others(reply);
    if let (Ok(list), Reply::Array(Some(items))) = (cluster::list(reply), reply) {
        assert_eq!(list.len() * 2, items.len());
    }
}

/// Feeds the bytes to a connection with commands in flight, then drops the
/// connection: every tag must have been answered exactly once.
fn connection<'a>(mode: Mode, chunks: impl IntoIterator<Item = &'a [u8]>) {
    let url = RedisUrl::parse("redis://:pw@h/1").unwrap();
    let settings = Settings {
        limits: LIMITS,
        ..Settings::default()
    };
    let mut conn = RedisConn::with_settings(&url, mode, settings);
    let now = Instant::now();
    conn.connected(now);
    let tags = if mode == Mode::Commands { 0..8 } else { 0..0 };
    for tag in tags.clone() {
        conn.command(&[b"GET", b"k"], tag);
    }
    if mode == Mode::PubSub {
        conn.subscribe(b"ch").unwrap();
        conn.psubscribe(b"p*").unwrap();
    }
    let mut answered = Vec::new();
    let mut collect = |conn: &mut RedisConn| {
        while let Some(event) = conn.poll_event() {
            if let Event::Reply { tag, .. } = event {
                answered.push(tag);
            }
        }
    };
    for chunk in chunks {
        let written = conn.transmit().len();
        conn.advance(written);
        conn.handle_input(chunk);
        collect(&mut conn);
    }
    conn.disconnected(now);
    collect(&mut conn);
    answered.sort_unstable();
    assert_eq!(
        answered,
        tags.collect::<Vec<_>>(),
        "every tag answered once"
    );
    assert!(conn.transmit().is_empty() && conn.in_flight() == 0);
}

fuzz_target!(|input: &[u8]| {
    let (sizes, wire) = split_input(input);
    let whole = stream([wire], false);
    for reply in &whole.0 {
        cluster_replies(reply);
    }
    assert_eq!(
        whole,
        stream(chunks(sizes, wire), true),
        "whole vs resumable"
    );
    assert_eq!(
        whole,
        stream(chunks(sizes, wire), false),
        "whole vs chunked"
    );
    connection(Mode::Commands, chunks(sizes, wire));
    connection(Mode::PubSub, chunks(sizes, wire));
});
