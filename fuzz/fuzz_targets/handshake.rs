//! The opening handshake: HeadScanner fed in chunks, then parse_head and
//! upgrade::check on the head it delimits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::http::head::{HeadLimits, HeadScanner, parse_head};
use sprocket::http::upgrade::{self, Upgrade};
use sprocket_fuzz::{chunks, split_input};

// Small, so that inputs of libFuzzer's default size reach both limits.
const LIMITS: HeadLimits = HeadLimits {
    max_head: 512,
    max_headers: 8,
};

fuzz_target!(|input: &[u8]| {
    let (sizes, data) = split_input(input);

    // Reference: one scan over everything.
    let whole = HeadScanner::default().scan(data, &LIMITS);

    // The same bytes arriving in chunks, scanned on a growing buffer until
    // the scanner decides (starting with a call on the empty buffer).
    let mut scanner = HeadScanner::default();
    let mut buf = Vec::new();
    let mut chunked = scanner.scan(&buf, &LIMITS);
    for chunk in chunks(sizes, data) {
        if chunked != Ok(None) {
            break;
        }
        buf.extend_from_slice(chunk);
        chunked = scanner.scan(&buf, &LIMITS);
    }
    // Never a length past what the scanner was given.
    if let Ok(Some(len)) = chunked {
        assert!(len <= buf.len(), "head of {len} in {} bytes", buf.len());
    }
    // Chunking changes nothing, the head limit included.
    assert_eq!(chunked, whole, "chunked vs whole scan");

    let Ok(Some(len)) = whole else { return };
    // A head is the buffer's first `len` bytes, within the limit, ending in
    // the blank line.
    assert!(len <= data.len() && len <= LIMITS.max_head);
    let head_bytes = &data[..len];
    assert!(head_bytes.ends_with(b"\r\n\r\n"));
    assert!(!head_bytes.contains(&0));

    let Ok(head) = parse_head(head_bytes, &LIMITS) else {
        return;
    };
    assert!(head.headers.len() <= LIMITS.max_headers);
    assert!(!head.method.is_empty() && !head.target.is_empty());
    for (name, value) in &head.headers {
        // Names are tokens: non-empty, no ':' or whitespace.
        assert!(!name.is_empty(), "empty header name");
        assert!(
            !name.bytes().any(|b| b == b':' || b.is_ascii_whitespace()),
            "{name:?}"
        );
        // Values are trimmed and hold no line breaks.
        assert!(!value.contains(['\r', '\n', '\0']), "{value:?}");
        assert!(!value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']));
    }

    match upgrade::check(&head) {
        Ok(Upgrade::WebSocket { key, protocols, .. }) => {
            assert_eq!(head.method, "GET");
            assert!(protocols.iter().all(|p| !p.is_empty() && !p.contains(',')));
            let _ = sprocket::ws::accept_key(key.as_bytes());
        }
        Ok(Upgrade::Plain { .. }) => {}
        // 411: a chunked plain request; 413: a Content-Length past usize.
        Err(reject) => assert!(
            matches!(reject.status, 400 | 405 | 411 | 413 | 426),
            "{}",
            reject.status
        ),
    }
});
