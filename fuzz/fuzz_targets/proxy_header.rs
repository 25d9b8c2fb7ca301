//! The PROXY protocol header decoder (v1 and v2) on arbitrary bytes.
//!
//! Invariants: no panic; a header uses at least one byte, never more than
//! the input nor `MAX_HEADER`; every shorter prefix of a header asks for
//! more (never fails, never succeeds); the used bytes alone decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::proxy::{MAX_HEADER, decode};

fuzz_target!(|wire: &[u8]| {
    let whole = decode(wire);
    if let Ok(Some((header, used))) = whole {
        assert!(used >= 1 && used <= wire.len() && used <= MAX_HEADER);
        assert_eq!(decode(&wire[..used]), Ok(Some((header, used))));
        for n in 0..used {
            assert_eq!(decode(&wire[..n]), Ok(None), "prefix {n} of {used}");
        }
    }
    if let Ok(None) = whole {
        assert!(wire.len() < MAX_HEADER + 16);
    }
});
