//! The frame decoder on raw wire bytes: the input is (chunk sizes, wire).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::ws::Limits;
use sprocket_fuzz::{chunks, decode_stream, split_input};

// Small, so that inputs of libFuzzer's default size reach both limits.
const LIMITS: Limits = Limits {
    max_frame: 1024,
    max_message: 2048,
};

fuzz_target!(|input: &[u8]| {
    let (sizes, wire) = split_input(input);
    // decode_stream checks each call and the message assembly.
    let whole = decode_stream([wire], &LIMITS);
    let chunked = decode_stream(chunks(sizes, wire), &LIMITS);
    // Chunking must not change anything: errors (fail-fast UTF-8, limits) are
    // found while their frame is at the head of the buffer, so the same frames
    // come before the same error, and without an error the same tail is left
    // over, unmasked just as far.
    assert_eq!(whole, chunked, "whole vs chunked");
});
