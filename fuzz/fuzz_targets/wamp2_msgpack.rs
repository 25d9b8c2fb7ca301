//! The WAMP v2 codec (`sprocket::wamp::v2::codec`) on `wamp.2.msgpack`
//! payloads: decoding arbitrary bytes never panics, and what decodes
//! encodes to bytes that decode to the same message, in this serializer
//! and in the other one (a router forwards between them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::wamp::v2::Serializer;
use sprocket::wamp::v2::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(Serializer::MsgPack, data) else {
        return;
    };
    for s in [Serializer::MsgPack, Serializer::Json] {
        let bytes = encode(s, &msg);
        if !s.is_binary() {
            assert!(std::str::from_utf8(&bytes).is_ok());
        }
        assert_eq!(decode(s, &bytes).as_ref(), Ok(&msg), "{s:?}");
    }
});
