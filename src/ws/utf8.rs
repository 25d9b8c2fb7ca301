//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! RFC 6455 §8.1: an endpoint that receives invalid UTF-8 in a text message
//! MUST fail the connection. Validating chunk by chunk lets the server fail
//! at the first invalid byte even in the middle of a fragment, instead of
//! after buffering the whole message.

/// Validator state: at most three bytes of an unfinished code point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    partial: [u8; 4],
    len: u8,
}

/// The input can never become valid UTF-8, whatever follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Bytes a sequence starting with `lead` occupies, or 0 if `lead` can't start one.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at a character boundary.
    pub const fn new() -> Self {
        Utf8Validator {
            partial: [0; 4],
            len: 0,
        }
    }

    /// Feeds the next chunk. Errors as soon as the bytes seen so far cannot
    /// be the prefix of any valid UTF-8 text.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let need = sequence_len(self.partial[0]);
            let take = (need - have).min(chunk.len());
            self.partial[have..have + take].copy_from_slice(&chunk[..take]);
            self.len += take as u8;
            chunk = &chunk[take..];
            match std::str::from_utf8(&self.partial[..usize::from(self.len)]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => return Ok(()), // still a valid prefix; chunk is exhausted
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &chunk[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// True when the text so far ends on a character boundary, i.e. the
    /// message may end here.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// Back to a character boundary, for the next message.
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(bytes: &[u8]) -> Option<bool> {
        let whole = std::str::from_utf8(bytes).is_ok();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&bytes[..a]).is_ok()
                    && v.feed(&bytes[a..b]).is_ok()
                    && v.feed(&bytes[b..]).is_ok()
                    && v.is_complete();
                if ok != whole {
                    return None;
                }
            }
        }
        Some(whole)
    }

    #[test]
    fn agrees_with_std_on_every_split() {
        let samples: &[&[u8]] = &[
            b"",
            b"hello",
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{FFFF}a\u{80}".as_bytes(),
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
            ],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xC0, 0xAF],
            &[0xE0, 0x80, 0xAF],
            &[0xF0, 0x9F, 0x98],
            &[0xED, 0x9F, 0xBF],
            &[0xFF],
        ];
        for s in samples {
            assert!(check_all_splits(s).is_some(), "disagreement for {s:x?}");
        }
    }

    #[test]
    fn fails_fast_in_the_middle() {
        // Autobahn 6.4.x style: valid prefix, then a byte that can never be valid.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert_eq!(v.feed(&[0xF4, 0x90]), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xED]).is_ok());
        assert_eq!(
            v.feed(&[0xA0]),
            Err(InvalidUtf8),
            "surrogate detected at second byte"
        );
    }

    #[test]
    fn incomplete_sequence_is_not_complete() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xE2, 0x82]).is_ok());
        assert!(!v.is_complete());
        assert!(v.feed(&[0xAC]).is_ok());
        assert!(v.is_complete());
    }
}
