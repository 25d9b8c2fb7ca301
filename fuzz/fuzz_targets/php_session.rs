//! PHP session decoding on arbitrary bytes: the first byte picks the
//! serializer, the rest is the session. Nothing panics; whatever decodes
//! encodes (unless a name cannot be written in that format) and decodes
//! back to the same data, floats compared by their bits; a `set` and a
//! `remove` on a path taken from the input keep the data encodable (and,
//! without refs, the set value reads back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::session::{EncodeError, Serializer, SessionData, Value, decode, encode};

fn round_trip(data: &SessionData, s: Serializer) {
    match encode(data, s) {
        Ok(bytes) => {
            let back = decode(&bytes, s).expect("what encode wrote decodes");
            assert!(back.same(data), "{data:?}\n{back:?}");
        }
        Err(EncodeError::PipeInName(_) | EncodeError::IntName(_) | EncodeError::NameTooLong(_)) => {
        }
        Err(e) => panic!("{e}: {data:?}"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, bytes)) = input.split_first() else {
        return;
    };
    let s = match pick % 3 {
        0 => Serializer::Php,
        1 => Serializer::PhpSerialize,
        _ => Serializer::PhpBinary,
    };
    let Ok(data) = decode(bytes, s) else {
        return;
    };
    round_trip(&data, s);
    let _ = data.to_json();
    // A path from the session's own names and the tail of the input.
    let mut path = String::new();
    if let Some((sprocket::session::Key::Str(name), _)) = data
        .entries
        .get(usize::from(pick / 3) % data.entries.len().max(1))
    {
        path.push_str(&String::from_utf8_lossy(name));
    }
    let tail = bytes.iter().rev().take(6).map(|b| match b % 4 {
        0 => ".0",
        1 => ".1",
        2 => ".a",
        _ => "",
    });
    path.extend(tail);
    let mut edited = data.clone();
    // Without refs a set value reads back (with refs a path may pass a
    // ref twice, and the set may cut the cycle it went through).
    let no_refs = !bytes.iter().any(|&b| b == b'R' || b == b'r');
    if edited.set(&path, Value::Int(7)).is_ok() && no_refs {
        assert_eq!(edited.get(&path), Some(&Value::Int(7)), "{path}");
    }
    round_trip(&edited, s);
    let mut removed = data.clone();
    removed.remove(&path);
    round_trip(&removed, s);
    let first = path.split('.').next().unwrap_or_default().to_string();
    removed.remove(&first);
    round_trip(&removed, s);
});
