//! The permessage-deflate receive path: arbitrary bytes as the payload of
//! a compressed message, cut into fragments, inflated under a size limit.
//! Whatever happens, the output never passes the limit (+1 byte, to tell),
//! accepted text is UTF-8, and what was accepted survives a round trip
//! through the compressor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::ws::deflate::{Compressor, InflateError, Inflater};
use sprocket::ws::utf8::Utf8Validator;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&control, payload)) = data.split_first() else {
        return;
    };
    let text = control & 1 != 0;
    // Up to four fragments, cut at points derived from the control byte.
    let pieces = 1 + usize::from((control >> 1) & 3);
    let mut cuts = vec![0];
    for i in 1..pieces {
        cuts.push(payload.len() * i * usize::from(control | 1) / (pieces * 255));
    }
    cuts.push(payload.len());
    cuts.sort_unstable();

    let mut inflater = Inflater::new();
    let mut out = Vec::new();
    let mut utf8 = Utf8Validator::new();
    for (i, w) in cuts.windows(2).enumerate() {
        let fin = i + 2 == cuts.len();
        let validator = if text { Some(&mut utf8) } else { None };
        match inflater.inflate(&payload[w[0]..w[1]], fin, &mut out, LIMIT, validator) {
            Ok(()) => assert!(out.len() <= LIMIT, "{} bytes accepted", out.len()),
            Err(InflateError::TooBig) => {
                assert!(out.len() <= LIMIT + 1, "{} bytes held", out.len());
                return;
            }
            Err(InflateError::Corrupt | InflateError::Utf8) => return,
        }
    }
    if text {
        assert!(
            std::str::from_utf8(&out).is_ok(),
            "accepted text is not UTF-8"
        );
    }
    if out.is_empty() {
        return;
    }
    let level = 1 + control % 9;
    let bits = 8 + (control >> 4) % 8;
    let mut buf = Vec::new();
    let n = Compressor::new(level, bits).compress(&out, &mut buf);
    let mut again = Vec::new();
    Inflater::new()
        .inflate(&buf[..n], true, &mut again, LIMIT, None)
        .expect("our own output inflates");
    assert!(again == out, "round trip changed the message");
});
