//! A response to a GET: arbitrary bytes fed to a ClientConn whole and in
//! chunks. Never panics, decides the same both ways, never holds more than
//! the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::clients::http::{
    ClientConn, ClientError, Limits, Origin, Request, Response, Timeouts,
};
use sprocket_fuzz::{chunks, split_input};
use std::time::Instant;

// Small, so that inputs of libFuzzer's default size reach every limit.
const LIMITS: Limits = Limits {
    max_head: 512,
    max_headers: 8,
    max_body: 1024,
};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<Option<Response>, ClientError>,
    reusable: bool,
}

fn drive<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, now: Instant) -> Outcome {
    let origin = Origin::new("127.0.0.1", 8080).unwrap();
    let mut conn = ClientConn::new(origin, Timeouts::default(), LIMITS, now);
    conn.connected(now);
    conn.start(Request::new("GET", "/").unwrap(), now).unwrap();
    while !conn.transmit().is_empty() {
        conn.advance(conn.transmit().len());
    }
    let mut result = Ok(None);
    for piece in pieces {
        let r = conn.handle_input(piece);
        // Bounded at every step: the head by max_head, the body by max_body.
        assert!(conn.buffered() <= LIMITS.max_head.max(LIMITS.max_body));
        match (&result, r) {
            (Ok(None), r) => result = r,
            // Bytes after the response: in the same piece they spend the
            // connection silently, in a later one they are Unsolicited.
            (Ok(Some(_)), Err(ClientError::Unsolicited)) => {}
            (Ok(Some(_)), Ok(None)) => {}
            (_, r) => panic!("input after the outcome gave {r:?}"),
        }
        if result.is_err() {
            break;
        }
    }
    if matches!(result, Ok(None)) {
        result = conn.handle_eof();
    }
    if let Ok(Some(r)) = &result {
        assert!(r.body.len() <= LIMITS.max_body);
        assert!(r.headers.len() <= LIMITS.max_headers);
        assert!(r.status >= 200 && r.status <= 999);
    }
    assert!(!conn.in_flight());
    Outcome {
        result,
        reusable: conn.reusable(),
    }
}

fuzz_target!(|input: &[u8]| {
    let (sizes, data) = split_input(input);
    let now = Instant::now();
    let whole = drive([data], now);
    let chunked = drive(chunks(sizes, data), now);
    assert_eq!(whole, chunked, "whole vs chunked");
});
