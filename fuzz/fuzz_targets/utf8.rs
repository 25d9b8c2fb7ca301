//! The incremental UTF-8 validator against std::str::from_utf8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::ws::utf8::Utf8Validator;
use sprocket_fuzz::{chunks, split_input};

fuzz_target!(|input: &[u8]| {
    let (sizes, data) = split_input(input);
    let mut v = Utf8Validator::new();
    // Std's verdict on data[..end], kept linear: data[..boundary] is known
    // valid and ends on a character boundary, so only the rest is re-checked.
    let mut boundary = 0;
    let mut end = 0;
    for chunk in chunks(sizes, data) {
        end += chunk.len();
        let (valid, dead) = match std::str::from_utf8(&data[boundary..end]) {
            Ok(_) => {
                boundary = end;
                (true, false)
            }
            Err(e) => {
                boundary += e.valid_up_to();
                (false, e.error_len().is_some())
            }
        };
        match v.feed(chunk) {
            // Fails exactly when the bytes so far are no prefix of any valid
            // UTF-8: never late (fail-fast), never early.
            Err(_) => {
                assert!(dead, "error at {end} but the prefix can still become valid");
                assert!(std::str::from_utf8(data).is_err());
                return;
            }
            Ok(()) => assert!(!dead, "no error at {end} though the prefix is invalid"),
        }
        // Complete exactly when the bytes so far are valid UTF-8.
        assert_eq!(v.is_complete(), valid, "is_complete at {end}");
    }
    assert_eq!(v.is_complete(), std::str::from_utf8(data).is_ok());
});
