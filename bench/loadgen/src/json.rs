//! Just enough JSON scanning for the load tool to find values in
//! messages without decoding them (the WAMP v2 and Pusher modes).

/// Where the JSON value starting at `start` (after any whitespace) ends:
/// the index of the `,` or `closer` (`]` in an array, `}` in an object)
/// that follows it at the top level, and the value's trimmed end. Strings
/// (with their escapes), nested arrays and objects are skipped whole.
/// `None` if the message ends first or the value is empty.
pub fn value_end(msg: &[u8], start: usize, closer: u8) -> Option<(usize, usize)> {
    let mut i = start;
    let mut depth = 0usize;
    let mut in_str = false;
    while i < msg.len() {
        let b = msg[i];
        if in_str {
            match b {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b',' if depth == 0 => break,
                b if b == closer && depth == 0 => break,
                _ => {}
            }
        }
        i += 1;
    }
    let mut end = i;
    while end > start && msg[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (end > start && i < msg.len()).then_some((i, end))
}

/// The first 120 bytes of a message, for error texts.
pub fn excerpt(msg: &[u8]) -> String {
    String::from_utf8_lossy(&msg[..msg.len().min(120)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_end_at_the_top_level_separator() {
        let m = br#"[1, "a,]\"b", {"x": [1, 2]} , 3]"#;
        assert_eq!(value_end(m, 1, b']'), Some((2, 2)));
        assert_eq!(&m[4..value_end(m, 4, b']').unwrap().1], br#""a,]\"b""#);
        let (sep, end) = value_end(m, 14, b']').unwrap();
        assert_eq!((&m[14..end], m[sep]), (&br#"{"x": [1, 2]}"#[..], b','));
        assert_eq!(value_end(m, 30, b']'), Some((31, 31)));
        // An object's member ends at `}`; nothing is no value.
        assert_eq!(value_end(br#"{"k": 7}"#, 5, b'}'), Some((7, 7)));
        assert_eq!(value_end(b"[1", 1, b']'), None);
        assert_eq!(value_end(b"[ ]", 1, b']'), None);
        assert_eq!(excerpt(&[b'x'; 200]).len(), 120);
    }
}
