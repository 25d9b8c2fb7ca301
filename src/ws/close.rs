//! Close codes (RFC 6455 §7.4) and close frame payloads (§5.5.1).

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// Endpoint going away (server shutdown).
pub const GOING_AWAY: u16 = 1001;
/// Protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Data type the endpoint can't accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// Reported to applications when a close frame had no code; never sent.
pub const NO_STATUS: u16 = 1005;
/// Reported to applications when the connection dropped without a close frame; never sent.
pub const ABNORMAL: u16 = 1006;
/// Text that is not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Policy violation (e.g. a slow consumer).
pub const POLICY: u16 = 1008;
/// Message or frame too big.
pub const TOO_BIG: u16 = 1009;
/// Unexpected condition in the server (an application callback panicked).
pub const INTERNAL_ERROR: u16 = 1011;

/// Whether `code` may appear in a close frame on the wire (§7.4.1, §7.4.2):
/// the defined codes except those reserved for local use, the IANA-registered
/// 1012–1014, and the 3000–4999 ranges for libraries and applications.
pub fn is_sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Writes a close payload (§5.5.1) into `buf`: the code, then as much of
/// `reason` as fits in 125 bytes, cut at a character boundary. Returns its
/// length.
pub fn write_payload(buf: &mut [u8; 125], code: u16, reason: &str) -> usize {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    buf[..2].copy_from_slice(&code.to_be_bytes());
    buf[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    2 + end
}

/// What a close frame's payload says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosePayload<'a> {
    /// The status code, or `None` for an empty close frame.
    pub code: Option<u16>,
    /// The UTF-8 reason (empty when absent).
    pub reason: &'a str,
}

/// Why a close payload is unacceptable, as the close code to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadClose {
    /// One byte of payload, or a code that must not be sent: 1002.
    Protocol,
    /// Reason that is not UTF-8: 1007.
    Utf8,
}

/// Parses a close frame payload (already unmasked).
pub fn parse_payload(payload: &[u8]) -> Result<ClosePayload<'_>, BadClose> {
    match payload {
        [] => Ok(ClosePayload {
            code: None,
            reason: "",
        }),
        [_] => Err(BadClose::Protocol),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_sendable(code) {
                return Err(BadClose::Protocol);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| BadClose::Utf8)?;
            Ok(ClosePayload {
                code: Some(code),
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_sendable(c), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_sendable(c), "{c}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_payload(&[]).unwrap().code, None);
        assert_eq!(parse_payload(&[3]), Err(BadClose::Protocol));
        assert_eq!(
            parse_payload(&[0x03, 0xE8, b'o', b'k']).unwrap(),
            ClosePayload {
                code: Some(1000),
                reason: "ok"
            }
        );
        assert_eq!(parse_payload(&[0x03, 0xED]), Err(BadClose::Protocol)); // 1005
        assert_eq!(parse_payload(&[0x03, 0xE8, 0xFF]), Err(BadClose::Utf8));
    }
}
